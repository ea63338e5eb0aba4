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
import type { BlobArch } from '../db/schema.js';
import { downloadUrl } from '../links.js';
import type { Logger } from '../log.js';
import { assertPackageFileName, parseBlobArch } from '../services/blobs.js';
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
  baseUrl(req: Request): string;
}

/** An upload that has not been stored yet, as the Upload page lists it. */
export interface UnfinishedUpload {
  id: string;
  name: string;
  size: number | null;
  offset: number;
  arch: BlobArch;
  hasChecksum: boolean;
  /** The picked file's modification time (ms), so a new pick of the same file can be matched. */
  lastModified: number | null;
  createdAt: string;
  /** When the last PATCH ended in this process (null: none since the start). */
  lastDataAt: string | null;
  /** A PATCH is streaming into it right now. */
  receiving: boolean;
  /** All bytes are there and the package is being stored. */
  finishing: boolean;
}

type TusOptions = Omit<ConstructorParameters<typeof Server>[0], 'datastore'>;

interface FinishedUpload {
  sha256: string;
  url: string;
  size: number;
  at: number;
}

/** How long a finished upload still answers HEAD with its digest (for a tab that joins late). */
const FINISHED_MEMORY_MS = 60 * 60 * 1000;

/**
 * The tus server plus what the Upload page needs: the list of unfinished
 * uploads, discarding one, and HEAD answers for uploads that are finishing
 * (423, retry) or finished (their digest), so a second client of the same
 * upload never mistakes "all bytes there" for "stored".
 */
export class UploadServer extends Server {
  readonly #receiving = new Map<string, number>();
  readonly #lastDataAt = new Map<string, number>();
  readonly #finishing = new Map<string, Promise<FinishedUpload>>();
  readonly #finished = new Map<string, FinishedUpload>();
  readonly #finish: (req: Request, upload: Upload) => Promise<FinishedUpload>;

  constructor(options: TusOptions & { datastore: HashingFileStore }, finish: (req: Request, upload: Upload) => Promise<FinishedUpload>) {
    super(options);
    this.#finish = finish;
  }

  get store(): HashingFileStore {
    return this.datastore as HashingFileStore;
  }

  override async handleWeb(req: Request): Promise<Response> {
    const id = uploadIdOf(req.url);
    if (id !== null && req.method === 'HEAD') {
      const early = await this.#headOfCompleteUpload(req, id);
      if (early) return early;
    }
    if (id === null || req.method !== 'PATCH') return labelJsonErrors(await super.handleWeb(req));
    this.#receiving.set(id, (this.#receiving.get(id) ?? 0) + 1);
    try {
      return await labelJsonErrors(await super.handleWeb(req));
    } finally {
      const left = (this.#receiving.get(id) ?? 1) - 1;
      if (left > 0) this.#receiving.set(id, left);
      else this.#receiving.delete(id);
      this.#lastDataAt.set(id, Date.now());
    }
  }

  /** Runs the store step once per upload, whoever asks (the last PATCH, or a HEAD after a crash). */
  finishOnce(req: Request, upload: Upload): Promise<FinishedUpload> {
    const running = this.#finishing.get(upload.id);
    if (running) return running;
    const job = this.#finish(req, upload).then(
      (done) => {
        this.#forgetOld();
        this.#finished.set(upload.id, done);
        return done;
      },
    );
    this.#finishing.set(upload.id, job);
    void job.catch(() => undefined).finally(() => {
      this.#finishing.delete(upload.id);
      this.#lastDataAt.delete(upload.id);
    });
    return job;
  }

