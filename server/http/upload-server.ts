/**
 * The tus server of the Upload page (see uploads.ts for the store and the
 * hooks): it knows which uploads are receiving, finishing or finished, lists
 * the unfinished ones, discards one on request, and answers HEAD for a
 * complete upload with its digest (or 423 while it is being stored).
 */
import { Server, type Upload } from '@tus/server';
import type { BlobArch } from '../db/schema.js';
import { AppError } from '../errors.js';
import { parseBlobArch } from '../services/blobs.js';
import type { HashingFileStore } from './uploads.js';

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

export type TusOptions = Omit<ConstructorParameters<typeof Server>[0], 'datastore'>;

export interface FinishedUpload {
  sha256: string;
  /** Null while no public address is set. */
  url: string | null;
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

  constructor(
    options: TusOptions & { datastore: HashingFileStore },
    finish: (req: Request, upload: Upload) => Promise<FinishedUpload>,
  ) {
    super(options);
    this.#finish = finish;
  }

  get store(): HashingFileStore {
    return this.datastore as HashingFileStore;
  }

  override async handleWeb(req: Request): Promise<Response> {
    const id = uploadIdOf(req.url, this.options.path);
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
      // Only for uploads still waiting for bytes: ids a client made up, or finished ones, must not pile up here.
      if (!this.#finishing.has(id) && !this.#finished.has(id) && (await this.#exists(id)))
        this.#lastDataAt.set(id, Date.now());
    }
  }

  async #exists(id: string): Promise<boolean> {
    return this.store.getUpload(id).then(
      () => true,
      () => false,
    );
  }

  /** Runs the store step once per upload, whoever asks (the last PATCH, or a HEAD after a crash). */
  finishOnce(req: Request, upload: Upload): Promise<FinishedUpload> {
    const running = this.#finishing.get(upload.id);
    if (running) return running;
    const job = this.#finish(req, upload).then((done) => {
      this.#forgetOld();
      this.#finished.set(upload.id, done);
      return done;
    });
    this.#finishing.set(upload.id, job);
    void job
      .catch(() => undefined)
      .finally(() => {
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
    if (!found)
      throw new AppError(
        'NOT_FOUND',
        'there is no unfinished upload with that id (it may have finished or been discarded)',
      );
    if (found.receiving || found.finishing) {
      throw new AppError(
        'CONFLICT',
        `${found.name} is receiving data right now; cancel it in the browser tab that uploads it, or wait until it stops`,
      );
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

function uploadIdOf(url: string, basePath: string): string | null {
  const { pathname } = new URL(url);
  const prefix = `${basePath}/`;
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
      ...(done.url === null ? {} : { 'Upload-Download-Url': done.url }),
      'Access-Control-Expose-Headers': 'Upload-Offset, Upload-Length, Upload-Sha256, Upload-Download-Url',
    },
  });
}

function lockedHead(): Response {
  // tus clients retry 423 Locked: the same answer they get for an upload another request holds.
  return new Response(null, {
    status: 423,
    headers: { 'Tus-Resumable': '1.0.0', 'Cache-Control': 'no-store', 'Retry-After': '2' },
  });
}
