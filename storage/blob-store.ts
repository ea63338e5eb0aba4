/**
 * Content-addressed blob store: the interface, and its implementation on a
 * local filesystem. storage/s3/ implements the same interface on an
 * S3-compatible bucket (openStore() picks one from the configuration).
 *
 * The interface is deliberately small (put / open / stat / detach / list, plus
 * quarantine and temp clean-up). It knows files and digests only: no
 * database, no HTTP. The filesystem steps live beside it: ingest.ts (stage,
 * validate, commitFile), reading.ts (open, stat, version), maintenance.ts
 * (detach, list, quarantine, temp clean-up).
 */
import type { Sha256 } from './digest.js';
import { DATA_DIR_MODE, ensureDir, PRIVATE_DIR_MODE } from './file-modes.js';
import { diskUsage, isErrno } from './fs-utils.js';
import { commitStaged, stageFile, stageStream, type AdoptOptions } from './ingest.js';
import { createLayout, type Layout } from './layout.js';
import { detachBlob, leftDetached, listBlobs, quarantineBlob, removeStaleTmpFiles } from './maintenance.js';
import { blobVersion, blobVersionSync, openBlob, statBlob } from './reading.js';
import type { S3Settings, S3UploadTarget } from './s3/client.js';

export { isErrno };
export type { AdoptOptions };

