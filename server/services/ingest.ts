/**
 * The single ingest path used by the CLI, uploads and bundle imports: stream
 * into the blob store (hashed once, nothing partial visible), then record the
 * blob in the database.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ByteSource, StagedBlob } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { withBlobLock } from '../db/blob-lock.js';
import { deleteBlobRow, findBlob, recordIngestedBlob } from '../db/repos/blobs.js';
import { imagesUsing } from '../db/repos/images.js';
import type { BlobArch, BlobKind, BlobRow } from '../db/schema.js';
import { linkFileName } from '../file-names.js';
import type { Metrics } from '../metrics.js';
import { AppError } from '../errors.js';
import type { OutboundFetch } from '../net/outbound.js';
import type { ActivityTracker } from './activity.js';
import type { ServiceDeps } from './deps.js';

export interface IngestDeps extends Pick<ServiceDeps, 'db' | 'store' | 'clock'> {
  minFreeBytes: number;
  metrics?: Metrics | undefined;
  /** Heartbeats for the expected digest while it streams, so GC leaves a re-ingest alone. */
  activity?: ActivityTracker | undefined;
  /** Re-read the stored file and re-hash it after the ingest (MIRROR_VERIFY_AFTER_INGEST). */
  verifyAfterIngest?: ((sha256: Sha256) => Promise<string>) | undefined;
  /** HTTP to other servers (pulls, sync) under the outbound address guard; the strictest guard when absent. */
  outbound?: OutboundFetch | undefined;
}

export interface IngestRequest {
  source: ByteSource;
  /** Original file name; only used, cleaned, as the cosmetic name in links. */
  fileName: string;
  expectedSha256?: Sha256 | undefined;
  expectedSize?: number | undefined;
  /** The architecture the admin said the package is for (kept when unknown). */
  arch?: BlobArch | undefined;
  /** `update`: a Parallels Desktop update file, whose links end in .dmg (default: a package, .pvmp). */
  kind?: BlobKind | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((bytesWritten: number) => void) | undefined;
}

export interface IngestResult {
  blob: BlobRow;
  created: boolean;
  /** The version of the file this ingest put in place (a later ingest of the same content replaces it). */
  version: string;
}

/**
 * The free-space guard every ingest path shares (tus, the no-JS form, pulls,
 * bundles): refuses with 507 when storing `bytes` more would leave fewer than
 * minFreeBytes free. With 0 it still refuses once the reserve is already used.
 */
export async function assertFreeSpace(
  deps: Pick<IngestDeps, 'store' | 'minFreeBytes'>,
  bytes: number,
  what = 'the package',
): Promise<void> {
  // Packages on S3 never touch the local disk: only its reserve is guarded, not the package's size.
  if (deps.store.kind === 's3') bytes = 0;
  if (deps.minFreeBytes <= 0 && bytes <= 0) return;
  const { freeBytes } = await deps.store.diskUsage();
  if (freeBytes - bytes < deps.minFreeBytes) {
    throw new AppError(
      'INSUFFICIENT_STORAGE',
      `not enough disk space for ${what} (${bytes} bytes): ${freeBytes} bytes are free and ${deps.minFreeBytes} must stay free; nothing was stored`,
      { needed: bytes, freeBytes, minFreeBytes: deps.minFreeBytes },
    );
  }
}

export async function ingest(deps: IngestDeps, request: IngestRequest): Promise<IngestResult> {
  // A size known up front is checked by the fs store; of an unknown one, or on S3 (which writes nothing locally),
  // at least refuse when the reserve is already gone.
  if (request.expectedSize === undefined || deps.store.kind === 's3') await assertFreeSpace(deps, 0);
  return commit(deps, request, () =>
    deps.store.stage(request.source, {
      expectedSha256: request.expectedSha256,
      expectedSize: request.expectedSize,
      minFreeBytes: deps.minFreeBytes,
      signal: request.signal,
      onProgress: request.onProgress,
    }),
  );
}

/**
 * The same ingest for a finished resumable upload: the file already lies in
 * the data dir, so it is adopted by rename instead of copied.
 */
export async function ingestUploadedFile(
  deps: IngestDeps,
  upload: {
    file: string;
    fileName: string;
    knownSha256?: Sha256 | undefined;
    expectedSha256?: Sha256 | undefined;
    arch?: BlobArch | undefined;
  },
): Promise<IngestResult> {
  return commit(deps, upload, () =>
    deps.store.stageFile(upload.file, { knownSha256: upload.knownSha256, expectedSha256: upload.expectedSha256 }),
  );
}

/**
 * The same for a finished resumable upload kept in the bucket (MIRROR_STORAGE=s3): the object under
 * uploads/ is made a blob by a server-side copy, never downloaded again, and is deleted whatever the outcome.
 */
