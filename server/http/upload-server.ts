/**
 * The tus server of the Upload page (see uploads.ts for the store and the
 * hooks): it knows which uploads are receiving, finishing or finished, lists
 * the unfinished ones, discards one on request, and answers HEAD for a
 * complete upload with its digest (or 423 while it is being stored). All of
 * that is read from the shared database and the upload store (the upload
 * directory, or the bucket), so any process serving them answers the same.
 */
import { Server, type DataStore, type Upload } from '@tus/server';
import type { Sha256 } from '../../storage/digest.js';
import type { BlobArch } from '../db/schema.js';
import { AppError, errorBody, toAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseBlobArch } from '../services/blobs.js';
import type { DbDeps } from '../services/deps.js';
import { newHolderId } from '../services/holders.js';
import {
  busyUploads,
  claimUploadFinishFor,
  isUploadLocked,
  recordUploadFailed,
  recordUploadStored,
  renewUploadFinishFor,
  uploadOutcome,
  type StoredUpload,
} from '../services/upload-coordination.js';
import type { DatabaseLocker } from './upload-locker.js';

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
  /** When bytes last arrived (the data file's modification time; null: none yet). */
  lastDataAt: string | null;
  /** A request (a PATCH streaming into it, on any process) holds it right now. */
  receiving: boolean;
  /** All bytes are there and the package is being stored. */
  finishing: boolean;
}

export type TusOptions = Omit<ConstructorParameters<typeof Server>[0], 'datastore'>;

/**
 * What the server needs of its tus datastore beyond tus' own calls, so the same server runs on
 * uploads in the data dir (HashingFileStore) or in the bucket (HashingBucketStore).
 */
export interface TrackedUploadStore extends DataStore {
  /** Ids of every upload there is, finished or not. */
  listIds(): Promise<string[]>;
  /** When bytes last arrived (ms), or null when none did. */
  lastDataAt(id: string, upload: Upload): Promise<number | null>;
  /** The digest of a complete upload of `size` bytes, over every byte, when this process can vouch for it. */
  takeDigest(id: string, size: number): Promise<Sha256 | undefined>;
  /** After the store step, whatever its outcome: removes what is left of the upload (its record, data not adopted). */
  dropFinished(id: string): Promise<void>;
  /** Drops this process's hash state of one upload (discarded). */
  forget(id: string): void;
  /** Drops the hash state of uploads that no longer exist (finished or removed by another process). */
  forgetAllBut(ids: readonly string[]): void;
  /** Resolves once no write of this process to the upload is running (the lock is released only then). */
  settled(id: string): Promise<void>;
}

/**
 * The writes a store has running, per upload. tus lets go of an upload's lock as soon as the
 * request's stream fails, while the store may still be sending what it received; the locker
 * waits for this before it releases, so the next writer never overlaps it.
 */
export class RunningWrites {
  readonly #writes = new Map<string, Promise<unknown>>();

  track<T>(id: string, write: Promise<T>): Promise<T> {
    this.#writes.set(id, write);
    const clear = (): void => {
      if (this.#writes.get(id) === write) this.#writes.delete(id);
    };
    write.then(clear, clear);
    return write;
  }

  async settled(id: string): Promise<void> {
    await this.#writes.get(id)?.catch(() => undefined);
  }
}

/** The answer @tus/server sends for a thrown { status_code, body }. */
export function tusAnswer(err: AppError): { status_code: number; body: string } {
  return { status_code: err.status, body: JSON.stringify(errorBody(err)) };
}

export type FinishedUpload = StoredUpload;

/** How often the process storing an upload renews its claim, and others look whether it is done. */
const FINISH_POLL_MS = 1000;

/**
 * The tus server plus what the Upload page needs: the list of unfinished
 * uploads, discarding one, and HEAD answers for uploads that are finishing
 * (423, retry) or finished (their digest), so a second client of the same
 * upload never mistakes "all bytes there" for "stored".
 */
export class UploadServer extends Server {
  /** This process's callers waiting for the same upload to be stored share one promise. */
  readonly #finishing = new Map<string, Promise<FinishedUpload>>();
  readonly #finish: (req: Request, upload: Upload) => Promise<FinishedUpload>;
  readonly #deps: DbDeps & { log: Logger };
  readonly #holder = newHolderId();
  readonly locker: DatabaseLocker;

  constructor(
    options: TusOptions & { datastore: TrackedUploadStore; locker: DatabaseLocker },
    deps: DbDeps & { log: Logger },
    finish: (req: Request, upload: Upload) => Promise<FinishedUpload>,
  ) {
    super(options);
    this.locker = options.locker;
    this.#deps = deps;
    this.#finish = finish;
  }

  get store(): TrackedUploadStore {
    return this.datastore as TrackedUploadStore;
  }

  override async handleWeb(req: Request): Promise<Response> {
    const id = uploadIdOf(req.url, this.options.path);
    // Only ids this server makes reach the store and the lock table (any other would be a database error there).
    if (id === null && namesAnUpload(req.url, this.options.path))
      return Response.json(errorBody(new AppError('NOT_FOUND', 'no such upload')), { status: 404 });
    if (id !== null && req.method === 'HEAD') {
      const early = await this.#headOfCompleteUpload(req, id);
      if (early) return early;
    }
    return labelJsonErrors(await super.handleWeb(req));
  }

