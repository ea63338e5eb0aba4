/**
 * `goldmirror migrate-storage`: every package the catalog knows, copied from the configured blob store into the
 * other kind (the data directory's blobs/ into a bucket, or back). One package at a time streams from the source
 * through the target's put() with its digest and size, so the target hashes it on the way and keeps nothing that
 * does not match. What the target already holds at the right size is skipped, so a re-run copies only what is
 * missing. Neither the catalog nor the configuration changes: the switch is the operator's, after a clean run.
 */
import type { BlobReader, BlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { verifyBlob } from '../../storage/verify.js';
import { findBlob, listBlobsByDigest } from '../db/repos/blobs.js';
import type { BlobRow } from '../db/schema.js';
import { AppError, isError } from '../errors.js';
import type { DbDeps } from './deps.js';

/** Bytes per read from the source; the target gathers them into its own batches (disk writes, S3 parts). */
const CHUNK_BYTES = 1 << 20;

export interface StorageMigrationDeps extends Pick<DbDeps, 'db'> {
  /** Where the blobs are now (the configured store). */
  source: BlobStore;
  target: BlobStore;
}

export interface StorageMigrationOptions {
  /** Re-hash the target's copies that are already there at the right size, and copy again those that do not match. */
  verifyExisting?: boolean | undefined;
  /** Handed to the target's put(): a filesystem target refuses a copy that would leave less free space. */
  minFreeBytes?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: StorageMigrationProgress) => void) | undefined;
}

export interface StorageMigrationProgress {
  /** 1-based position of the package in the catalog, and how many it lists. */
  index: number;
  total: number;
  sha256: string;
  size: number;
  /** Copying it, or re-hashing the copy the target already has (verifyExisting). */
  doing: 'copy' | 'verify';
  bytesDone: number;
}

export interface MigratedBlob {
  sha256: string;
  size: number;
}

export interface StorageMigrationReport {
  from: { kind: BlobStore['kind']; location: string };
  to: { kind: BlobStore['kind']; location: string };
  /** Packages the catalog listed when the run started. */
  packages: number;
  /** Copied now; `replaced`: the target held a copy of the wrong size or (verifyExisting) content, now overwritten. */
  copied: Array<MigratedBlob & { replaced: boolean }>;
  copiedBytes: number;
  /** Already in the target at the right size; `verified`: and re-hashed to its digest. */
  skipped: Array<MigratedBlob & { verified: boolean }>;
  /** Could not be copied; nothing of them was kept in the target. */
  failed: Array<MigratedBlob & { code: string; reason: string }>;
  /** Rows in state corrupt: never copied, whatever bytes the source still has. */
  corrupt: Array<MigratedBlob & { detail: string | null }>;
  /** Rows in state missing whose blob the source does not have either. */
  missing: MigratedBlob[];
  /** Blobs in the source store without a row: not copied (`goldmirror gc` removes them). */
  notInCatalog: MigratedBlob[];
  /** Rows that appeared (stored meanwhile) or disappeared (deleted meanwhile) while the copy ran. */
  storedMeanwhile: string[];
  deletedMeanwhile: string[];
  /** True when every package that can be served was in the target at the end. */
  ok: boolean;
}

