import type { FC } from 'hono/jsx';
import type { BlobView } from '../../server/services/blobs.js';
import type { TransferJob } from '../../server/jobs/transfers.js';
import { CopyField, CsrfField, formatBytes, formatDate, Layout, NotReadyField, StateBadge } from '../layout.js';

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

export const UploadPage: FC<Common & { jobs: TransferJob[]; fetchValues?: { url: string; sha256: string; checksumUrl: string } }> = ({
  jobs,
  fetchValues = { url: '', sha256: '', checksumUrl: '' },
  ...c
}) => (
  <Layout title="Upload packages" user={c.user} csrf={c.csrf} active="/admin/upload" flash={c.flash} error={c.error} scripts={['/admin/assets/tus.min.js', '/admin/assets/upload.js']}>
    <p>
      Pick the <code>.pvmp</code> that Control Center’s “Prepare for Transfer” wrote and, if you have it, the <code>.txt</code> next to it: its
      SHA-256 is then enforced. Uploads resume by themselves after a dropped connection; several can run at once.
    </p>
    <form id="upload-form" method="post" action={`/admin/upload?_csrf=${encodeURIComponent(c.csrf)}`} enctype="multipart/form-data" class="card stack" data-csrf={c.csrf}>
      <label for="checksum">Checksum file (.txt, optional)</label>
      <input id="checksum" name="checksum" type="file" accept=".txt,text/plain" />
      <label for="package">Package (.pvmp)</label>
      <input id="package" name="package" type="file" accept=".pvmp" required />
      <div class="actions">
        <button type="submit">Upload</button>
      </div>
      <p class="muted" id="upload-hint">Without JavaScript the upload still works, without a progress bar and without resuming.</p>
    </form>
    <section aria-live="polite" id="uploads"></section>

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
                  {j.state === 'running' && (
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
