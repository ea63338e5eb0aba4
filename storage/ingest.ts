/**
 * Getting bytes into the store, in named steps (after cacache and the OCI
 * distribution registry's blob writer):
 * 1. check free space up front when the size is known;
 * 2. stream into a fresh temp file in tmp/ (same filesystem as blobs/,
 *    created 0600), hashing every chunk exactly once on the way;
 * 3. validate size and digest against what the caller expected, fsync;
 * 4. commitFile(): rename it to its digest path, fsync the directory;
 * 5. in every other outcome remove the temp file, so nothing partial is
 *    ever visible under blobs/.
 * stageStream() and stageFile() (a finished upload already in the data dir)
 * run steps 1 to 3; the StagedBlob they return does 4 and 5.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ByteSource, PutOptions, PutResult, StagedBlob } from './blob-store.js';
import { isSha256, newSha256, type Sha256 } from './digest.js';
import { AppError } from '../server/errors.js';
import { createFile, DATA_DIR_MODE, ensureDir, FILE_MODE } from './file-modes.js';
import { diskUsage, fileExists, fileVersion, fsyncDir, isErrno } from './fs-utils.js';
import type { Layout } from './layout.js';

/** Bytes gathered before one write to disk: large writes are far cheaper than many small ones. */
const WRITE_BATCH_BYTES = 1 << 20;
/** How often an ingest of unknown length re-checks free space while it writes. */
const FREE_SPACE_CHECK_BYTES = 256 << 20;

export interface AdoptOptions {
  /** The digest computed while the file streamed in; skips reading it again. */
  knownSha256?: Sha256 | undefined;
  expectedSha256?: Sha256 | undefined;
}

interface Content {
  sha256: Sha256;
  size: number;
}