  async listUnfinished(): Promise<UnfinishedUpload[]> {
    const ids = (await this.store.configstore.list?.()) ?? [];
    const uploads: UnfinishedUpload[] = [];
    for (const id of ids) {
      let upload: Upload;
      try {
        upload = await this.store.getUpload(id);
      } catch {
        continue; // removed meanwhile, or its data file is gone
      }
      const meta = upload.metadata ?? {};
      const lastData = this.#lastDataAt.get(id);
      let arch: BlobArch = 'unknown';
      try {
        arch = parseBlobArch(meta.arch);
      } catch {
        // refused at creation; an old record keeps showing as unknown
      }
      const lastModified = Number(meta.lastModified);
      uploads.push({
        id,
        name: meta.filename ?? 'unnamed',
        size: upload.size ?? null,
        offset: upload.offset,
        arch,
        hasChecksum: Boolean(meta.checksum),
        lastModified: Number.isSafeInteger(lastModified) ? lastModified : null,
        createdAt: new Date(upload.creation_date ?? Date.now()).toISOString(),
        lastDataAt: lastData === undefined ? null : new Date(lastData).toISOString(),
        receiving: this.#receiving.has(id),
        finishing: this.#finishing.has(id),
      });
    }
    // Uploads removed by tus termination or expiry leave no trace here.
    for (const id of this.#lastDataAt.keys()) if (!ids.includes(id)) this.#lastDataAt.delete(id);
    return uploads.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** Removes an unfinished upload and its bytes; never one that is receiving data or being stored. */
  async discard(id: string): Promise<UnfinishedUpload> {
    const found = (await this.listUnfinished()).find((u) => u.id === id);
    if (!found) throw new AppError('NOT_FOUND', 'there is no unfinished upload with that id (it may have finished or been discarded)');
    if (found.receiving || found.finishing) {
      throw new AppError('CONFLICT', `${found.name} is receiving data right now; cancel it in the browser tab that uploads it, or wait until it stops`);
    }
    await this.store.remove(id);
    this.store.running.delete(id);
    this.#lastDataAt.delete(id);
    return found;
  }

  /** HEAD of an upload with every byte received: 423 while it is stored, then its digest. */
  async #headOfCompleteUpload(req: Request, id: string): Promise<Response | null> {
    const known = this.#finished.get(id);
    if (known) return finishedHead(known);
    if (this.#finishing.has(id)) return lockedHead();
    let upload: Upload;
    try {
      upload = await this.store.getUpload(id);
    } catch {
      return null; // tus answers 404/410
    }
    if (upload.size === undefined || upload.offset !== upload.size) return null;
    // Every byte arrived but nothing stored it (the process stopped in between): store it now.
    // A PATCH still in flight is about to store it itself.
    if (!this.#receiving.has(id)) void this.finishOnce(req, upload).catch(() => undefined);
    return lockedHead();
  }

  #forgetOld(): void {
    const cutoff = Date.now() - FINISHED_MEMORY_MS;
    for (const [id, done] of this.#finished) if (done.at < cutoff) this.#finished.delete(id);
  }
}

/** Our errors reach tus as JSON text ({"error":…}); say so, like every other API answer. */
async function labelJsonErrors(res: Response): Promise<Response> {
  if (res.status < 400 || res.headers.has('content-type')) return res;
  const body = await res.clone().text();
  if (!body.startsWith('{"error"')) return res;
  const headers = new Headers(res.headers);
  headers.set('Content-Type', 'application/json; charset=utf-8');
  return new Response(body, { status: res.status, headers });
}

function uploadIdOf(url: string): string | null {
  const { pathname } = new URL(url);
  const prefix = `${UPLOADS_PATH}/`;
  if (!pathname.startsWith(prefix)) return null;
  const id = pathname.slice(prefix.length);
  return /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : null;
}

function finishedHead(done: FinishedUpload): Response {
  return new Response(null, {
    status: 200,
    headers: {
      'Tus-Resumable': '1.0.0',
      'Cache-Control': 'no-store',
      'Upload-Offset': String(done.size),
      'Upload-Length': String(done.size),
      'Upload-Sha256': done.sha256,
      'Upload-Download-Url': done.url,
      'Access-Control-Expose-Headers': 'Upload-Offset, Upload-Length, Upload-Sha256, Upload-Download-Url',
    },
  });
}

function lockedHead(): Response {
  // tus clients retry 423 Locked: the same answer they get for an upload another request holds.
  return new Response(null, { status: 423, headers: { 'Tus-Resumable': '1.0.0', 'Cache-Control': 'no-store', 'Retry-After': '2' } });
}

/** What a client may say about an upload: a .pvmp name, its checksum file's text, an architecture. */
function checkPackageMetadata(meta: Record<string, string | null>): void {
  if (!meta.filename) throw new AppError('VALIDATION_FAILED', 'uploads need a file name (tus metadata "filename")');
  assertPackageFileName(meta.filename);
  parseBlobArch(meta.arch, 'the tus metadata "arch"');
  if (meta.checksum) parseChecksumText(meta.checksum, 'the checksum file');
}

export function createUploadServer(deps: UploadDeps): UploadServer {
  const datastore = new HashingFileStore({ directory: deps.store.layout.uploadsDir, expirationPeriodInMilliseconds: UPLOAD_EXPIRY_MS });
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
    async onUploadFinish(req, upload: Upload) {
      try {
        const done = await tus.finishOnce(req, upload);
        return {
          headers: {
            'Upload-Sha256': done.sha256,
            'Upload-Download-Url': done.url,
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
      return { sha256: blob.sha256, url: downloadUrl(deps.baseUrl(req), blob.sha256, blob.name), size: blob.size, at: Date.now() };
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
