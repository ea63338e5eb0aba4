/**
 * Resumable browser uploads with the tus protocol (@tus/server, FileStore in
 * <data>/uploads on the same filesystem as the blobs). Bytes are hashed as
 * they arrive; when an upload completes it is adopted into the blob store by
 * rename through the common ingest path, and its checksum file (if the admin
 * picked one) is enforced. A failed or mismatching upload leaves nothing.
 * The free-space guard (minFreeBytes, 507) runs when an upload is created with
 * a length, when a deferred length is declared, before every PATCH writes and
 * every GUARD_EVERY_BYTES while it writes, so no upload can fill the disk.
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { IncomingMessage } from 'node:http';
import { FileStore } from '@tus/file-store';
import type { Upload } from '@tus/server';
import type { Hash } from 'node:crypto';
import type { BlobStore } from '../../storage/blob-store.js';
import { newSha256, parseChecksumText, type Sha256 } from '../../storage/digest.js';
import { AppError, errorBody, isError, toAppError } from '../errors.js';
import { downloadUrl } from '../links.js';
import type { Logger } from '../log.js';
import { assertPackageFileName, parseBlobArch } from '../services/blobs.js';
import { assertFreeSpace, ingestUploadedFile, type IngestDeps } from '../services/ingest.js';
import { UploadServer, type FinishedUpload, type TusOptions } from './upload-server.js';

export { UploadServer, type UnfinishedUpload } from './upload-server.js';

export const UPLOADS_PATH = '/api/v1/uploads';
/** Unfinished uploads are dropped after this long without being completed. */
const UPLOAD_EXPIRY_MS = 3 * 24 * 60 * 60 * 1000;

/** While a PATCH writes, free space is looked at again this often (concurrent uploads share the disk). */
const GUARD_EVERY_BYTES = 16 * 1024 * 1024;

/** The answer @tus/server sends for a thrown { status_code, body }. */
function tusError(err: AppError): { status_code: number; body: string } {
  return { status_code: err.status, body: JSON.stringify(errorBody(err)) };
}

/** Free space an upload may still use: free bytes minus the reserve (the shared guard's arithmetic). */
type Headroom = () => Promise<number>;

/** FileStore that hashes each PATCH body on its way to disk, while offsets line up, under the free-space guard. */
export class HashingFileStore extends FileStore {
  readonly running = new Map<string, { hash: Hash; offset: number }>();
  readonly #guard: (bytes: number, what: string) => Promise<void>;
  readonly #headroom: Headroom;

  constructor(
    options: ConstructorParameters<typeof FileStore>[0],
    guard: (bytes: number, what: string) => Promise<void>,
    headroom: Headroom,
  ) {
    super(options);
    this.#guard = guard;
    this.#headroom = headroom;
  }

  /** Upload-Length arriving on a PATCH of a deferred upload: the rest must fit, or 507 and the length stays open. */
  override async declareUploadLength(id: string, uploadLength: number): Promise<void> {
    const { offset } = await this.getUpload(id);
    try {
      await this.#guard(uploadLength - offset, `the declared Upload-Length of ${uploadLength} bytes`);
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      throw tusError(toAppError(err));
    }
    return super.declareUploadLength(id, uploadLength);
  }

  override async write(readable: IncomingMessage | Readable, id: string, offset: number): Promise<number> {
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
      throw tusError(toAppError(err));
    }
    // A deferred length may not outgrow what was free when this PATCH began; both kinds look again as they go.
    const budget = size === undefined ? await this.#headroom() : Number.POSITIVE_INFINITY;
    let state = this.running.get(id);
    if (offset === 0) {
      state = { hash: newSha256(), offset: 0 };
      this.running.set(id, state);
    } else if (state?.offset !== offset) {
      // Resumed in another process or after a failed PATCH: hash the whole file at the end instead.
      this.running.delete(id);
      state = undefined;
    }
    const tracked = state;
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
    const outOfRoom = (): AppError =>
      new AppError(
        'INSUFFICIENT_STORAGE',
        `not enough disk space to go on receiving this upload (${offset + received} bytes so far); the partial upload was removed, nothing was stored`,
      );
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
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
        throw tusError(err);
      }
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

  /** The digest of a finished upload if every byte was hashed in order, else undefined. */
  takeDigest(id: string, size: number): Sha256 | undefined {
    const state = this.running.get(id);
    this.running.delete(id);
    return state && state.offset === size ? (state.hash.digest('hex') as Sha256) : undefined;
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

export function createUploadServer(deps: UploadDeps): UploadServer {
  const datastore = new HashingFileStore(
    { directory: deps.store.layout.uploadsDir, expirationPeriodInMilliseconds: UPLOAD_EXPIRY_MS },
    (bytes, what) => assertFreeSpace(deps.ingestDeps, bytes, what),
    async () => (await deps.store.diskUsage()).freeBytes - deps.ingestDeps.minFreeBytes,
  );
  // @tus/server answers a thrown { status_code, body } object with exactly that response.
  const fail = (err: unknown): never => {
    const appError = toAppError(err);
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server expects
    throw { status_code: appError.status, body: JSON.stringify(errorBody(appError)) };
  };

  const options: TusOptions = {
    path: UPLOADS_PATH,
    relativeLocation: true,
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

  /** Adopts the finished file into the blob store (checksum and architecture from the metadata). */
  const finish = async (req: Request, upload: Upload): Promise<FinishedUpload> => {
    const meta = upload.metadata ?? {};
    const file = upload.storage?.path ?? deps.store.layout.uploadsDir + '/' + upload.id;
    try {
      const expectedSha256 = meta.checksum ? parseChecksumText(meta.checksum, 'the checksum file') : undefined;
      const { blob, created } = await ingestUploadedFile(deps.ingestDeps, {
        file,
        fileName: meta.filename ?? 'upload.pvmp',
        knownSha256: datastore.takeDigest(upload.id, upload.size ?? -1),
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
        at: Date.now(),
      };
    } catch (err) {
      deps.log.warn({ err, upload: upload.id }, 'browser upload rejected');
      throw err;
    } finally {
      // The data file was adopted or removed by the ingest; drop the upload record either way.
      await datastore.configstore.delete(upload.id).catch(() => undefined);
      datastore.running.delete(upload.id);
    }
  };
  const tus: UploadServer = new UploadServer({ ...options, datastore }, finish);
  return tus;
}