export async function ingestUploadedObject(
  deps: IngestDeps,
  upload: {
    key: string;
    fileName: string;
    knownSha256?: Sha256 | undefined;
    expectedSha256?: Sha256 | undefined;
    arch?: BlobArch | undefined;
  },
): Promise<IngestResult> {
  const stageObject = deps.store.stageObject?.bind(deps.store);
  if (!stageObject) throw new AppError('INTERNAL', `the ${deps.store.kind} blob store cannot adopt a bucket object`);
  return commit(deps, upload, () =>
    stageObject(upload.key, { knownSha256: upload.knownSha256, expectedSha256: upload.expectedSha256 }),
  );
}

/**
 * Stages through `stage`, then records the row and renames the file into
 * place as one step (withBlobLock): a check, GC or rollback deciding about
 * the same digest sees either both or neither. Counts, heartbeats and the
 * optional re-check around it.
 */
async function commit(
  deps: IngestDeps,
  {
    fileName,
    expectedSha256,
    arch,
    kind,
  }: {
    fileName: string;
    expectedSha256?: Sha256 | undefined;
    arch?: BlobArch | undefined;
    kind?: BlobKind | undefined;
  },
  stage: () => Promise<StagedBlob>,
): Promise<IngestResult> {
  const endActivity = expectedSha256 ? deps.activity?.begin(expectedSha256) : undefined;
  let result: IngestResult;
  try {
    const staged = await stage();
    try {
      result = await withBlobLock(deps.db, async (trx) => {
        const blob = await recordIngestedBlob(trx, {
          sha256: staged.sha256,
          size: staged.size,
          name: linkFileName(fileName, kind === 'update' ? 'dmg' : 'pvmp'),
          nowMs: deps.clock.now(),
          arch,
          kind,
        });
        // Last, so a failed rename rolls the row back.
        const put = await staged.commit();
        return { blob, created: put.created, version: put.version };
      });
    } finally {
      await staged.discard();
    }
  } catch (err) {
    deps.metrics?.ingests.inc({ result: 'failed' });
    throw err;
  } finally {
    endActivity?.();
  }
  deps.metrics?.ingests.inc({ result: result.created ? 'stored' : 'duplicate' });
  deps.metrics?.ingestBytes.inc(result.blob.size);
  if (deps.verifyAfterIngest) {
    const verdict = await deps.verifyAfterIngest(result.blob.sha256 as Sha256);
    // 'replaced': another ingest of the same content landed meanwhile, and it was verified by its own hash.
    if (verdict !== 'ok' && verdict !== 'replaced') {
      throw new AppError(
        'DIGEST_MISMATCH',
        `the package was stored, but reading it back from disk did not give sha256 ${result.blob.sha256} (${verdict}); ` +
          'it is withheld from download; check the disk and import it again',
        { sha256: result.blob.sha256, verdict },
      );
    }
  }
  return result;
}

/** Large reads: 1 MiB chunks measured about 2.5x faster than the 64 KiB default here. */
export const READ_CHUNK_BYTES = 1 << 20;

export async function ingestFile(
  deps: IngestDeps,
  file: string,
  options: Omit<IngestRequest, 'source' | 'fileName' | 'expectedSize'> = {},
): Promise<IngestResult> {
  const handle = await fs.open(file, 'r');
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new AppError('FILE_UNREADABLE', `${file} is not a regular file`);
    const source = createReadStream('', { fd: handle, highWaterMark: READ_CHUNK_BYTES, autoClose: false });
    return await ingest(deps, { ...options, source, fileName: path.basename(file), expectedSize: st.size });
  } finally {
    await handle.close();
  }
}

/**
 * Undoes one ingest (a failed bundle import's packages), unless another party
 * has a claim on the package by now: an image uses it, or another ingest of
 * the same content stored it again meanwhile (a newer ingest time or another
 * file). Decision and file move are one withBlobLock step, so such an ingest
 * commits entirely before (and is seen) or after (and stores it afresh).
 */
export async function removeUnclaimedIngest(
  deps: Pick<ServiceDeps, 'db' | 'store'>,
  blob: { sha256: Sha256; ingestedAt: number | null; version: string },
): Promise<void> {
  const detached = await withBlobLock(deps.db, async (trx) => {
    const row = await findBlob(trx, blob.sha256);
    if (!row || row.ingested_at !== blob.ingestedAt || (await deps.store.version(blob.sha256)) !== blob.version)
      return null;
    if ((await imagesUsing(trx, [blob.sha256])).length > 0) return null;
    await deleteBlobRow(trx, blob.sha256);
    return deps.store.detach(blob.sha256);
  });
  await detached?.discard();
}
