/**
 * Resumable browser uploads with the tus protocol (@tus/server, the locks in
 * the database, so any process serving the same database continues an
 * upload). Where the bytes go follows the blob store: FileStore in
 * <data>/uploads on the same filesystem as the blobs (HashingFileStore,
 * below), or with MIRROR_STORAGE=s3 a multipart upload under the bucket's
 * uploads/ prefix that every node shares (HashingBucketStore,
 * upload-bucket-store.ts). Bytes are hashed as they arrive; bytes another
 * process received are hashed from the file (on S3: the whole object is read
 * once at the end). When an upload completes it is adopted into the blob store
 * through the common ingest path (by rename, or by a server-side copy in the
 * bucket), and its checksum file (if the admin picked one) is enforced. A
 * failed or mismatching upload leaves nothing.
 * The free-space guard (minFreeBytes, 507) runs when an upload is created with
 * a length, when a deferred length is declared, before every PATCH writes and
 * every GUARD_EVERY_BYTES while it writes, so no upload can fill the disk (on
 * S3 the local disk its parts pass through).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { IncomingMessage } from 'node:http';
import { FileStore } from '@tus/file-store';
import type { Upload } from '@tus/server';
import type { Hash } from 'node:crypto';
import type { BlobStore } from '../../storage/blob-store.js';
import type { BlobArch } from '../db/schema.js';
import { newSha256, parseChecksumText, type Sha256 } from '../../storage/digest.js';
import { AppError, errorBody, isError, toAppError } from '../errors.js';
import { downloadUrl } from '../links.js';
import type { Logger } from '../log.js';
import { assertPackageFileName, parseBlobArch } from '../services/blobs.js';
import {
  assertFreeSpace,
  ingestUploadedFile,
  ingestUploadedObject,
  READ_CHUNK_BYTES,
  type IngestDeps,
  type IngestResult,
} from '../services/ingest.js';
import { DatabaseLocker } from './upload-locker.js';
import {
  RunningWrites,
  tusAnswer,
  UploadServer,
  type FinishedUpload,
  type TrackedUploadStore,
  type TusOptions,
} from './upload-server.js';

export { UploadServer, type UnfinishedUpload } from './upload-server.js';

export const UPLOADS_PATH = '/api/v1/uploads';
/** Unfinished uploads are dropped after this long without being completed. */
const UPLOAD_EXPIRY_MS = 3 * 24 * 60 * 60 * 1000;

/** While a PATCH writes, free space is looked at again this often (concurrent uploads share the disk). */
const GUARD_EVERY_BYTES = 16 * 1024 * 1024;

/**
 * A PATCH that finds bytes this process did not hash (another process received them) hashes them
 * from the file first when they are at most this many (a few chunks: a client whose requests
 * alternate between processes); more are left for the end, read once when the upload completes.
 */
const CATCH_UP_MAX_BYTES = 256 * 1024 * 1024;

/** Free space an upload may still use: free bytes minus the reserve (the shared guard's arithmetic). */
type Headroom = () => Promise<number>;

/** Bytes [0, offset) of an upload, hashed in order. */
interface HashState {
  hash: Hash;
  offset: number;
}

/**
 * FileStore that hashes each PATCH body on its way to disk, under the free-space guard, and writes
 * only while this process's lock on the upload is confirmed (`fence`). The hash state is this
 * process's: bytes that another process received are hashed from the file (before the next PATCH
 * here when they are few, else when the upload completes), so a digest always covers every byte.
 */
export class HashingFileStore extends FileStore implements TrackedUploadStore {
  readonly running = new Map<string, HashState>();
  readonly #writes = new RunningWrites();
  readonly #guard: (bytes: number, what: string) => Promise<void>;
  readonly #headroom: Headroom;
  readonly #fence: (id: string) => boolean;
  readonly #catchUpMaxBytes: number;

  constructor(
    options: ConstructorParameters<typeof FileStore>[0],
    guard: (bytes: number, what: string) => Promise<void>,
    headroom: Headroom,
    fence: (id: string) => boolean,
    catchUpMaxBytes = CATCH_UP_MAX_BYTES,
  ) {
    super(options);
    this.#guard = guard;
    this.#headroom = headroom;
    this.#fence = fence;
    this.#catchUpMaxBytes = catchUpMaxBytes;
  }