export async function migrateStorage(
  deps: StorageMigrationDeps,
  options: StorageMigrationOptions = {},
): Promise<StorageMigrationReport> {
  const { db, source, target } = deps;
  const { verifyExisting = false, minFreeBytes, signal, onProgress } = options;
  if (source.kind === target.kind && source.location === target.location)
    throw new AppError('USAGE', `the blobs are already in ${target.location}`);
  const rows = await listBlobsByDigest(db);
  const report: StorageMigrationReport = {
    from: { kind: source.kind, location: source.location },
    to: { kind: target.kind, location: target.location },
    packages: rows.length,
    copied: [],
    copiedBytes: 0,
    skipped: [],
    failed: [],
    corrupt: [],
    missing: [],
    notInCatalog: [],
    storedMeanwhile: [],
    deletedMeanwhile: [],
    ok: false,
  };

  for (const [position, row] of rows.entries()) {
    signal?.throwIfAborted();
    const blob = { sha256: row.sha256 as Sha256, size: row.size };
    if (row.state === 'corrupt') {
      report.corrupt.push({ ...blob, detail: row.state_detail ?? null });
      continue;
    }
    const progress = (doing: StorageMigrationProgress['doing'], bytesDone: number): void =>
      onProgress?.({ index: position + 1, total: rows.length, ...blob, doing, bytesDone });
    let replaced = false;
    try {
      const existing = await target.stat(blob.sha256);
      if (existing?.size === blob.size) {
        if (!verifyExisting) {
          report.skipped.push({ ...blob, verified: false });
          continue;
        }
        progress('verify', 0);
        const outcome = await verifyBlob(target, blob.sha256, {
          signal,
          onProgress: (done) => progress('verify', done),
        });
        if (outcome.kind === 'ok') {
          report.skipped.push({ ...blob, verified: true });
          continue;
        }
      }
      replaced = existing !== null;
      progress('copy', 0);
      await copyBlob(source, target, blob, {
        minFreeBytes,
        signal,
        onProgress: (done) => progress('copy', done),
      });
      report.copied.push({ ...blob, replaced });
      report.copiedBytes += blob.size;
    } catch (err) {
      if (signal?.aborted) throw err;
      await recordFailure(report, db, row, source, err);
    }
  }

  const listed = new Set(rows.map((r) => r.sha256));
  for await (const stored of source.list()) {
    signal?.throwIfAborted();
    if (listed.has(stored.sha256)) continue;
    if (await findBlob(db, stored.sha256)) report.storedMeanwhile.push(stored.sha256);
    else report.notInCatalog.push({ sha256: stored.sha256, size: stored.size });
  }
  report.ok = report.failed.length === 0 && report.storedMeanwhile.length === 0;
  return report;
}

/** Streams one blob from `source` into `target`, which checks its digest and size before keeping anything. */
async function copyBlob(
  source: BlobStore,
  target: BlobStore,
  blob: { sha256: Sha256; size: number },
  options: Pick<StorageMigrationOptions, 'minFreeBytes' | 'signal'> & { onProgress: (bytesDone: number) => void },
): Promise<void> {
  const reader = await source.open(blob.sha256);
  try {
    if (reader.size !== blob.size)
      throw new AppError(
        'SIZE_MISMATCH',
        `the copy in ${source.location} has ${reader.size} bytes, but the catalog says ${blob.size}; nothing was stored`,
        { expected: blob.size, actual: reader.size },
      );
    await target.put(chunksOf(reader), {
      expectedSha256: blob.sha256,
      expectedSize: blob.size,
      minFreeBytes: options.minFreeBytes,
      signal: options.signal,
      onProgress: options.onProgress,
    });
  } finally {
    await reader.close();
  }
}

/** The reader's bytes front to back, each chunk a fresh buffer (put() may hold on to chunks until a part is full). */
async function* chunksOf(reader: BlobReader): AsyncGenerator<Buffer> {
  for (let position = 0; position < reader.size;) {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, reader.size - position));
    const got = await reader.read(chunk, chunk.length, position);
    if (got === 0) return;
    position += got;
    yield got === chunk.length ? chunk : chunk.subarray(0, got);
  }
}

/** Files a failed copy under what it turns out to be: a row deleted or quarantined meanwhile is no failure. */
async function recordFailure(
  report: StorageMigrationReport,
  db: StorageMigrationDeps['db'],
  row: BlobRow,
  source: BlobStore,
  err: unknown,
): Promise<void> {
  const blob = { sha256: row.sha256, size: row.size };
  if (!isError(err) && !isErrnoException(err)) throw err;
  if (isError(err, 'BLOB_UNKNOWN')) {
    const now = await findBlob(db, row.sha256 as Sha256);
    if (!now) return void report.deletedMeanwhile.push(row.sha256);
    if (now.state === 'corrupt') return void report.corrupt.push({ ...blob, detail: now.state_detail ?? null });
    if (now.state === 'missing') return void report.missing.push(blob);
    return void report.failed.push({
      ...blob,
      code: err.code,
      reason: `not in ${source.location}, although the catalog says it is there; \`goldmirror verify ${row.sha256}\` records it missing`,
    });
  }
  if (isError(err, 'DIGEST_MISMATCH'))
    return void report.failed.push({
      ...blob,
      code: err.code,
      reason:
        `the copy in ${source.location} hashes to ${String(err.details.actual)}: it is corrupt and was not stored; ` +
        `\`goldmirror verify ${row.sha256}\` quarantines it, then store the package again`,
    });
  report.failed.push({ ...blob, code: isError(err) ? err.code : (err.code ?? 'EIO'), reason: err.message });
}

function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && 'syscall' in err;
}
