/**
 * Content-addressed blob store on a local filesystem.
 *
 * The interface is deliberately small (put / open / stat / detach / list, plus
 * quarantine and temp clean-up) so that an object-storage backend can stand
 * behind it later. It knows files and digests only: no database, no HTTP.
 */
import { constants as fsConstants, readSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isSha256, newSha256, type Sha256 } from './digest.js';
import { AppError } from '../server/errors.js';
import { createFile, DATA_DIR_MODE, ensureDir, FILE_MODE, PRIVATE_DIR_MODE } from './file-modes.js';
import { createLayout, parseDetachedFile, tmpFileOwnerPid, type Layout } from './layout.js';

/** Where ingested bytes come from: a stream, or (tests, small data) an array of chunks. Chunks must not be reused after they are yielded. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface BlobInfo {
  sha256: Sha256;
  size: number;
}

export interface PutOptions {
  /** When set, the content must hash to this digest or nothing is stored. */
  expectedSha256?: Sha256 | undefined;
  /** When set, the content must be exactly this long; also used up front by the free-space guard. */
  expectedSize?: number | undefined;
  /** Refuse the ingest when it would leave fewer free bytes than this. */
  minFreeBytes?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Called after each batch reaches the disk with the total bytes written so far. */
  onProgress?: ((bytesWritten: number) => void) | undefined;
}

/** A blob moved out of sight by detach(); discard() removes it for good. */
export interface DetachedBlob {
  discard(): Promise<void>;
}

export interface PutResult extends BlobInfo {
  /** False when a blob with this digest was already stored (its file is refreshed in place). */
  created: boolean;
  /** The version (see BlobReader.version) of the file this call put in place. */
  version: string;
}

/**
 * Verified bytes waiting in a temp file, not yet visible under blobs/. Callers
 * that must make "install the file" atomic with a decision elsewhere (a
 * database row) call commit() inside that decision's critical section.
 */
export interface StagedBlob extends BlobInfo {
  /** Renames the file into place (replacing an existing copy) and fsyncs the directory. At most once. */
  commit(): Promise<PutResult>;
  /** Removes the temp file unless it was committed; safe to call always (e.g. in finally). */
  discard(): Promise<void>;
}

/** Random-access reader over one blob; callers own the buffers and must close it. */
export interface BlobReader {
  readonly size: number;
  /** Changes whenever the blob's file is replaced (re-ingest), so a long check can tell it read a stale copy. */
  readonly version: string;
  /** Reads up to `length` bytes at `position` into `target`; resolves to the count read (0 at end). */
  read(target: Buffer, length: number, position: number): Promise<number>;
  /**
   * The same, blocking. Only for small reads on the hot path: for a few KiB
   * from the page cache a direct read costs microseconds, far less than a
   * round trip through the thread pool.
   */
  readSync(target: Buffer, length: number, position: number): number;
  close(): Promise<void>;
}

/**
 * Files of one digest change only through StagedBlob.commit(), quarantine()
 * and detach(). The server calls each of them inside a database transaction
 * together with the decision it acts on (server/db/blob-lock.ts), so
 * two of them never interleave, in one process or across processes.
 */
