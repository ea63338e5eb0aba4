/**
 * The upload page: the resumable upload (tus, with a plain multipart form
 * underneath for browsers without JavaScript), the unfinished uploads, and
 * pulling a package from a URL.
 */
import type { FC } from 'hono/jsx';
import type { UnfinishedUpload } from '../../server/http/uploads.js';
import type { TransferJob } from '../../server/jobs/transfers.js';
import { CsrfField, formatBytes, formatDate, useCsrfToken } from '../layout.js';
import { ArchOptions, archLabel } from './blobs.js';

/** "5 min ago" for people; the exact UTC time goes in the title. */
function ago(iso: string, nowMs: number): string {
  const seconds = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

export const UploadPage: FC<{
  jobs: TransferJob[];
  unfinished: UnfinishedUpload[];
  nowMs: number;
  fetchValues?: { url: string; sha256: string; checksumUrl: string };
}> = ({ jobs, unfinished, nowMs, fetchValues = { url: '', sha256: '', checksumUrl: '' } }) => (
  <>
    <p>
      Upload the <code>.pvmp</code> that Control Center’s “Prepare for Transfer” wrote together with the{' '}
      <code>.txt</code> next to it: its SHA-256 is then enforced, and a package this mirror already has is not sent
      again. Uploads resume after a dropped connection or a reload; several can run at once.
    </p>
    <form
      id="upload-form"
      method="post"
      action="/admin/upload"
      enctype="multipart/form-data"
      class="card stack"
      data-csrf={useCsrfToken()}
    >
      {/* First in the form, so the server reads it before any file part (never in the URL). */}
      <CsrfField />
      <div id="drop-zone" class="drop-zone" hidden>
        <p>
          <strong>Drop the package (.pvmp) and its checksum file (.txt) here</strong>, several pairs at once if you
          like, or
        </p>
        <label for="files" class="button secondary">
          Choose files…
        </label>
        <input id="files" type="file" multiple accept=".pvmp,.txt" class="visually-hidden" />
      </div>
      <div id="picked" aria-live="polite"></div>
      {/* Without JavaScript. The server enforces the checksum part and records the architecture whichever order the parts arrive in. */}
      <div id="plain-fields" class="plain-fields">
        <label for="package">Package (.pvmp)</label>
        <input id="package" name="package" type="file" accept=".pvmp" required />
        <label for="checksum">Checksum file (.txt, optional)</label>
        <input id="checksum" name="checksum" type="file" accept=".txt,text/plain" />
        <label for="arch">Architecture</label>
        <select id="arch" name="arch">
          <ArchOptions selected="unknown" />
        </select>
      </div>
      <div class="actions">
        <button type="submit">Upload</button>
      </div>
      <p class="muted" id="upload-hint">
        Without JavaScript the upload still works, without a progress bar and without resuming.
      </p>
    </form>
    <section aria-live="polite" id="uploads"></section>

    <UnfinishedUploads unfinished={unfinished} nowMs={nowMs} />
    <PullFromUrl jobs={jobs} values={fetchValues} />
  </>
);

/** Uploads that stopped before their last byte, each with its progress and a Discard button. */
const UnfinishedUploads: FC<{ unfinished: UnfinishedUpload[]; nowMs: number }> = ({ unfinished, nowMs }) => (
  <>
    <h2 id="unfinished">Unfinished uploads</h2>
    {unfinished.length === 0 ? (
      <p class="muted" id="no-unfinished">
        None: every upload has finished or was cancelled.
      </p>
    ) : (
      <>
        <p class="muted">
          To resume one, pick the same file again above (in this browser it continues where it stopped). Unfinished
          uploads are removed after three days.
        </p>
        <div class="table-wrap">
          <table id="unfinished-uploads">
            <thead>
              <tr>
                <th scope="col">File</th>
                <th scope="col">Received</th>
                <th scope="col">Started</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {unfinished.map((u) => (
                <tr
                  data-upload-id={u.id}
                  data-name={u.name}
                  data-size={u.size === null ? '' : String(u.size)}
                  data-last-modified={u.lastModified === null ? '' : String(u.lastModified)}
                >
                  <td>
                    {u.name}
                    <div class="muted">
                      {archLabel(u.arch)}
                      {u.hasChecksum ? ' · with checksum file' : ''}
                    </div>
                  </td>
                  <td>
                    {u.size ? (
                      <progress max={u.size} value={u.offset} aria-label={`Received of ${u.name}`}></progress>
                    ) : null}
                    <div>
                      {formatBytes(u.offset)}
                      {u.size !== null
                        ? ` of ${formatBytes(u.size)} (${Math.floor((u.offset / Math.max(u.size, 1)) * 100)}%)`
                        : ''}
                    </div>
                  </td>
                  <td title={formatDate(u.createdAt)}>{ago(u.createdAt, nowMs)}</td>
                  <td class="upload-state">
                    {u.finishing
                      ? 'being stored'
                      : u.receiving
                        ? 'receiving now'
                        : u.lastDataAt
                          ? `paused, last data ${ago(u.lastDataAt, nowMs)}`
                          : 'paused'}
                  </td>
                  <td>
                    <form method="post" action={`/admin/uploads/${u.id}/discard`} class="inline">
                      <CsrfField />
                      <button type="submit" class="secondary" aria-label={`Discard ${u.name}`}>
                        Discard
                      </button>
                    </form>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </>
    )}
  </>
);

/** The form that starts a download from another server, and the downloads running or done. */
const PullFromUrl: FC<{ jobs: TransferJob[]; values: { url: string; sha256: string; checksumUrl: string } }> = ({
  jobs,
  values,
}) => (
  <>
    <h2 id="pull">Pull from a URL</h2>
    <p class="muted">
      Download a package from another server (HTTP or HTTPS) straight into this mirror. It resumes after a dropped
      connection when the server allows it, and is stored only once its SHA-256 checks out.
    </p>
    <form method="post" action="/admin/fetch" class="card stack">
      <CsrfField />
      <label for="fetch-url">Package URL</label>
      <input
        id="fetch-url"
        name="url"
        type="text"
        inputmode="url"
        required
        value={values.url}
        placeholder="https://hq-mirror.example/…/Win11.pvmp"
      />
      <label for="fetch-sha">SHA-256 (optional)</label>
      <input id="fetch-sha" name="sha256" type="text" class="mono" value={values.sha256} />
      <label for="fetch-checksum">or the URL of its checksum file (optional)</label>
      <input id="fetch-checksum" name="checksumUrl" type="text" inputmode="url" value={values.checksumUrl} />
      <div class="actions">
        <button type="submit">Start download</button>
      </div>
    </form>
    {jobs.length > 0 && (
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">URL</th>
              <th scope="col">Progress</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((j) => (
              <tr>
                <td class="mono">{j.url}</td>
                <td>
                  {j.totalBytes ? (
                    <progress
                      max={j.totalBytes}
                      value={j.bytesDone}
                      aria-label={`Download progress of ${j.url}`}
                    ></progress>
                  ) : null}{' '}
                  {formatBytes(j.bytesDone)}
                  {j.totalBytes ? ` of ${formatBytes(j.totalBytes)}` : ''}
                </td>
                <td>
                  {j.state === 'done' && j.sha256 ? <a href={`/admin/blobs/${j.sha256}`}>stored</a> : j.state}
                  {j.error ? `: ${j.error.message}` : ''}
                  {(j.state === 'running' || j.state === 'queued') && (
                    <form method="post" action={`/admin/fetch/${j.id}/cancel`} class="inline">
                      <CsrfField />{' '}
                      <button type="submit" class="secondary">
                        Cancel
                      </button>
                    </form>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <p class="muted">
          <a href="/admin/upload#pull">Refresh</a> to update the progress.
        </p>
      </div>
    )}
  </>
);
