/**
 * Resumable browser uploads with the tus protocol (@tus/server, FileStore in
 * <data>/uploads on the same filesystem as the blobs). Bytes are hashed as
 * they arrive; when an upload completes it is adopted into the blob store by
 * rename through the common ingest path, and its checksum file (if the admin
 * picked one) is enforced. A failed or mismatching upload leaves nothing.
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { IncomingMessage } from 'node:http';
import { FileStore } from '@tus/file-store';
import { Server, type Upload } from '@tus/server';
import type { Hash } from 'node:crypto';
import type { BlobStore } from '../../storage/blob-store.js';
import { newSha256, parseChecksumText, type Sha256 } from '../../storage/digest.js';
import { AppError, errorBody, toAppError } from '../errors.js';
import { downloadUrl } from '../links.js';
import type { Logger } from '../log.js';
import { ingestUploadedFile, type IngestDeps } from '../services/ingest.js';

export const UPLOADS_PATH = '/api/v1/uploads';
/** Unfinished uploads are dropped after this long without being completed. */
const UPLOAD_EXPIRY_MS = 3 * 24 * 60 * 60 * 1000;

/** FileStore that hashes each PATCH body on its way to disk, while offsets line up. */
class HashingFileStore extends FileStore {
  readonly running = new Map<string, { hash: Hash; offset: number }>();

  override async write(readable: IncomingMessage | Readable, id: string, offset: number): Promise<number> {
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
    // full disk is a 507 and the partial upload is removed (found by the fault
    // suite, test/faults/disk-full.test.ts).
    let received = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        callback(null, chunk);
      },
    });
    try {
      await pipeline(readable.pipe(tee), counter, createWriteStream(path.join(this.directory, id), { flags: 'r+', start: offset }));
      return offset + received;
    } catch (err) {
      // Some hashed bytes may not have reached the file.
      this.running.delete(id);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        await this.remove(id).catch(() => undefined);
        const appError = new AppError('INSUFFICIENT_STORAGE', 'the disk filled up during the upload; the partial upload was removed, nothing was stored');
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

export function createUploadServer(deps: UploadDeps): Server {
  const datastore = new HashingFileStore({ directory: deps.store.layout.uploadsDir, expirationPeriodInMilliseconds: UPLOAD_EXPIRY_MS });
  // @tus/server answers a thrown { status_code, body } object with exactly that response.
  const fail = (err: unknown): never => {
    const appError = toAppError(err);
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server expects
    throw { status_code: appError.status, body: JSON.stringify(errorBody(appError)) };
  };

  const tus = new Server({
    path: UPLOADS_PATH,
    datastore,
    relativeLocation: true,
    // Never let a client pick the storage name.
    namingFunction: () => crypto.randomUUID().replaceAll('-', ''),
    async onUploadCreate(_req, upload) {
      try {
        const meta = upload.metadata ?? {};
        if (!meta.filename) throw new AppError('VALIDATION_FAILED', 'uploads need a file name (tus metadata "filename")');
        if (meta.checksum) parseChecksumText(meta.checksum, 'the checksum file');
        if (upload.size !== undefined) {
          const { freeBytes } = await deps.store.diskUsage();
          if (freeBytes - upload.size < deps.ingestDeps.minFreeBytes) {
            throw new AppError(
              'INSUFFICIENT_STORAGE',
              `not enough disk space for ${upload.size} bytes: ${freeBytes} bytes are free and ${deps.ingestDeps.minFreeBytes} must stay free`,
            );
          }
        }
      } catch (err) {
        fail(err);
      }
      return {};
    },
    async onUploadFinish(_req, upload: Upload) {
      const meta = upload.metadata ?? {};
      const file = upload.storage?.path ?? deps.store.layout.uploadsDir + '/' + upload.id;
      try {
        const expectedSha256 = meta.checksum ? parseChecksumText(meta.checksum, 'the checksum file') : undefined;
        const { blob, created } = await ingestUploadedFile(deps.ingestDeps, {
          file,
          fileName: meta.filename ?? 'upload.pvmp',
          knownSha256: datastore.takeDigest(upload.id, upload.size ?? -1),
          expectedSha256,
        });
        deps.log.info({ sha256: blob.sha256, size: blob.size, created }, 'browser upload stored');
        const base = await deps.baseUrl();
        return {
          headers: {
            'Upload-Sha256': blob.sha256,
            ...(base === null ? {} : { 'Upload-Download-Url': downloadUrl(base, blob.sha256, blob.name) }),
            'Access-Control-Expose-Headers': 'Upload-Sha256, Upload-Download-Url',
          },
        };
      } catch (err) {
        deps.log.warn({ err, upload: upload.id }, 'browser upload rejected');
        return fail(err);
      } finally {
        // The data file was adopted or removed by the ingest; drop the upload record either way.
        await datastore.configstore.delete(upload.id).catch(() => undefined);
        datastore.running.delete(upload.id);
      }
    },
  });
  return tus;
}
