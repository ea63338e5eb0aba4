import type { FC } from 'hono/jsx';
import type { BlobArch } from '../../server/db/schema.js';
import type { UnfinishedUpload } from '../../server/http/uploads.js';
import { BLOB_ARCH_LABELS, type BlobView } from '../../server/services/blobs.js';
import type { TransferJob } from '../../server/jobs/transfers.js';
import { CopyField, CsrfField, formatBytes, formatDate, Layout, NotReadyField, StateBadge } from '../layout.js';

/** The architecture choice of the upload form and the package page. */
const ArchOptions: FC<{ selected: BlobArch }> = ({ selected }) => (
  <>
    <option value="arm64" selected={selected === 'arm64'}>
      Apple silicon (arm64)
    </option>
    <option value="x86_64" selected={selected === 'x86_64'}>
      Intel (x86_64)
    </option>
    <option value="unknown" selected={selected === 'unknown'}>
      Not sure (unknown)
    </option>
  </>
);

const archLabel = (arch: BlobArch) => (arch === 'unknown' ? 'unknown' : BLOB_ARCH_LABELS[arch]);

/** "5 min ago" for people; the exact UTC time goes in the title. */
function ago(iso: string, nowMs: number): string {
  const seconds = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

interface Common {
  user: string;
  csrf: string;
  flash?: string | undefined;
  error?: string | undefined;
}

/**
 * "Retired": no image uses the package any more, but the portal may still send
 * Macs here; garbage collection keeps it until the portal was marked updated,
 * the grace period has passed since, and nobody downloaded it within it.
 */
const Retired: FC<{ retired: NonNullable<BlobView['retired']>; graceMs: number }> = ({ retired, graceMs }) => {
  const hours = Math.round(graceMs / 3_600_000);
  const grace = hours >= 1 ? `${hours} h` : `${Math.round(graceMs / 60_000)} min`;
  const keptUntil =
    retired.portalUpdatedAt === null ? null : Math.max(Date.parse(retired.portalUpdatedAt), retired.lastDownloadAt ? Date.parse(retired.lastDownloadAt) : 0) + graceMs;
  return (
    <span class="retired">
      <span class="badge bad">retired</span> since {formatDate(retired.since)}:{' '}
      {keptUntil === null ? (
        <>
          the portal still sends Macs here until you update it for{' '}
          {retired.heldBy.map((h, i) => (
            <>
              {i > 0 ? ', ' : ''}
              <a href={`/admin/images/${h.imageId}`}>{h.imageName}</a>
            </>
          ))}
          ; kept until then
        </>
      ) : (
        <>kept until at least {formatDate(new Date(keptUntil).toISOString())} ({grace} after the portal update and after the last download)</>
      )}
    </span>
  );
};

export const BlobsPage: FC<Common & { blobs: BlobView[]; graceMs: number }> = ({ blobs, graceMs, ...c }) => (
  <Layout title="Packages" user={c.user} csrf={c.csrf} active="/admin/blobs" flash={c.flash} error={c.error}>
    <p>
      <a class="button" href="/admin/upload">
        Upload packages
      </a>
    </p>
    {blobs.length === 0 ? (
      <p class="muted">No packages stored yet.</p>
    ) : (
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Package</th>
              <th scope="col">Size</th>
              <th scope="col">State</th>
              <th scope="col">Architecture</th>
              <th scope="col" class="hide-narrow">
                Stored
              </th>
              <th scope="col">Used by</th>
            </tr>
          </thead>
          <tbody>
            {blobs.map((b) => (
              <tr>
                <td>
                  <a href={`/admin/blobs/${b.sha256}`}>{b.name}</a>
                  <div class="mono muted">{b.sha256.slice(0, 16)}…</div>
                </td>
                <td>{formatBytes(b.size)}</td>
                <td>
                  <StateBadge state={b.state} />
                </td>
                <td>{b.arch === 'unknown' ? <span class="muted">unknown</span> : archLabel(b.arch)}</td>
                <td class="hide-narrow">{formatDate(b.createdAt)}</td>
                <td>
                  {b.usedBy.map((u) => u.imageName).join(', ') ||
                    (b.retired ? <Retired retired={b.retired} graceMs={graceMs} /> : <span class="muted">unused</span>)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    )}
  </Layout>
);

export const BlobPage: FC<Common & { blob: BlobView; downloads: number; graceMs: number }> = ({ blob, downloads, graceMs, ...c }) => (
  <Layout title={blob.name} user={c.user} csrf={c.csrf} active="/admin/blobs" flash={c.flash} error={c.error} scripts={['/admin/assets/copy.js']}>
    <div class="card">
      {blob.url ? (
        <CopyField id="blob-url" label="Download URL" value={blob.url} />
      ) : (
        <NotReadyField
          id="blob-url"
          label="Download URL"
          reason={
            <>
              no public address is set. <a href="/admin/settings">Set the public address</a>.
            </>
          }
        />
      )}
      <CopyField id="blob-sha" label="SHA-256" value={blob.sha256} />
      <p>
        {formatBytes(blob.size)} ({blob.size} bytes) · <StateBadge state={blob.state} /> · stored {formatDate(blob.createdAt)} · last verified{' '}
        {formatDate(blob.verifiedAt)} · {downloads} finished downloads
      </p>
      <p>
        Used by:{' '}
        {blob.usedBy.length === 0
          ? blob.retired
            ? <Retired retired={blob.retired} graceMs={graceMs} />
            : 'no golden image'
          : blob.usedBy.map((u) => (
              <>
                <a href={`/admin/images/${u.imageId}`}>{u.imageName}</a> ({u.arch === 'arm64' ? 'Apple silicon' : 'Intel'}){' '}
              </>
            ))}
      </p>
    </div>
    <form method="post" action={`/admin/blobs/${blob.sha256}/arch`} class="card stack">
      <CsrfField token={c.csrf} />
      <label for="blob-arch">Architecture this package is for</label>
      <select id="blob-arch" name="arch">
        <ArchOptions selected={blob.arch} />
      </select>
      <p class="muted">The golden image form offers a package in the slot of its architecture, and warns when it is put in the other one.</p>
      <div class="actions">
        <button type="submit" class="secondary">
          Save architecture
        </button>
        <CreateImageLinks sha256={blob.sha256} arch={blob.arch} />
      </div>
    </form>
    <div class="actions">
      <form method="post" action={`/admin/blobs/${blob.sha256}/verify`} class="inline">
        <CsrfField token={c.csrf} />
        <button type="submit" class="secondary">
          Verify now
        </button>
      </form>
      {blob.usedBy.length === 0 && (
        <form method="post" action={`/admin/blobs/${blob.sha256}/delete`} class="inline">
          <CsrfField token={c.csrf} />
          <label class="check" for="confirm-delete">
            <input id="confirm-delete" type="checkbox" name="confirm" value="yes" required /> I want to delete this package
          </label>
          <button type="submit" class="danger">
            Delete package
          </button>
        </form>
      )}
    </div>
  </Layout>
);

/** "Create a golden image with this package": in the slot of its architecture, or one link per slot when unknown. */
export const CreateImageLinks: FC<{ sha256: string; arch: BlobArch }> = ({ sha256, arch }) =>
  arch === 'unknown' ? (
    <span class="create-image">
      Create a golden image with this package: <a href={`/admin/images/new?arm64=${sha256}`}>as Apple silicon</a> ·{' '}
      <a href={`/admin/images/new?x86_64=${sha256}`}>as Intel</a>
    </span>
  ) : (
    <a class="create-image" href={`/admin/images/new?${arch}=${sha256}`}>
      Create a golden image with this package
    </a>
  );

export const UploadPage: FC<
  Common & { jobs: TransferJob[]; unfinished: UnfinishedUpload[]; nowMs: number; fetchValues?: { url: string; sha256: string; checksumUrl: string } }
> = ({ jobs, unfinished, nowMs, fetchValues = { url: '', sha256: '', checksumUrl: '' }, ...c }) => (
  <Layout title="Upload packages" user={c.user} csrf={c.csrf} active="/admin/upload" flash={c.flash} error={c.error} scripts={['/admin/assets/tus.min.js', '/admin/assets/upload.js']}>
    <p>
      Upload the <code>.pvmp</code> that Control Center’s “Prepare for Transfer” wrote together with the <code>.txt</code> next to it: its SHA-256 is
      then enforced, and a package this mirror already has is not sent again. Uploads resume after a dropped connection or a reload; several can run
      at once.
    </p>
    <form id="upload-form" method="post" action="/admin/upload" enctype="multipart/form-data" class="card stack" data-csrf={c.csrf}>
      {/* First in the form, so the server reads it before any file part (never in the URL). */}
      <CsrfField token={c.csrf} />
      <div id="drop-zone" class="drop-zone" hidden>
        <p>
          <strong>Drop the package (.pvmp) and its checksum file (.txt) here</strong>, several pairs at once if you like, or
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
      <p class="muted" id="upload-hint">Without JavaScript the upload still works, without a progress bar and without resuming.</p>
    </form>
    <section aria-live="polite" id="uploads"></section>

    <h2 id="unfinished">Unfinished uploads</h2>
    {unfinished.length === 0 ? (
      <p class="muted" id="no-unfinished">
        None: every upload has finished or was cancelled.
      </p>
    ) : (
      <>
        <p class="muted">
          To resume one, pick the same file again above (in this browser it continues where it stopped). Unfinished uploads are removed after three
          days.
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
                <tr data-upload-id={u.id} data-name={u.name} data-size={u.size === null ? '' : String(u.size)} data-last-modified={u.lastModified === null ? '' : String(u.lastModified)}>
                  <td>
                    {u.name}
                    <div class="muted">
                      {archLabel(u.arch)}
                      {u.hasChecksum ? ' · with checksum file' : ''}
                    </div>
                  </td>
                  <td>
                    {u.size ? <progress max={u.size} value={u.offset} aria-label={`Received of ${u.name}`}></progress> : null}
                    <div>
                      {formatBytes(u.offset)}
                      {u.size !== null ? ` of ${formatBytes(u.size)} (${Math.floor((u.offset / Math.max(u.size, 1)) * 100)}%)` : ''}
                    </div>
                  </td>
                  <td title={formatDate(u.createdAt)}>{ago(u.createdAt, nowMs)}</td>
                  <td class="upload-state">
                    {u.finishing ? 'being stored' : u.receiving ? 'receiving now' : u.lastDataAt ? `paused, last data ${ago(u.lastDataAt, nowMs)}` : 'paused'}
                  </td>
                  <td>
                    <form method="post" action={`/admin/uploads/${u.id}/discard`} class="inline">
                      <CsrfField token={c.csrf} />
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
    <h2 id="pull">Pull from a URL</h2>
    <p class="muted">
      Download a package from another server (HTTP or HTTPS) straight into this mirror. It resumes after a dropped connection when the server allows
      it, and is stored only once its SHA-256 checks out.
    </p>
    <form method="post" action="/admin/fetch" class="card stack">
      <CsrfField token={c.csrf} />
      <label for="fetch-url">Package URL</label>
      <input id="fetch-url" name="url" type="text" inputmode="url" required value={fetchValues.url} placeholder="https://hq-mirror.example/…/Win11.pvmp" />
      <label for="fetch-sha">SHA-256 (optional)</label>
      <input id="fetch-sha" name="sha256" type="text" class="mono" value={fetchValues.sha256} />
      <label for="fetch-checksum">or the URL of its checksum file (optional)</label>
      <input id="fetch-checksum" name="checksumUrl" type="text" inputmode="url" value={fetchValues.checksumUrl} />
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
                  {j.totalBytes ? <progress max={j.totalBytes} value={j.bytesDone} aria-label={`Download progress of ${j.url}`}></progress> : null}{' '}
                  {formatBytes(j.bytesDone)}
                  {j.totalBytes ? ` of ${formatBytes(j.totalBytes)}` : ''}
                </td>
                <td>
                  {j.state === 'done' && j.sha256 ? <a href={`/admin/blobs/${j.sha256}`}>stored</a> : j.state}
                  {j.error ? `: ${j.error.message}` : ''}
                  {(j.state === 'running' || j.state === 'queued') && (
                    <form method="post" action={`/admin/fetch/${j.id}/cancel`} class="inline">
                      <CsrfField token={c.csrf} />{' '}
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
  </Layout>
);
