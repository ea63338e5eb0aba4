/**
 * Mirror-to-mirror sync: follow another goldmirror (headquarters) from a
 * branch office. Reads its manifest through the API, pulls each missing
 * package through its public download links (resumable, verified), then
 * applies the manifest through the normal bundle import. Re-running it is
 * cheap and changes nothing when nothing changed upstream.
 */
import type { Sha256 } from '../../storage/digest.js';
import { AppError } from '../errors.js';
import { findBlob } from '../repos/blobs.js';
import type { Actor } from '../services/audit.js';
import type { IngestDeps } from '../services/ingest.js';
import { exportBundle } from './export.js';
import { fetchIntoStore } from './fetch.js';
import { importBundle, type ImportReport } from './import.js';
import { manifestSchema, type Manifest } from './manifest.js';
import { downloadUrl } from '../links.js';
import { parseInput } from '../services/validation.js';

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
  let res: Response;
  try {
    res = await fetch(`${base}/api/v1/export/manifest`, { headers, signal: options.signal ?? AbortSignal.timeout(60_000) });
  } catch (err) {
    throw new AppError('SOURCE_FAILED', `cannot reach ${base}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`);
  }
  if (res.status === 401) throw new AppError('SOURCE_FAILED', `${base} refused the sync token (HTTP 401)`);
  if (!res.ok) throw new AppError('SOURCE_FAILED', `${base} answered HTTP ${res.status} for its manifest`);
  const manifest: Manifest = parseInput(manifestSchema, await res.json(), 'upstream manifest');

  const fetched: string[] = [];
  for (const blob of manifest.blobs) {
    const local = await findBlob(deps.db, blob.sha256 as Sha256);
    if (local?.state === 'ok') continue;
    await fetchIntoStore(deps, downloadUrl(base, blob.sha256, blob.name || `${blob.sha256}.pvmp`), {
      expectedSha256: blob.sha256 as Sha256,
      fileName: blob.name,
      signal: options.signal,
      onProgress: (done, total) => options.onBlob?.(blob.sha256, done, total),
    });
    fetched.push(blob.sha256);
  }
  // Apply through the bundle importer: same validation, conflicts and transaction.
  const report = await importBundle(deps, exportBundle(deps.store, { ...manifest, includesBlobs: false }), { dryRun: false, actor: options.actor });
  return { from: base, fetched, import: report };
}