export interface BlobStore {
  readonly layout: Layout;
  /** Streams, hashes and checks the content into a temp file (steps 1 to 3 of put()), ready to commit. */
  stage(source: ByteSource, options?: PutOptions): Promise<StagedBlob>;
  /** stage() then commit(): for callers with no decision to make atomic with the rename. */
  put(source: ByteSource, options?: PutOptions): Promise<PutResult>;
  /** adoptFile() up to the rename: hashed, checked, fsynced, made private, ready to commit. */
  stageFile(file: string, options: { knownSha256?: Sha256 | undefined; expectedSha256?: Sha256 | undefined }): Promise<StagedBlob>;
  /**
   * Moves a finished file from inside the data dir (a resumable upload) into
   * the store without copying it: hashed by reading unless `knownSha256` was
   * computed while it streamed in, checked against `expectedSha256`, fsynced,
   * renamed. On any failure the file is removed: nothing partial survives.
   */
  adoptFile(file: string, options: { knownSha256?: Sha256 | undefined; expectedSha256?: Sha256 | undefined }): Promise<PutResult>;
  open(sha256: Sha256): Promise<BlobReader>;
  stat(sha256: Sha256): Promise<BlobInfo | null>;
  /** The current version of the blob's file (see BlobReader.version), or null when it is missing. */
  version(sha256: Sha256): Promise<string | null>;
  /** The same, blocking: one metadata lookup, for the download hot path. */
  versionSync(sha256: Sha256): string | null;
  /** Moves the blob's file out of blobs/ until the caller's row change commits; see the implementation. */
  detach(sha256: Sha256): Promise<DetachedBlob | null>;
  /** Puts back or removes what detach() left when its process died before discard(). */
  recoverDetached(hasRow: (sha256: Sha256) => Promise<boolean>): Promise<{ restored: Sha256[]; removed: Sha256[] }>;
  list(): AsyncIterable<BlobInfo>;
  /** Moves a blob's file aside (not deleted); resolves to its new path, or null when it was missing. */
  quarantine(sha256: Sha256, atMs: number): Promise<string | null>;
  /** Removes temp files whose writer is gone; returns the removed paths. */
  removeStaleTmpFiles(): Promise<string[]>;
  /** Free and total bytes of the filesystem holding the blobs. */
  diskUsage(): Promise<{ freeBytes: number; totalBytes: number }>;
}

/** Bytes gathered before one write to disk: large writes are far cheaper than many small ones. */
const WRITE_BATCH_BYTES = 1 << 20;
/** How often an ingest of unknown length re-checks free space while it writes. */
const FREE_SPACE_CHECK_BYTES = 256 << 20;

/** Opens the store, creating missing directories with the modes of storage/file-modes.ts. */
export async function openBlobStore(dataDir: string): Promise<BlobStore> {
  const layout = createLayout(dataDir);
  await ensureDir(layout.root, DATA_DIR_MODE);
  await ensureDir(layout.blobsDir, DATA_DIR_MODE);
  await ensureDir(layout.tmpDir, PRIVATE_DIR_MODE);
  await ensureDir(layout.quarantineDir, PRIVATE_DIR_MODE);
  await ensureDir(layout.uploadsDir, PRIVATE_DIR_MODE);
  return new FsBlobStore(layout);
}

class FsBlobStore implements BlobStore {
  readonly layout: Layout;

  constructor(layout: Layout) {
    this.layout = layout;
  }

