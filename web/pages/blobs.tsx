/** The package list and a package's page: its link, digest, architecture, verification and deletion. */
import type { FC } from 'hono/jsx';
import type { BlobArch } from '../../server/db/schema.js';
import { BLOB_ARCH_LABELS, type BlobView } from '../../server/services/blobs.js';
import { DataTable, PostButton } from '../components.js';
import { CopyField, CsrfField, formatBytes, formatDate, NotReadyField, StateBadge } from '../layout.js';

/** The architecture choice of the upload form and the package page. */
export const ArchOptions: FC<{ selected: BlobArch }> = ({ selected }) => (
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

export const archLabel = (arch: BlobArch) => (arch === 'unknown' ? 'unknown' : BLOB_ARCH_LABELS[arch]);

/**
 * "Retired": no image uses the package any more, but the portal may still send
 * Macs here; garbage collection keeps it until the portal was marked updated,
 * the grace period has passed since, and nobody downloaded it within it.
 */
const Retired: FC<{ retired: NonNullable<BlobView['retired']>; graceMs: number }> = ({ retired, graceMs }) => {
  const hours = Math.round(graceMs / 3_600_000);
  const grace = hours >= 1 ? `${hours} h` : `${Math.round(graceMs / 60_000)} min`;
  const keptUntil =
    retired.portalUpdatedAt === null
      ? null
      : Math.max(Date.parse(retired.portalUpdatedAt), retired.lastDownloadAt ? Date.parse(retired.lastDownloadAt) : 0) +
        graceMs;
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
        <>
          kept until at least {formatDate(new Date(keptUntil).toISOString())} ({grace} after the portal update and after
          the last download)
        </>
      )}
    </span>
  );
};

export const BlobsPage: FC<{ blobs: BlobView[]; graceMs: number }> = ({ blobs, graceMs }) => (
  <>
    <p>
      <a class="button" href="/admin/upload">
        Upload packages
      </a>
    </p>
    <DataTable
      rows={blobs}
      empty={<p class="muted">No packages stored yet.</p>}
      columns={[
        {
          head: 'Package',
          cell: (b) => (
            <td>
              <a href={`/admin/blobs/${b.sha256}`}>{b.name}</a>
              <div class="mono muted">{b.sha256.slice(0, 16)}…</div>
            </td>
          ),
        },
        { head: 'Size', cell: (b) => <td>{formatBytes(b.size)}</td> },
        {
          head: 'State',
          cell: (b) => (
            <td>
              <StateBadge state={b.state} />
            </td>
          ),
        },
        {
          head: 'Architecture',
          cell: (b) => <td>{b.arch === 'unknown' ? <span class="muted">unknown</span> : archLabel(b.arch)}</td>,
        },
        { head: 'Stored', narrow: true, cell: (b) => <td class="hide-narrow">{formatDate(b.createdAt)}</td> },
        {
          head: 'Used by',
          cell: (b) => (
            <td>
              {b.usedBy.map((u) => u.imageName).join(', ') ||
                (b.retired ? <Retired retired={b.retired} graceMs={graceMs} /> : <span class="muted">unused</span>)}
            </td>
          ),
        },
      ]}
    />
  </>
);

export const BlobPage: FC<{ blob: BlobView; downloads: number; graceMs: number }> = ({ blob, downloads, graceMs }) => (
  <>
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
        {formatBytes(blob.size)} ({blob.size} bytes) · <StateBadge state={blob.state} /> · stored{' '}
        {formatDate(blob.createdAt)} · last verified {formatDate(blob.verifiedAt)} · {downloads} finished downloads
      </p>
      <p>
        Used by:{' '}
        {blob.usedBy.length === 0 ? (
          blob.retired ? (
            <Retired retired={blob.retired} graceMs={graceMs} />
          ) : (
            'no golden image'
          )
        ) : (
          blob.usedBy.map((u) => (
            <>
              <a href={`/admin/images/${u.imageId}`}>{u.imageName}</a> ({u.arch === 'arm64' ? 'Apple silicon' : 'Intel'}
              ){' '}
            </>
          ))
        )}
      </p>
    </div>
    <form method="post" action={`/admin/blobs/${blob.sha256}/arch`} class="card stack">
      <CsrfField />
      <label for="blob-arch">Architecture this package is for</label>
      <select id="blob-arch" name="arch">
        <ArchOptions selected={blob.arch} />
      </select>
      <p class="muted">
        The golden image form offers a package in the slot of its architecture, and warns when it is put in the other
        one.
      </p>
      <div class="actions">
        <button type="submit" class="secondary">
          Save architecture
        </button>
        <CreateImageLinks sha256={blob.sha256} arch={blob.arch} />
      </div>
    </form>
    <div class="actions">
      <PostButton action={`/admin/blobs/${blob.sha256}/verify`}>Verify now</PostButton>
      {blob.usedBy.length === 0 && (
        <form method="post" action={`/admin/blobs/${blob.sha256}/delete`} class="inline">
          <CsrfField />
          <label class="check" for="confirm-delete">
            <input id="confirm-delete" type="checkbox" name="confirm" value="yes" required /> I want to delete this
            package
          </label>
          <button type="submit" class="danger">
            Delete package
          </button>
        </form>
      )}
    </div>
  </>
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
