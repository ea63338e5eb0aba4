/**
 * Mirror-to-mirror sync: follow another goldmirror (headquarters) from a
 * branch office. Reads its manifest through the API, pulls each missing
 * package and Parallels Desktop update file through its public download
 * links (resumable, verified), then applies the manifest through the normal
 * bundle import: the branch publishes exactly the versions the primary
 * publishes. Re-running it is cheap and changes nothing when nothing changed
 * upstream.
 */
import { findBlobRecord } from '../services/blobs.js';
import type { Sha256 } from '../../storage/digest.js';
import { AppError } from '../errors.js';
import type { Actor } from '../services/audit.js';
import type { IngestDeps } from '../services/ingest.js';
import { exportBundle } from './export.js';
import { fetchIntoStore, outboundOf } from './fetch.js';
import { importBundle, type ImportReport } from './import.js';
import { blobFileName, parseManifestValue } from './import-manifest.js';
import { blobKindOf, MAX_MANIFEST_BYTES, type Manifest } from './manifest.js';
import { downloadUrl, readCapped } from '../links.js';
import { planChanges } from '../services/bundle-plan.js';
import { HOP_HEADER } from '../services/routing.js';

// The same cap as a bundle's manifest: thousands of images and groups are well under 1 MiB.
export { MAX_MANIFEST_BYTES };

export interface SyncOptions {
  from: string;
  token: string;
  actor: Actor;
  signal?: AbortSignal;
  onBlob?: (sha256: string, bytesDone: number, totalBytes: number | null) => void;
}

export interface SyncReport {
  from: string;
  fetched: string[];
  import: ImportReport;
}

export async function syncFrom(deps: IngestDeps, options: SyncOptions): Promise<SyncReport> {
  const base = options.from.replace(/\/+$/, '');
  const headers = { Authorization: `Bearer ${options.token}` };
  const manifest: Manifest = parseManifestValue(await readManifest(deps, base, headers, options.signal));
  // Conflicts (a version stored here with other bytes…) stop the sync before a large file is downloaded.
  await planChanges(deps.db, manifest, { followPublished: true });

  const fetched: string[] = [];
  for (const blob of manifest.blobs) {
    const local = await findBlobRecord(deps, blob.sha256 as Sha256);
    if (local?.state === 'ok') continue;
    // An update file is served only under a .dmg name, a package only under .pvmp.
    const name = blobFileName(manifest, blob);
    await fetchIntoStore(deps, downloadUrl(base, blob.sha256, name), {
      expectedSha256: blob.sha256 as Sha256,
      fileName: name,
      kind: blobKindOf(blob),
      signal: options.signal,
      // A primary never sends a mirror's own sync to a replica (services/routing.ts).
      headers: { [HOP_HEADER]: 'sync' },
      onProgress: (done, total) => options.onBlob?.(blob.sha256, done, total),
    });
    fetched.push(blob.sha256);
  }
  // Apply through the bundle importer: same validation, conflicts and transaction.
  const report = await importBundle(deps, exportBundle(deps.store, { ...manifest, includesBlobs: false }), {
    dryRun: false,
    actor: options.actor,
    followPublished: true,
  });
  return { from: base, fetched, import: report };
}

/** GET the upstream's manifest through the outbound guard, reading at most MAX_MANIFEST_BYTES of it. */
async function readManifest(
  deps: IngestDeps,
  base: string,
  headers: Record<string, string>,
  signal: AbortSignal | undefined,
): Promise<unknown> {
  let res: Response;
  try {
    res = await outboundOf(deps)(`${base}/api/v1/export/manifest`, {
      headers,
      signal: signal ?? AbortSignal.timeout(60_000),
    });
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError(
      'SOURCE_FAILED',
      `cannot reach ${base}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`,
    );
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 401) throw new AppError('SOURCE_FAILED', `${base} refused the sync token (HTTP 401)`);
    throw new AppError('SOURCE_FAILED', `${base} answered HTTP ${res.status} for its manifest`);
  }
  const tooLarge = () =>
    new AppError(
      'SOURCE_FAILED',
      `the manifest of ${base} is larger than ${MAX_MANIFEST_BYTES} bytes; refusing to read it (is ${base} a goldmirror?)`,
      {
        maxBytes: MAX_MANIFEST_BYTES,
      },
    );
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > MAX_MANIFEST_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const { bytes, truncated } = await readCapped(res, MAX_MANIFEST_BYTES).catch((err: unknown) => {
    throw new AppError(
      'SOURCE_FAILED',
      `${base} broke off while sending its manifest: ${(err as Error).message}`,
      {},
      { cause: err },
    );
  });
  if (truncated) throw tooLarge();
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw new AppError('SOURCE_FAILED', `${base} answered its manifest with something that is not JSON`);
  }
}