/** Steps 1 to 3 for a stream: the temp file is the caller's (via the StagedBlob) only once it is verified. */
export async function stageStream(layout: Layout, source: ByteSource, options: PutOptions = {}): Promise<StagedBlob> {
  const { expectedSha256, expectedSize, minFreeBytes = 0, signal } = options;
  if (expectedSha256 !== undefined && !isSha256(expectedSha256)) {
    throw new AppError('DIGEST_INVALID', `expected digest is not a sha256: ${String(expectedSha256)}`);
  }
  signal?.throwIfAborted();
  if (expectedSize !== undefined) await assertRoomFor(layout, expectedSize, minFreeBytes);

  const tmpFile = layout.newTmpFile();
  const handle = await createFile(tmpFile, FILE_MODE);
  let handedOver = false;
  try {
    let content: Content;
    try {
      content = await writeHashed(layout, handle, source, options);
      validateContent(content, options);
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    await handle.close();
    handedOver = true;
    return stagedBlob(layout, tmpFile, content);
  } catch (err) {
    throw translateIoError(err);
  } finally {
    if (!handedOver) await fs.rm(tmpFile, { force: true }).catch(() => undefined);
  }
}

/**
 * Steps 2 and 3 for a finished file inside the data dir (a resumable upload):
 * hashed by reading unless `knownSha256` was computed while it streamed in,
 * checked, fsynced, made private. On any failure the file is removed.
 */
export async function stageFile(layout: Layout, file: string, options: AdoptOptions): Promise<StagedBlob> {
  const inside = path.relative(layout.root, path.resolve(file));
  if (inside.startsWith('..') || path.isAbsolute(inside))
    throw new Error(`refusing to adopt ${file}: not inside the data directory`);
  let handedOver = false;
  try {
    const handle = await fs.open(file, 'r+');
    let content: Content;
    try {
      // Whoever wrote it (the tus library) chose its mode; a blob is private.
      await handle.chmod(FILE_MODE);
      const size = (await handle.stat()).size;
      content = { size, sha256: options.knownSha256 ?? (await hashFile(handle, size)) };
      validateContent(content, options);
      await handle.sync();
    } finally {
      await handle.close();
    }
    handedOver = true;
    return stagedBlob(layout, file, content);
  } finally {
    if (!handedOver) await fs.rm(file, { force: true }).catch(() => undefined);
  }
}

/** stage then commit, for callers with no decision to make atomic with the rename. */
export async function commitStaged(staged: StagedBlob): Promise<PutResult> {
  try {
    return await staged.commit();
  } finally {
    await staged.discard();
  }
}

/**
 * Step 4: moves `file` (verified, fsynced content of `sha256`) to its digest
 * path and makes the rename durable. Renaming over an existing blob is atomic
 * and replaces it with content that was just verified, which also repairs a
 * file that rotted.
 */
export async function commitFile(
  layout: Layout,
  file: string,
  sha256: Sha256,
): Promise<{ created: boolean; version: string }> {
  const finalFile = layout.blobFile(sha256);
  await ensureDir(layout.blobDir(sha256), DATA_DIR_MODE);
  // A rename keeps inode and mtime, so this is the version of the file once it is in place.
  const version = fileVersion(await fs.stat(file));
  const existed = await fileExists(finalFile);
  await fs.rename(file, finalFile);
  await fsyncDir(layout.blobDir(sha256));
  return { created: !existed, version };
}

function stagedBlob(layout: Layout, file: string, { sha256, size }: Content): StagedBlob {
  let state: 'staged' | 'committed' | 'discarded' = 'staged';
  return {
    sha256,
    size,
    commit: async () => {
      if (state !== 'staged') throw new Error(`staged blob ${sha256} was already ${state}`);
      const { created, version } = await commitFile(layout, file, sha256);
      state = 'committed';
      return { sha256, size, created, version };
    },
    discard: async () => {
      if (state !== 'staged') return;
      state = 'discarded';
      await fs.rm(file, { force: true }).catch(() => undefined);
    },
  };
}

/** Step 2's check, as bytes arrive: refuses content already longer than announced, before storing more of it. */
export function assertNotLonger(size: number, expectedSize: number | undefined): void {
  if (expectedSize !== undefined && size > expectedSize) {
    throw new AppError('SIZE_MISMATCH', `content is longer than the expected ${expectedSize} bytes`, {
      expected: expectedSize,
    });
  }
}

/** Step 3's check: the content is what the caller said it would be, or nothing is stored. */
export function validateContent(
  content: Content,
  expected: { expectedSize?: number | undefined; expectedSha256?: Sha256 | undefined },
): void {
  const { expectedSize, expectedSha256 } = expected;
  if (expectedSize !== undefined && content.size !== expectedSize) {
    throw new AppError('SIZE_MISMATCH', `content ended after ${content.size} bytes, expected ${expectedSize}`, {
      expected: expectedSize,
      actual: content.size,
    });
  }
  if (expectedSha256 !== undefined && content.sha256 !== expectedSha256) {
    throw new AppError(
      'DIGEST_MISMATCH',
      `content hashes to sha256 ${content.sha256}, but ${expectedSha256} was expected; nothing was stored`,
      { expected: expectedSha256, actual: content.sha256 },
    );
  }
}

/**
 * Step 2: writes `source` to `handle` in large batches, hashing each chunk
 * once. One write may be in flight while the next batch is gathered and
 * hashed, so hashing (main thread) and writing (thread pool) overlap; none is
 * in flight when this returns or throws.
 */
async function writeHashed(
  layout: Layout,
  handle: fs.FileHandle,
  source: ByteSource,
  options: PutOptions,
): Promise<Content> {
  const { expectedSize, minFreeBytes = 0, signal, onProgress } = options;
  const hash = newSha256();
  let size = 0;
  let written = 0;
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let nextSpaceCheck = FREE_SPACE_CHECK_BYTES;
  // The one write that may be in flight; a holder object because the flush closure reassigns it.
  const writing: { inflight: Promise<void> | null } = { inflight: null };
  const flush = async (): Promise<void> => {
    if (writing.inflight) await writing.inflight;
    const buffers = batch;
    const bytes = batchBytes;
    batch = [];
    batchBytes = 0;
    const write = writeFully(handle, buffers, written).then(() => {
      written += bytes;
      onProgress?.(written);
    });
    // Its failure is thrown where it is awaited (next flush or the end); until then it must count
    // as handled, or a write failing (ENOSPC) while the loop waits on a slow source kills the process.
    write.catch(() => undefined);
    writing.inflight = write;
  };
  try {
    for await (const chunk of source) {
      signal?.throwIfAborted();
      if (chunk.byteLength === 0) continue;
      hash.update(chunk);
      size += chunk.byteLength;
      assertNotLonger(size, expectedSize);
      batch.push(chunk);
      batchBytes += chunk.byteLength;
      if (batchBytes >= WRITE_BATCH_BYTES) {
        await flush();
        if (expectedSize === undefined && minFreeBytes > 0 && size >= nextSpaceCheck) {
          nextSpaceCheck = size + FREE_SPACE_CHECK_BYTES;
          await assertRoomFor(layout, 0, minFreeBytes);
        }
      }
    }
    signal?.throwIfAborted();
    if (batchBytes > 0) await flush();
    if (writing.inflight) await writing.inflight;
    writing.inflight = null;
    return { sha256: hash.digest('hex') as Sha256, size };
  } finally {
    if (writing.inflight) await writing.inflight.catch(() => undefined);
  }
}

async function hashFile(handle: fs.FileHandle, size: number): Promise<Sha256> {
  const hash = newSha256();
  const buffer = Buffer.allocUnsafe(1 << 20);
  for (let position = 0; position < size;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest('hex') as Sha256;
}

async function writeFully(handle: fs.FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  let done = (await handle.writev(buffers, position)).bytesWritten;
  if (done === total) return;
  // Short writes are rare on files, but possible (e.g. a disk filling up).
  const rest = Buffer.concat(buffers.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength))).subarray(done);
  let offset = 0;
  while (offset < rest.length) {
    const { bytesWritten } = await handle.write(rest, offset, rest.length - offset, position + done);
    if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'ENOSPC' });
    offset += bytesWritten;
    done += bytesWritten;
  }
}

async function assertRoomFor(layout: Layout, bytes: number, minFreeBytes: number): Promise<void> {
  const { freeBytes } = await diskUsage(layout.blobsDir);
  if (freeBytes - bytes < minFreeBytes) {
    throw new AppError(
      'INSUFFICIENT_STORAGE',
      `not enough disk space: storing ${bytes} bytes would leave ${Math.max(0, freeBytes - bytes)} bytes free, ` +
        `the configured minimum is ${minFreeBytes}`,
      { needed: bytes, freeBytes, minFreeBytes },
    );
  }
}

function translateIoError(err: unknown): unknown {
  if (isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT')) {
    return new AppError(
      'INSUFFICIENT_STORAGE',
      'the disk filled up during the ingest; nothing was stored',
      {},
      { cause: err },
    );
  }
  return err;
}
