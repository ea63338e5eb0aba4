/**
 * Pulls started from the API or the admin page run in the background of the
 * process that received them, as rows of `transfer_jobs` (services/transfer-jobs.ts)
 * that every process lists and may cancel: the running process writes the
 * progress and a heartbeat once a second and stops when it finds a cancel
 * flagged. At most `concurrency` run at once in this process (each holds a
 * connection, a temp file and disk bandwidth); the rest wait as "queued".
 * The result itself (the blob) is in the database and the store like every
 * other ingest.
 */
import { randomUUID } from 'node:crypto';
import PQueue from 'p-queue';
import type { Sha256 } from '../../storage/digest.js';
import { fetchIntoStore } from '../bundles/fetch.js';
import { toAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { newHolderId } from '../services/holders.js';
import type { IngestDeps } from '../services/ingest.js';
import {
  beatTransfer,
  cancelTransfer,
  createTransferJob,
  endTransfer,
  getTransfer,
  listTransfers,
  startTransferJob,
  type JobError,
  type TransferJob,
} from '../services/transfer-jobs.js';

export type { TransferJob } from '../services/transfer-jobs.js';

/** How often this process writes the progress of its jobs (their heartbeat) and looks for cancels. */
const HEARTBEAT_MS = 1000;
/** How often wait() looks at a job another process runs. */
const WAIT_POLL_MS = 100;

/** A job this process runs. */
interface LocalJob {
  controller: AbortController;
  dequeue: AbortController;
  /** Settles once the job's end is recorded. */
  done: Promise<void>;
  started: boolean;
  bytesDone: number;
  totalBytes: number | null;
}

export class TransferJobs {
  /** Names this process's jobs in the database. */
  readonly holder = newHolderId();
  readonly #local = new Map<string, LocalJob>();
  readonly #deps: IngestDeps;
  readonly #log: Logger;
  readonly #queue: PQueue;
  #heartbeat: NodeJS.Timeout | null = null;
  #beating = false;

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

  async startFetch(
    url: string,
    options: { expectedSha256?: Sha256 | undefined; checksumUrl?: string | undefined },
  ): Promise<TransferJob> {
    const id = randomUUID();
    await createTransferJob(this.#deps, { id, url, holder: this.holder });
    const local: LocalJob = {
      controller: new AbortController(),
      dequeue: new AbortController(),
      done: Promise.resolve(),
      started: false,
      bytesDone: 0,
      totalBytes: null,
    };
    let starting: Promise<boolean> | undefined;
    const run = async () => {
      starting = startTransferJob(this.#deps, id, this.holder);
      if (!(await starting)) {
        // Cancelled (by any process) while it waited: end it as such.
        this.#abort(local, 'cancelled by an admin');
        throw new Error('cancelled by an admin');
      }
      local.started = true;
      return fetchIntoStore(this.#deps, url, {
        ...options,
        signal: local.controller.signal,
        onProgress: (bytes, total) => {
          local.bytesDone = bytes;
          local.totalBytes = total;
        },
      });
    };
    // Only for a job still waiting: p-queue drops it and rejects at once. A running job is
    // stopped through `controller` instead, so it settles only after its temp file is gone.
    local.done = this.#queue
      .add(run, { signal: local.dequeue.signal })
      .then(
        ({ blob }) => ({ state: 'done' as const, sha256: blob.sha256, error: null }),
        (err: unknown) => {
          const state: 'cancelled' | 'failed' =
            local.controller.signal.aborted || local.dequeue.signal.aborted ? 'cancelled' : 'failed';
          const e = toAppError(err);
          const error: JobError = { code: e.code, message: e.code === 'INTERNAL' ? (err as Error).message : e.message };
          if (state === 'failed') this.#log.warn({ err, url }, 'fetch failed');
          return { state, sha256: null, error };
        },
      )
      .then((end) =>
        endTransfer(this.#deps, id, this.holder, { ...end, bytesDone: local.bytesDone, totalBytes: local.totalBytes }),
      )
      .catch((err: unknown) => this.#log.error({ err, job: id }, 'could not record the end of a fetch job'))
      .finally(() => this.#local.delete(id));
    this.#local.set(id, local);
    this.#startHeartbeat();
    // Started at once when a slot is free (p-queue calls `run` within add): answer "running" then.
    if (starting) await starting.catch(() => false);
    const job = await this.get(id);
    // The newest job is never pruned: only ended jobs beyond the 50 most recent are.
    if (!job) throw new Error(`fetch job ${id} vanished right after it was created`);
    return job;
  }

  /** Every job of every process, oldest first. */
  async list(): Promise<TransferJob[]> {
    return (await listTransfers(this.#deps, [...this.#local.keys()])).map((job) => this.#fresher(job));
  }

  async get(id: string): Promise<TransferJob | undefined> {
    const job = await getTransfer(this.#deps, id, [...this.#local.keys()]);
    return job && this.#fresher(job);
  }

  /** Resolves once the job has ended (tests, shutdown), wherever it runs. */
  async wait(id: string): Promise<TransferJob | undefined> {
    const local = this.#local.get(id);
    if (local) return local.done.then(() => this.get(id));
    for (;;) {
      const job = await this.get(id);
      if (!job || (job.state !== 'queued' && job.state !== 'running')) return job;
      await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
    }
  }

  /** Cancels a job of any process (a running one of another process stops within its heartbeat); false when it is not running or queued. */
  async cancel(id: string): Promise<boolean> {
    const reason = 'cancelled by an admin';
    if (!(await cancelTransfer(this.#deps, id, reason))) return false;
    const local = this.#local.get(id);
    if (local) this.#abort(local, reason);
    return true;
  }

  async close(): Promise<void> {
    for (const local of this.#local.values()) this.#abort(local, 'server shutting down');
    await Promise.allSettled([...this.#local.values()].map((l) => l.done));
    this.#stopHeartbeat();
  }

  #abort(local: LocalJob, reason: string): void {
    const error = new Error(reason);
    if (!local.started) local.dequeue.abort(error);
    local.controller.abort(error);
  }

  /** This process's own running jobs: the progress as of now, not as of the last heartbeat. */
  #fresher(job: TransferJob): TransferJob {
    const local = this.#local.get(job.id);
    if (!local?.started || job.state !== 'running') return job;
    return { ...job, bytesDone: local.bytesDone, totalBytes: local.totalBytes };
  }

  #startHeartbeat(): void {
    if (this.#heartbeat) return;
    this.#heartbeat = setInterval(() => void this.#beat(), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }

  /** Writes the progress of every job this process runs or queues, and stops those cancelled or ended elsewhere. */
  async #beat(): Promise<void> {
    if (this.#beating) return;
    this.#beating = true;
    try {
      for (const [id, local] of this.#local) {
        let state: Awaited<ReturnType<typeof beatTransfer>>;
        try {
          state = await beatTransfer(this.#deps, id, this.holder, {
            bytesDone: local.bytesDone,
            totalBytes: local.totalBytes,
          });
        } catch (err) {
          this.#log.warn({ err, job: id }, 'could not write the progress of a fetch job');
          continue;
        }
        if (!state) this.#abort(local, 'ended elsewhere (taken as interrupted)');
        else if (state.cancelRequested) this.#abort(local, 'cancelled by an admin');
      }
    } finally {
      this.#beating = false;
    }
    if (this.#local.size === 0) this.#stopHeartbeat();
  }
}
