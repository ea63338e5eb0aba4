/**
 * Pulls started from the API or the admin page run in the background of the
 * node that received them; this registry keeps their progress for the API
 * and lets an admin cancel one. At most `concurrency` run at once (each
 * holds a connection, a temp file and disk bandwidth); the rest wait as
 * "queued". The result itself (the blob) is in the database and the store
 * like every other ingest.
 */
import { randomUUID } from 'node:crypto';
import PQueue from 'p-queue';
import type { Sha256 } from '../../storage/digest.js';
import { fetchIntoStore } from '../bundles/fetch.js';
import { toAppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { IngestDeps } from '../services/ingest.js';

export interface TransferJob {
  id: string;
  url: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  bytesDone: number;
  totalBytes: number | null;
  startedAt: string;
  finishedAt: string | null;
  sha256: string | null;
  error: { code: string; message: string } | null;
}

const KEEP_FINISHED = 50;

export class TransferJobs {
  readonly #jobs = new Map<
    string,
    { job: TransferJob; controller: AbortController; dequeue: AbortController; done: Promise<void> }
  >();
  readonly #deps: IngestDeps;
  readonly #log: Logger;
  readonly #queue: PQueue;

  constructor(deps: IngestDeps, log: Logger, options: { concurrency?: number } = {}) {
    const concurrency = options.concurrency ?? 2;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new TypeError(
        `Expected \`concurrency\` to be an integer of at least 1, got \`${concurrency}\` (${typeof concurrency})`,
      );
    }
    this.#deps = deps;
    this.#log = log;
    this.#queue = new PQueue({ concurrency });
  }

  startFetch(
    url: string,
    options: { expectedSha256?: Sha256 | undefined; checksumUrl?: string | undefined },
  ): TransferJob {
    const controller = new AbortController();
    const job: TransferJob = {
      id: randomUUID(),
      url,
      state: 'queued',
      bytesDone: 0,
      totalBytes: null,
      startedAt: new Date(this.#deps.clock.now()).toISOString(),
      finishedAt: null,
      sha256: null,
      error: null,
    };
    const run = () => {
      job.state = 'running';
      return fetchIntoStore(this.#deps, url, {
        ...options,
        signal: controller.signal,
        onProgress: (bytes, total) => {
          job.bytesDone = bytes;
          job.totalBytes = total;
        },
      });
    };
    // Only for a job still waiting: p-queue drops it and rejects at once. A running job is
    // stopped through `controller` instead, so it settles only after its temp file is gone.
    const dequeue = new AbortController();
    const done = this.#queue
      .add(run, { signal: dequeue.signal })
      .then(
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
      )
      .finally(() => {
        job.finishedAt = new Date(this.#deps.clock.now()).toISOString();
        this.#prune();
      });
    this.#jobs.set(job.id, { job, controller, dequeue, done });
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
    if (!entry || (entry.job.state !== 'running' && entry.job.state !== 'queued')) return false;
    const reason = new Error('cancelled by an admin');
    if (entry.job.state === 'queued') entry.dequeue.abort(reason);
    entry.controller.abort(reason);
    return true;
  }

  async close(): Promise<void> {
    for (const entry of this.#jobs.values()) {
      const reason = new Error('server shutting down');
      if (entry.job.state === 'queued') entry.dequeue.abort(reason);
      entry.controller.abort(reason);
    }
    await Promise.allSettled([...this.#jobs.values()].map((e) => e.done));
  }

  #prune(): void {
    const finished = [...this.#jobs.values()].filter((e) => e.job.state !== 'running' && e.job.state !== 'queued');
    for (const entry of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED)))
      this.#jobs.delete(entry.job.id);
  }
}
