/**
 * Pulls started from the API or the admin page run in the background of the
 * node that received them; this registry keeps their progress for the API
 * and lets an admin cancel one. The result itself (the blob) is in the
 * database and the store like every other ingest.
 */
import { randomUUID } from 'node:crypto';
import type { Sha256 } from '../../storage/digest.js';
import { fetchIntoStore } from '../bundles/fetch.js';
import { toAppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { IngestDeps } from '../services/ingest.js';

export interface TransferJob {
  id: string;
  url: string;
  state: 'running' | 'done' | 'failed' | 'cancelled';
  bytesDone: number;
  totalBytes: number | null;
  startedAt: string;
  finishedAt: string | null;
  sha256: string | null;
  error: { code: string; message: string } | null;
}

const KEEP_FINISHED = 50;

export class TransferJobs {
  readonly #jobs = new Map<string, { job: TransferJob; controller: AbortController; done: Promise<void> }>();
  readonly #deps: IngestDeps;
  readonly #log: Logger;

  constructor(deps: IngestDeps, log: Logger) {
    this.#deps = deps;
    this.#log = log;
  }

  startFetch(url: string, options: { expectedSha256?: Sha256 | undefined; checksumUrl?: string | undefined }): TransferJob {
    const controller = new AbortController();
    const job: TransferJob = {
      id: randomUUID(),
      url,
      state: 'running',
      bytesDone: 0,
      totalBytes: null,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      sha256: null,
      error: null,
    };
    const done = fetchIntoStore(this.#deps, url, {
      ...options,
      signal: controller.signal,
      onProgress: (bytes, total) => {
        job.bytesDone = bytes;
        job.totalBytes = total;
      },
    }).then(
      ({ blob }) => {
        job.state = 'done';
        job.sha256 = blob.sha256;
      },
      (err: unknown) => {
        job.state = controller.signal.aborted ? 'cancelled' : 'failed';
        const e = toAppError(err);
        job.error = { code: e.code, message: e.code === 'INTERNAL' ? (err as Error).message : e.message };
        if (job.state === 'failed') this.#log.warn({ err, url }, 'fetch failed');
      },
    ).finally(() => {
      job.finishedAt = new Date().toISOString();
      this.#prune();
    });
    this.#jobs.set(job.id, { job, controller, done });
    return job;
  }

  list(): TransferJob[] {
    return [...this.#jobs.values()].map((j) => ({ ...j.job }));
  }

  get(id: string): TransferJob | undefined {
    const entry = this.#jobs.get(id);
    return entry ? { ...entry.job } : undefined;
  }

  /** Resolves once the job has ended (tests, shutdown). */
  async wait(id: string): Promise<TransferJob | undefined> {
    await this.#jobs.get(id)?.done;
    return this.get(id);
  }

  cancel(id: string): boolean {
    const entry = this.#jobs.get(id);
    if (!entry || entry.job.state !== 'running') return false;
    entry.controller.abort(new Error('cancelled by an admin'));
    return true;
  }

  async close(): Promise<void> {
    for (const entry of this.#jobs.values()) entry.controller.abort(new Error('server shutting down'));
    await Promise.allSettled([...this.#jobs.values()].map((e) => e.done));
  }

  #prune(): void {
    const finished = [...this.#jobs.values()].filter((e) => e.job.state !== 'running');
    for (const entry of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.#jobs.delete(entry.job.id);
  }
}