  /** Upload-Length arriving on a PATCH of a deferred upload: the rest must fit, or 507 and the length stays open. */
  override async declareUploadLength(id: string, uploadLength: number): Promise<void> {
    const { offset } = await this.getUpload(id);
    try {
      await this.#guard(uploadLength - offset, `the declared Upload-Length of ${uploadLength} bytes`);
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      throw tusAnswer(toAppError(err));
    }
    return super.declareUploadLength(id, uploadLength);
  }

  override write(readable: IncomingMessage | Readable, id: string, offset: number): Promise<number> {
    return this.#writes.track(id, this.#receive(readable, id, offset));
  }

  settled(id: string): Promise<void> {
    return this.#writes.settled(id);
  }

  async #receive(readable: IncomingMessage | Readable, id: string, offset: number): Promise<number> {
    // Before any byte: what is left of a known length must fit; of a deferred one, the reserve must be intact.
    const { size } = await this.getUpload(id);
    const remaining = size === undefined ? 0 : size - offset;
    try {
      await this.#guard(
        remaining,
        size === undefined ? 'more of an upload of deferred length' : `the remaining ${remaining} bytes of this upload`,
      );
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      throw tusAnswer(toAppError(err));
    }
    // A deferred length may not outgrow what was free when this PATCH began; both kinds look again as they go.
    const budget = size === undefined ? await this.#headroom() : Number.POSITIVE_INFINITY;
    const tracked = await this.#stateAt(id, offset);
    const tee = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        if (tracked) {
          tracked.hash.update(chunk);
          tracked.offset += chunk.length;
        }
        callback(null, chunk);
      },
    });
    readable.on('error', (err) => tee.destroy(err));
    // FileStore.write, but keeping the cause of a failure: the library turns
    // every error (ENOSPC included) into a generic 500 and keeps the partial
    // upload, which then holds the full disk until it expires in 3 days. A
    // full disk is a 507 and the partial upload is removed.
    let received = 0;
    let nextLook = GUARD_EVERY_BYTES;
    const headroom = this.#headroom;
    const fence = this.#fence;
    const outOfRoom = (): AppError =>
      new AppError(
        'INSUFFICIENT_STORAGE',
        `not enough disk space to go on receiving this upload (${offset + received} bytes so far); the partial upload was removed, nothing was stored`,
      );
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        // Another process may take over a lock this one could not renew in time: stop before it could.
        if (!fence(id))
          return callback(
            new AppError('UPLOAD_BUSY', 'this server could not keep the upload locked; resume it to continue'),
          );
        received += chunk.length;
        if (received > budget) return callback(outOfRoom());
        if (received < nextLook) return callback(null, chunk);
        nextLook = received + GUARD_EVERY_BYTES;
        headroom().then(
          (room) =>
            room < (size === undefined ? 0 : size - offset - received) ? callback(outOfRoom()) : callback(null, chunk),
          (err: Error) => callback(err),
        );
      },
    });
    try {
      await pipeline(
        readable.pipe(tee),
        counter,
        createWriteStream(path.join(this.directory, id), { flags: 'r+', start: offset }),
      );
      return offset + received;
    } catch (err) {
      // Some hashed bytes may not have reached the file.
      this.running.delete(id);
      const code = (err as NodeJS.ErrnoException).code;
      if (isError(err, 'INSUFFICIENT_STORAGE')) {
        await this.remove(id).catch(() => undefined);
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
        throw tusAnswer(err);
      }
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      if (isError(err, 'UPLOAD_BUSY')) throw tusAnswer(err);
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        await this.remove(id).catch(() => undefined);
        const appError = new AppError(
          'INSUFFICIENT_STORAGE',
          'the disk filled up during the upload; the partial upload was removed, nothing was stored',
        );
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
        throw { status_code: appError.status, body: JSON.stringify(errorBody(appError)) };
      }
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what FileStore.write throws (ERRORS.FILE_WRITE_ERROR)
      throw { status_code: 500, body: 'Something went wrong receiving the file\n' };
    }
  }

  /**
   * The hash state to continue at `offset` with this PATCH's bytes, after hashing from the file
   * the few bytes other processes received since; undefined when they are too many (the rest is
   * hashed when the upload completes). Runs under the upload's lock: nobody writes meanwhile.
   */
  async #stateAt(id: string, offset: number): Promise<HashState | undefined> {
    let state = this.running.get(id);
    if (offset === 0 || (state && state.offset > offset)) state = undefined;
    const from = state?.offset ?? 0;
    if (offset - from <= this.#catchUpMaxBytes) {
      state ??= { hash: newSha256(), offset: 0 };
      this.running.set(id, state);
      try {
        await this.#hashFromFile(id, state, offset);
      } catch {
        this.running.delete(id);
        return undefined;
      }
      return state;
    }
    // Kept as far as it goes; completed from the file at the end.
    if (!state) this.running.delete(id);
    return undefined;
  }

  /** Hashes the upload's file from `state.offset` up to `end`. */
  async #hashFromFile(id: string, state: HashState, end: number): Promise<void> {
    if (state.offset >= end) return;
    const source = createReadStream(path.join(this.directory, id), {
      start: state.offset,
      end: end - 1,
      highWaterMark: READ_CHUNK_BYTES,
    });
    for await (const chunk of source as AsyncIterable<Buffer>) {
      state.hash.update(chunk);
      state.offset += chunk.length;
    }
    if (state.offset !== end) throw new Error(`the upload file ended at ${state.offset}, before ${end}`);
  }

  /**
   * The digest of a complete upload of `size` bytes, over every byte: hashed as they arrived here,
   * and the rest read from the file; undefined when this process hashed none of it (the ingest then
   * hashes the whole file).
   */
  async takeDigest(id: string, size: number): Promise<Sha256 | undefined> {
    const state = this.running.get(id);
    this.running.delete(id);
    if (!state || state.offset > size) return undefined;
    await this.#hashFromFile(id, state, size);
    return state.hash.digest('hex') as Sha256;
  }

  async listIds(): Promise<string[]> {
    return (await this.configstore.list?.()) ?? [];
  }

  /** The data file's modification time; throws when it is gone. */
  async lastDataAt(id: string, upload: Upload): Promise<number | null> {
    return upload.offset > 0 ? (await fs.stat(path.join(this.directory, id))).mtimeMs : null;
  }

  /** The record goes; so does the data file, unless the ingest already adopted (renamed) or removed it. */
  async dropFinished(id: string): Promise<void> {
    this.running.delete(id);
    await this.configstore.delete(id);
    await fs.rm(path.join(this.directory, id), { force: true });
  }

  forget(id: string): void {
    this.running.delete(id);
  }

  /** Drops the hash state of uploads that no longer exist (finished or removed by another process). */
  forgetAllBut(ids: readonly string[]): void {
    for (const id of this.running.keys()) if (!ids.includes(id)) this.running.delete(id);
  }
}