/** Where ingested bytes come from: a stream, or (tests, small data) an array of chunks. Chunks must not be reused after they are yielded. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface BlobInfo {
  sha256: Sha256;
  size: number;
}

/** A blob as list() finds it, with the time its file or object was last written. */
export interface ListedBlob extends BlobInfo {
  modifiedMs: number;
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

export interface StaleTmpOptions {
  /**
   * This process is running ingests (a GC pass), so files under its own PID are its own and kept. Without it (at
   * start, before any ingest) they can only be an earlier process's that had the same PID.
   */
  whileRunning?: boolean | undefined;
}

/** A blob moved out of sight by detach(); discard() removes it for good. */
export interface DetachedBlob {
  discard(): Promise<void>;
}

/** A detached file whose delete never finished; decided by the caller inside the blob lock. */
export interface LeftDetached {
  readonly sha256: Sha256;
  /** Puts the file back under blobs/; false when a file is already there (then discard this one). */
  restore(): Promise<boolean>;
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
   * round trip through the thread pool. Only local files have it.
   */
  readSync?(target: Buffer, length: number, position: number): number;
  close(): Promise<void>;
}

/**
 * Files of one digest change only through StagedBlob.commit(), quarantine()
 * and detach(). The server calls each of them inside a database transaction
 * together with the decision it acts on (server/db/blob-lock.ts), so
 * two of them never interleave, in one process or across processes.
 */
export interface BlobStore {
  readonly kind: 'fs' | 's3';
  /** Where the blobs are, for messages: the blobs directory, or "bucket b at <endpoint>". */
  readonly location: string;
  /** The local data directory (database file, temp files, uploads); on S3 it holds no blobs. */
  readonly layout: Layout;
  /** Streams, hashes and checks the content into a temp file (steps 1 to 3 of put()), ready to commit. */
  stage(source: ByteSource, options?: PutOptions): Promise<StagedBlob>;
  /** stage() then commit(): for callers with no decision to make atomic with the rename. */
  put(source: ByteSource, options?: PutOptions): Promise<PutResult>;
  /** adoptFile() up to the rename: hashed, checked, fsynced, made private, ready to commit. */
  stageFile(file: string, options: AdoptOptions): Promise<StagedBlob>;
  /**
   * Moves a finished file from inside the data dir (a resumable upload) into
   * the store without copying it: hashed by reading unless `knownSha256` was
   * computed while it streamed in, checked against `expectedSha256`, fsynced,
   * renamed. On any failure the file is removed: nothing partial survives.
   */
  adoptFile(file: string, options: AdoptOptions): Promise<PutResult>;
  open(sha256: Sha256): Promise<BlobReader>;
  stat(sha256: Sha256): Promise<BlobInfo | null>;
  /** The current version of the blob's file (see BlobReader.version), or null when it is missing. */
  version(sha256: Sha256): Promise<string | null>;
  /** The same, blocking: one metadata lookup, for the download hot path (local files only; objects never go stale). */
  versionSync?(sha256: Sha256): string | null;
  /** Moves the blob's file out of blobs/ until the caller's row change commits; see the implementation. */
  detach(sha256: Sha256): Promise<DetachedBlob | null>;
  /** What detach() left without a discard(): deletes of dead processes, and this process's in flight. */
  leftDetached(): Promise<LeftDetached[]>;
  list(): AsyncIterable<ListedBlob>;
  /** Moves a blob's file aside (not deleted); resolves to its new path, or null when it was missing. */
  quarantine(sha256: Sha256, atMs: number): Promise<string | null>;
  /** Removes temp files (and on S3 temp objects and open uploads) whose writer is gone; returns what it removed. */
  removeStaleTmpFiles(options?: StaleTmpOptions): Promise<string[]>;
  /** Free and total bytes of the local filesystem of the data directory (on fs: the blobs' too). */
  diskUsage(): Promise<{ freeBytes: number; totalBytes: number }>;
  /** S3 only: a finished object under uploads/ (a resumable upload) made a blob by a server-side copy. */
  stageObject?(key: string, options: AdoptOptions): Promise<StagedBlob>;
  /**
   * S3 only: the bucket answers and, with `write`, takes a write and a delete
   * of a probe object; rejects with STORAGE_UNAVAILABLE naming what failed
   * (details.problem: 'not reachable' or 'not writable').
   */
  checkBucket?(options: { write: boolean; signal?: AbortSignal | undefined }): Promise<void>;
  /** S3 only: the bucket, key prefix (uploads/) and client settings resumable uploads use, so every node shares them. */
  uploadTarget?(): S3UploadTarget;
  /** S3 only: blobs in the bucket and their bytes (counted by listing, cached for a little while). */
  bucketUsage?(): Promise<{ objects: number; bytes: number }>;
  /** S3 only: a URL that fetches the blob without credentials until it expires. */
  presignDownload?(sha256: Sha256, options: { contentDisposition: string; expiresInSeconds: number }): Promise<string>;
}

/** Where the blobs go: the data directory (default), or a bucket. */
export type StoreBackend = { kind: 'fs' } | ({ kind: 's3' } & S3Backend);

export interface S3Backend {
  settings: S3Settings;
  /** Objects above this are copied part by part (tests lower it to reach that path with small data). */
  singleCopyMaxBytes?: number | undefined;
}

/**
 * Opens the store, creating missing directories with the modes of
 * storage/file-modes.ts (a bucket store keeps its local data directory too).
 * A bucket is checked for reads and writes first; the S3 SDK is loaded only then.
 */
export async function openBlobStore(dataDir: string, backend: StoreBackend = { kind: 'fs' }): Promise<BlobStore> {
  const layout = createLayout(dataDir);
  await ensureDir(layout.root, DATA_DIR_MODE);
  await ensureDir(layout.blobsDir, DATA_DIR_MODE);
  await ensureDir(layout.tmpDir, PRIVATE_DIR_MODE);
  await ensureDir(layout.quarantineDir, PRIVATE_DIR_MODE);
  await ensureDir(layout.uploadsDir, PRIVATE_DIR_MODE);
  if (backend.kind === 's3') {
    const { openS3BlobStore } = await import('./s3/store.js');
    return openS3BlobStore(layout, backend.settings, { singleCopyMaxBytes: backend.singleCopyMaxBytes });
  }
  return fsBlobStore(layout);
}

/** Not frozen: tests wrap it in a Proxy that swaps single methods for failing ones. */
function fsBlobStore(layout: Layout): BlobStore {
  return {
    kind: 'fs',
    location: layout.blobsDir,
    layout,
    stage: (source: ByteSource, options?: PutOptions) => stageStream(layout, source, options),
    put: async (source: ByteSource, options?: PutOptions) => commitStaged(await stageStream(layout, source, options)),
    stageFile: (file: string, options: AdoptOptions) => stageFile(layout, file, options),
    adoptFile: async (file: string, options: AdoptOptions) => commitStaged(await stageFile(layout, file, options)),
    open: (sha256: Sha256) => openBlob(layout, sha256),
    stat: (sha256: Sha256) => statBlob(layout, sha256),
    version: (sha256: Sha256) => blobVersion(layout, sha256),
    versionSync: (sha256: Sha256) => blobVersionSync(layout, sha256),
    detach: (sha256: Sha256) => detachBlob(layout, sha256),
    leftDetached: () => leftDetached(layout),
    list: () => listBlobs(layout),
    quarantine: (sha256: Sha256, atMs: number) => quarantineBlob(layout, sha256, atMs),
    removeStaleTmpFiles: (options?: StaleTmpOptions) => removeStaleTmpFiles(layout, options),
    diskUsage: () => diskUsage(layout.blobsDir),
  };
}