  /**
   * Runs the store step once per upload in the whole deployment, whoever asks (the last PATCH, or a
   * HEAD after a crash): one process claims it in the database, the others wait for its outcome.
   */
  finishOnce(req: Request, upload: Upload): Promise<FinishedUpload> {
    const running = this.#finishing.get(upload.id);
    if (running) return running;
    const job = this.#finishAnywhere(req, upload);
    this.#finishing.set(upload.id, job);
    void job.catch(() => undefined).finally(() => this.#finishing.delete(upload.id));
    return job;
  }

  async #finishAnywhere(req: Request, upload: Upload): Promise<FinishedUpload> {
    for (;;) {
      if (await claimUploadFinishFor(this.#deps, upload.id, this.#holder)) return this.#finishClaimed(req, upload);
      const outcome = await uploadOutcome(this.#deps, upload.id);
      if (outcome?.state === 'stored') return { sha256: outcome.sha256, size: outcome.size, url: outcome.url };
      if (outcome?.state === 'failed') throw outcome.error;
      // Another process stores it (or its claim just lapsed, and the next round takes it over).
      await new Promise((resolve) => setTimeout(resolve, FINISH_POLL_MS));
    }
  }

  async #finishClaimed(req: Request, upload: Upload): Promise<FinishedUpload> {
    const renew = setInterval(() => {
      renewUploadFinishFor(this.#deps, upload.id, this.#holder).catch((err: unknown) =>
        this.#deps.log.warn({ err, upload: upload.id }, 'could not renew the claim on storing an upload'),
      );
    }, FINISH_POLL_MS);
    renew.unref();
    try {
      const done = await this.#finish(req, upload);
      await recordUploadStored(this.#deps, upload.id, this.#holder, done);
      return done;
    } catch (err) {
      await recordUploadFailed(this.#deps, upload.id, this.#holder, toAppError(err)).catch((e: unknown) =>
        this.#deps.log.warn({ err: e, upload: upload.id }, 'could not record that storing an upload failed'),
      );
      throw err;
    } finally {
      clearInterval(renew);
    }
  }

  async listUnfinished(): Promise<UnfinishedUpload[]> {
    const ids = await this.store.listIds();
    const { receiving, finishing } = await busyUploads(this.#deps);
    const uploads: UnfinishedUpload[] = [];
    for (const id of ids) {
      let upload: Upload;
      let lastData: number | null = null;
      try {
        upload = await this.store.getUpload(id);
        lastData = await this.store.lastDataAt(id, upload);
      } catch {
        continue; // removed meanwhile, or its data file is gone
      }
      const meta = upload.metadata ?? {};
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
        lastDataAt: lastData === null ? null : new Date(lastData).toISOString(),
        receiving: receiving.has(id),
        finishing: finishing.has(id),
      });
    }
    // Uploads finished or removed by another process leave no hash state here.
    this.store.forgetAllBut(ids);
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
    const busy = (): AppError =>
      new AppError(
        'CONFLICT',
        `${found.name} is receiving data right now; cancel it in the browser tab that uploads it, or wait until it stops`,
      );
    if (found.receiving || found.finishing) throw busy();
    // Holding its lock, no request of any process can start writing to it while its files go.
    const lock = await this.locker.tryLock(id);
    if (!lock) throw busy();
    try {
      await this.store.remove(id);
      this.store.forget(id);
    } finally {
      await lock.unlock();
    }
    return found;
  }

  /** HEAD of an upload with every byte received: 423 while it is stored, then its digest. */
  async #headOfCompleteUpload(req: Request, id: string): Promise<Response | null> {
    const outcome = await uploadOutcome(this.#deps, id);
    if (outcome?.state === 'stored') return finishedHead(outcome);
    if (outcome?.state === 'finishing') return lockedHead();
    let upload: Upload;
    try {
      upload = await this.store.getUpload(id);
    } catch {
      return null; // tus answers 404/410
    }
    if (upload.size === undefined || upload.offset !== upload.size) return null;
    // Every byte arrived but nothing stores it (the process stopped in between): store it now.
    // A PATCH still holding the upload, on whichever process, is about to store it itself.
    if (!(await isUploadLocked(this.#deps, id))) void this.finishOnce(req, upload).catch(() => undefined);
    return lockedHead();
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

/** The upload id in a request's path: 32 hex digits, as uploads.ts names them; null for anything else. */
function uploadIdOf(url: string, basePath: string): string | null {
  const { pathname } = new URL(url);
  const prefix = `${basePath}/`;
  if (!pathname.startsWith(prefix)) return null;
  const id = pathname.slice(prefix.length);
  return /^[0-9a-f]{32}$/.test(id) ? id : null;
}

function namesAnUpload(url: string, basePath: string): boolean {
  const { pathname } = new URL(url);
  return pathname.startsWith(`${basePath}/`) && pathname.length > basePath.length + 1;
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