  /**
   * Ingest algorithm (after cacache and the OCI distribution registry):
   * 1. check free space up front when the size is known;
   * 2. stream into a fresh temp file in tmp/ (same filesystem as blobs/,
   *    created 0600), hashing every chunk exactly once on the way;
   * 3. check size and digest against what the caller expected, fsync;
   * 4. commit: rename it to its digest path, fsync the directory;
   * 5. in every other outcome remove the temp file, so nothing partial is
   *    ever visible under blobs/.
   * stage() runs steps 1 to 3; the StagedBlob it returns does 4 and 5.
   */
  async stage(source: ByteSource, options: PutOptions = {}): Promise<StagedBlob> {
    const { expectedSha256, expectedSize, minFreeBytes = 0, signal, onProgress } = options;
    if (expectedSha256 !== undefined && !isSha256(expectedSha256)) {
      throw new AppError('DIGEST_INVALID', `expected digest is not a sha256: ${String(expectedSha256)}`);
    }
    signal?.throwIfAborted();
    if (expectedSize !== undefined) await this.#assertRoomFor(expectedSize, minFreeBytes);

    const tmpFile = this.layout.newTmpFile();
    const handle = await createFile(tmpFile, FILE_MODE);
    let handleOpen = true;
    let staged = false;
    // The one write that may be in flight; a holder object because the flush closure reassigns it.
    const writing: { inflight: Promise<void> | null } = { inflight: null };
    try {
      const hash = newSha256();
      let size = 0;
      let written = 0;
      let batch: Uint8Array[] = [];
      let batchBytes = 0;
      let nextSpaceCheck = FREE_SPACE_CHECK_BYTES;
      // One write may be in flight while the next batch is gathered and hashed,
      // so hashing (main thread) and writing (thread pool) overlap.
      const flush = async (): Promise<void> => {
        if (writing.inflight) await writing.inflight;
        const buffers = batch;
        const bytes = batchBytes;
        batch = [];
        batchBytes = 0;
        const inflight = writeFully(handle, buffers, written).then(() => {
          written += bytes;
          onProgress?.(written);
        });
        // Its failure is thrown where it is awaited (next flush or the end). Until then it must count as
        // handled: a write failing (ENOSPC) while the loop waits on a slow source was an unhandled
        // rejection that killed the process and left the temp file behind (test/faults/disk-full.test.ts).
        inflight.catch(() => undefined);
        writing.inflight = inflight;
      };
      for await (const chunk of source) {
        signal?.throwIfAborted();
        if (chunk.byteLength === 0) continue;
        hash.update(chunk);
        size += chunk.byteLength;
        if (expectedSize !== undefined && size > expectedSize) {
          throw new AppError('SIZE_MISMATCH', `content is longer than the expected ${expectedSize} bytes`, {
            expected: expectedSize,
          });
        }
        batch.push(chunk);
        batchBytes += chunk.byteLength;
        if (batchBytes >= WRITE_BATCH_BYTES) {
          await flush();
          if (expectedSize === undefined && minFreeBytes > 0 && size >= nextSpaceCheck) {
            nextSpaceCheck = size + FREE_SPACE_CHECK_BYTES;
            await this.#assertRoomFor(0, minFreeBytes);
          }
        }
      }
      signal?.throwIfAborted();
      if (batchBytes > 0) await flush();
      if (writing.inflight) await writing.inflight;
      writing.inflight = null;

      if (expectedSize !== undefined && size !== expectedSize) {
        throw new AppError(
          'SIZE_MISMATCH',
          `content ended after ${size} bytes, expected ${expectedSize}`,
          { expected: expectedSize, actual: size },
        );
      }
      const sha256 = hash.digest('hex') as Sha256;
      if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
        throw new AppError(
          'DIGEST_MISMATCH',
          `content hashes to sha256 ${sha256}, but ${expectedSha256} was expected; nothing was stored`,
          { expected: expectedSha256, actual: sha256 },
        );
      }
      await handle.sync();
      await handle.close();
      handleOpen = false;
      staged = true;
      return this.#staged(tmpFile, sha256, size);
    } catch (err) {
      throw translateIoError(err);
    } finally {
      if (writing.inflight) await writing.inflight.catch(() => undefined);
      if (handleOpen) await handle.close().catch(() => undefined);
      if (!staged) await fs.rm(tmpFile, { force: true }).catch(() => undefined);
    }
  }

  async put(source: ByteSource, options: PutOptions = {}): Promise<PutResult> {
    const staged = await this.stage(source, options);
    try {
      return await staged.commit();
    } finally {
      await staged.discard();
    }
  }

  async stageFile(
    file: string,
    options: { knownSha256?: Sha256 | undefined; expectedSha256?: Sha256 | undefined },
  ): Promise<StagedBlob> {
    const inside = path.relative(this.layout.root, path.resolve(file));
    if (inside.startsWith('..') || path.isAbsolute(inside)) throw new Error(`refusing to adopt ${file}: not inside the data directory`);
    let staged = false;
    try {
      const handle = await fs.open(file, 'r+');
      let size: number;
      let sha256: Sha256;
      try {
        // Whoever wrote it (the tus library) chose its mode; a blob is private.
        await handle.chmod(FILE_MODE);
        size = (await handle.stat()).size;
        if (options.knownSha256) {
          sha256 = options.knownSha256;
        } else {
          const hash = newSha256();
          const buffer = Buffer.allocUnsafe(1 << 20);
          for (let position = 0; position < size; ) {
            const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
            if (bytesRead === 0) break;
            hash.update(buffer.subarray(0, bytesRead));
            position += bytesRead;
          }
          sha256 = hash.digest('hex') as Sha256;
        }
        if (options.expectedSha256 !== undefined && sha256 !== options.expectedSha256) {
          throw new AppError(
            'DIGEST_MISMATCH',
            `content hashes to sha256 ${sha256}, but ${options.expectedSha256} was expected; nothing was stored`,
            { expected: options.expectedSha256, actual: sha256 },
          );
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      staged = true;
      return this.#staged(file, sha256, size);
    } finally {
      if (!staged) await fs.rm(file, { force: true }).catch(() => undefined);
    }
  }

  async adoptFile(
    file: string,
    options: { knownSha256?: Sha256 | undefined; expectedSha256?: Sha256 | undefined },
  ): Promise<PutResult> {
    const staged = await this.stageFile(file, options);
    try {
      return await staged.commit();
    } finally {
      await staged.discard();
    }
  }

  /** The commit half of an ingest: `file` holds verified, fsynced content of `sha256`. */
  #staged(file: string, sha256: Sha256, size: number): StagedBlob {
    let state: 'staged' | 'committed' | 'discarded' = 'staged';
    return {
      sha256,
      size,
      commit: async () => {
        if (state !== 'staged') throw new Error(`staged blob ${sha256} was already ${state}`);
        const finalFile = this.layout.blobFile(sha256);
        await ensureDir(this.layout.blobDir(sha256), DATA_DIR_MODE);
        // A rename keeps inode and mtime, so this is the version of the file once it is in place.
        const version = fileVersion(await fs.stat(file));
        const existed = await fileExists(finalFile);
        // Renaming over an existing blob is atomic and replaces it with content
        // that was just verified, which also repairs a file that rotted.
        await fs.rename(file, finalFile);
        state = 'committed';
        await fsyncDir(this.layout.blobDir(sha256));
        return { sha256, size, created: !existed, version };
      },
      discard: async () => {
        if (state !== 'staged') return;
        state = 'discarded';
        await fs.rm(file, { force: true }).catch(() => undefined);
      },
    };
  }

  async open(sha256: Sha256): Promise<BlobReader> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.layout.blobFile(sha256), fsConstants.O_RDONLY);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw blobUnknown(sha256);
      throw err;
    }
    try {
      const st = await handle.stat();
      const size = st.size;
      return {
        size,
        version: fileVersion(st),
        read: async (target, length, position) => (await handle.read(target, 0, length, position)).bytesRead,
        readSync: (target, length, position) => readSync(handle.fd, target, 0, length, position),
        close: () => handle.close(),
      };
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  async stat(sha256: Sha256): Promise<BlobInfo | null> {
    try {
      const st = await fs.stat(this.layout.blobFile(sha256));
      return { sha256, size: st.size };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
  }

  async version(sha256: Sha256): Promise<string | null> {
    try {
      return fileVersion(await fs.stat(this.layout.blobFile(sha256)));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
  }

  versionSync(sha256: Sha256): string | null {
    try {
      return fileVersion(statSync(this.layout.blobFile(sha256)));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
  }

  /**
   * The first half of a delete, for use inside the transaction that removes
   * the blob's row: moves the file out of blobs/ into tmp/ (one rename), so a
   * crash before the commit leaves a row and a file that recoverDetached()
   * puts back. Call discard() on the result once the transaction committed.
   * Null when there was no file.
   */
  async detach(sha256: Sha256): Promise<DetachedBlob | null> {
    const target = this.layout.detachedFile(sha256);
    try {
      await fs.rename(this.layout.blobFile(sha256), target);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
    return { discard: () => fs.rm(target, { force: true }) };
  }

  /**
   * Finishes the deletes of dead processes: a detached file whose row still
   * exists (the process died before its transaction committed) goes back
   * into blobs/, any other is removed. Returns what was restored and removed.
   */
  async recoverDetached(hasRow: (sha256: Sha256) => Promise<boolean>): Promise<{ restored: Sha256[]; removed: Sha256[] }> {
    const result = { restored: [] as Sha256[], removed: [] as Sha256[] };
    for (const name of await fs.readdir(this.layout.tmpDir)) {
      const detached = parseDetachedFile(name);
      if (!detached || isLiveWriter(detached.pid)) continue;
      const file = path.join(this.layout.tmpDir, name);
      if ((await hasRow(detached.sha256)) && !(await this.stat(detached.sha256))) {
        await ensureDir(this.layout.blobDir(detached.sha256), DATA_DIR_MODE);
        await fs.rename(file, this.layout.blobFile(detached.sha256));
        result.restored.push(detached.sha256);
      } else {
        await fs.rm(file, { force: true });
        result.removed.push(detached.sha256);
      }
    }
    return result;
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const fanout of (await fs.readdir(this.layout.blobsDir)).sort()) {
      if (!/^[0-9a-f]{2}$/.test(fanout)) continue;
      const dir = path.join(this.layout.blobsDir, fanout);
      let names: string[];
      try {
        names = await fs.readdir(dir);
      } catch (err) {
        if (isErrno(err, 'ENOTDIR') || isErrno(err, 'ENOENT')) continue;
        throw err;
      }
      for (const name of names.sort()) {
        if (!isSha256(name) || !name.startsWith(fanout)) continue;
        const info = await this.stat(name);
        if (info) yield info;
      }
    }
  }

  async quarantine(sha256: Sha256, atMs: number): Promise<string | null> {
    const target = this.layout.quarantineFile(sha256, atMs);
    try {
      await fs.rename(this.layout.blobFile(sha256), target);
      return target;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
  }

  async removeStaleTmpFiles(): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await fs.readdir(this.layout.tmpDir)) {
      const pid = tmpFileOwnerPid(name);
      if (pid === null || isLiveWriter(pid)) continue;
      const file = path.join(this.layout.tmpDir, name);
      await fs.rm(file, { force: true });
      removed.push(file);
    }
    return removed;
  }

  async diskUsage(): Promise<{ freeBytes: number; totalBytes: number }> {
    const st = await fs.statfs(this.layout.blobsDir);
    return { freeBytes: st.bavail * st.bsize, totalBytes: st.blocks * st.bsize };
  }

  async #assertRoomFor(bytes: number, minFreeBytes: number): Promise<void> {
    const { freeBytes } = await this.diskUsage();
    if (freeBytes - bytes < minFreeBytes) {
      throw new AppError(
        'INSUFFICIENT_STORAGE',
        `not enough disk space: storing ${bytes} bytes would leave ${Math.max(0, freeBytes - bytes)} bytes free, ` +
          `the configured minimum is ${minFreeBytes}`,
        { needed: bytes, freeBytes, minFreeBytes },
      );
    }
  }
}

/**
 * A temp file belongs to a live writer when its PID is alive and is not this
 * process: clean-up runs before this process starts any ingest, so a file
 * with our own PID was left by an earlier process that had the same PID
 * (common in containers, where the server is always PID 1 or 7).
 */
function isLiveWriter(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

function fileVersion(st: { ino: number; mtimeMs: number; size: number }): string {
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
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

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

function blobUnknown(sha256: Sha256): AppError {
  return new AppError('BLOB_UNKNOWN', `no blob with sha256 ${sha256} is stored`, { sha256 });
}

function translateIoError(err: unknown): unknown {
  if (isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT')) {
    return new AppError('INSUFFICIENT_STORAGE', 'the disk filled up during the ingest; nothing was stored', {}, { cause: err });
  }
  return err;
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
