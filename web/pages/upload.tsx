/**
 * The upload page: the resumable upload (tus, with a plain multipart form
 * underneath for browsers without JavaScript), the unfinished uploads, and
 * pulling a package from a URL.
 */
import type { FC } from 'hono/jsx';
import type { UnfinishedUpload } from '../../server/http/uploads.js';
import type { TransferJob } from '../../server/jobs/transfers.js';
import { DataTable, Field, PostButton } from '../components.js';
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
        <Field id="package" label="Package (.pvmp)" type="file" accept=".pvmp" required />
        <Field id="checksum" label="Checksum file (.txt, optional)" type="file" accept=".txt,text/plain" />
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
        <DataTable
          id="unfinished-uploads"
          rows={unfinished}
          rowAttrs={(u) => ({
            'data-upload-id': u.id,
            'data-name': u.name,
            'data-size': u.size === null ? '' : String(u.size),
            'data-last-modified': u.lastModified === null ? '' : String(u.lastModified),
          })}
          columns={[
            {
              head: 'File',
              cell: (u) => (
                <td>
                  {u.name}
                  <div class="muted">
                    {archLabel(u.arch)}
                    {u.hasChecksum ? ' · with checksum file' : ''}
                  </div>
                </td>
              ),
            },
            {
              head: 'Received',
              cell: (u) => (
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
              ),
            },
            { head: 'Started', cell: (u) => <td title={formatDate(u.createdAt)}>{ago(u.createdAt, nowMs)}</td> },
            { head: 'State', cell: (u) => <td class="upload-state">{uploadState(u, nowMs)}</td> },
            {
              head: <span class="visually-hidden">Actions</span>,
              cell: (u) => (
                <td>
                  <PostButton action={`/admin/uploads/${u.id}/discard`} label={`Discard ${u.name}`}>
                    Discard
                  </PostButton>
                </td>
              ),
            },
          ]}
        />
      </>
    )}
  </>
);

function uploadState(u: UnfinishedUpload, nowMs: number): string {
  if (u.finishing) return 'being stored';
  if (u.receiving) return 'receiving now';
  return u.lastDataAt ? `paused, last data ${ago(u.lastDataAt, nowMs)}` : 'paused';
}

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
      <Field
        id="fetch-url"
        label="Package URL"
        name="url"
        inputmode="url"
        required
        value={values.url}
        placeholder="https://hq-mirror.example/…/Win11.pvmp"
      />
      <Field id="fetch-sha" label="SHA-256 (optional)" name="sha256" class="mono" value={values.sha256} />
      <Field
        id="fetch-checksum"
        label="or the URL of its checksum file (optional)"
        name="checksumUrl"
        inputmode="url"
        value={values.checksumUrl}
      />
      <div class="actions">
        <button type="submit">Start download</button>
      </div>
    </form>
    <DataTable
      rows={jobs}
      columns={[
        { head: 'URL', cell: (j) => <td class="mono">{j.url}</td> },
        {
          head: 'Progress',
          cell: (j) => (
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
          ),
        },
        {
          head: 'State',
          cell: (j) => (
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
          ),
        },
      ]}
      after={
        <p class="muted">
          <a href="/admin/upload#pull">Refresh</a> to update the progress.
        </p>
      }
    />
  </>
);