export interface UploadDeps {
  ingestDeps: IngestDeps;
  store: BlobStore;
  log: Logger;
  /** The public address links start with; null while none is set (then no link is sent). */
  baseUrl(): Promise<string | null>;
}

/** What a client may say about an upload: a .pvmp name, its checksum file's text, an architecture. */
function checkPackageMetadata(meta: Record<string, string | null>): void {
  if (!meta.filename) throw new AppError('VALIDATION_FAILED', 'uploads need a file name (tus metadata "filename")');
  assertPackageFileName(meta.filename);
  parseBlobArch(meta.arch, 'the tus metadata "arch"');
  if (meta.checksum) parseChecksumText(meta.checksum, 'the checksum file');
}

/** What the store step knows of a finished upload besides where its bytes are. */
interface AdoptRequest {
  fileName: string;
  knownSha256: Sha256 | undefined;
  expectedSha256: Sha256 | undefined;
  arch: BlobArch;
}

/**
 * The tus server over the store's kind of storage: uploads in <data>/uploads beside the blobs, or
 * (MIRROR_STORAGE=s3) in the bucket every node shares, loaded only then (the S3 SDK is large).
 */
export async function createUploadServer(deps: UploadDeps): Promise<UploadServer> {
  const shared = { db: deps.ingestDeps.db, clock: deps.ingestDeps.clock, log: deps.log };
  // A lock is released once this process's writes to the upload have ended (see RunningWrites).
  const locker = new DatabaseLocker(shared, (id) => datastore.settled(id));
  const headroom = async (): Promise<number> => (await deps.store.diskUsage()).freeBytes - deps.ingestDeps.minFreeBytes;
  const target = deps.store.uploadTarget?.();
  let datastore: TrackedUploadStore;
  let adopt: (upload: Upload, request: AdoptRequest) => Promise<IngestResult>;
  if (target) {
    const { HashingBucketStore } = await import('./upload-bucket-store.js');
    const bucketStore = new HashingBucketStore(target, {
      newTmpFile: () => deps.store.layout.newTmpFile(),
      headroom,
      fence: (id) => locker.holds(id),
      expirationPeriodInMilliseconds: UPLOAD_EXPIRY_MS,
    });
    datastore = bucketStore;
    adopt = (upload, request) =>
      ingestUploadedObject(deps.ingestDeps, { ...request, key: bucketStore.objectKey(upload.id) });
  } else {
    datastore = new HashingFileStore(
      { directory: deps.store.layout.uploadsDir, expirationPeriodInMilliseconds: UPLOAD_EXPIRY_MS },
      (bytes, what) => assertFreeSpace(deps.ingestDeps, bytes, what),
      headroom,
      (id) => locker.holds(id),
    );
    adopt = (upload, request) =>
      ingestUploadedFile(deps.ingestDeps, {
        ...request,
        file: upload.storage?.path ?? path.join(deps.store.layout.uploadsDir, upload.id),
      });
  }
  // @tus/server answers a thrown { status_code, body } object with exactly that response.
  const fail = (err: unknown): never => {
    const appError = toAppError(err);
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server expects
    throw { status_code: appError.status, body: JSON.stringify(errorBody(appError)) };
  };

  const options: TusOptions = {
    path: UPLOADS_PATH,
    relativeLocation: true,
    locker,
    // Never let a client pick the storage name.
    namingFunction: () => crypto.randomUUID().replaceAll('-', ''),
    async onUploadCreate(_req, upload) {
      try {
        const meta = upload.metadata ?? {};
        checkPackageMetadata(meta);
        // A deferred length is checked when it is declared, and every PATCH before it writes.
        if (upload.size !== undefined) await assertFreeSpace(deps.ingestDeps, upload.size, 'this upload');
      } catch (err) {
        fail(err);
      }
      return {};
    },
    async onUploadFinish(req, upload: Upload) {
      try {
        const done = await tus.finishOnce(req, upload);
        return {
          headers: {
            'Upload-Sha256': done.sha256,
            ...(done.url === null ? {} : { 'Upload-Download-Url': done.url }),
            'Access-Control-Expose-Headers': 'Upload-Sha256, Upload-Download-Url',
          },
        };
      } catch (err) {
        return fail(err);
      }
    },
  };

  /** Adopts the finished upload into the blob store (checksum and architecture from the metadata). */
  const finish = async (req: Request, upload: Upload): Promise<FinishedUpload> => {
    const meta = upload.metadata ?? {};
    try {
      const expectedSha256 = meta.checksum ? parseChecksumText(meta.checksum, 'the checksum file') : undefined;
      const { blob, created } = await adopt(upload, {
        fileName: meta.filename ?? 'upload.pvmp',
        knownSha256: await datastore.takeDigest(upload.id, upload.size ?? -1),
        expectedSha256,
        arch: parseBlobArch(meta.arch),
      });
      deps.log.info({ sha256: blob.sha256, size: blob.size, created, arch: blob.arch }, 'browser upload stored');
      // No public address yet: the upload is stored all the same, and its link is simply not offered.
      const base = await deps.baseUrl();
      return {
        sha256: blob.sha256,
        url: base === null ? null : downloadUrl(base, blob.sha256, blob.name),
        size: blob.size,
      };
    } catch (err) {
      deps.log.warn({ err, upload: upload.id }, 'browser upload rejected');
      throw err;
    } finally {
      // The data was adopted or removed by the ingest; drop the upload's record (and anything left) either way.
      await datastore
        .dropFinished(upload.id)
        .catch((err: unknown) =>
          deps.log.warn({ err, upload: upload.id }, 'could not remove what is left of a finished upload'),
        );
    }
  };
  const tus: UploadServer = new UploadServer({ ...options, locker, datastore }, shared, finish);
  return tus;
}
