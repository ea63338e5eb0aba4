/**
 * The integrity checker: re-hashes stored blobs through a p-queue with a
 * concurrency limit and a shared read-rate cap, so checks never starve
 * downloads. Results go to the database (state, verified_at), which is what
 * the download links read, so a check run anywhere takes effect everywhere.
 */
import PQueue from 'p-queue';
import type { Sha256 } from '../../storage/digest.js';
import { verifyBlob } from '../../storage/verify.js';
import { createRateLimiter } from '../http/rate-limiter.js';
import type { Metrics } from '../metrics.js';
import type { ServiceDeps } from '../services/deps.js';
import {
  blobToCheck,
  digestsByLastCheck,
  recordVerdict,
  type Basis,
  type CheckResult,
  type Verdict,
} from '../services/verdicts.js';

export type { CheckResult } from '../services/verdicts.js';

export interface CheckProgress {
  sha256: string;
  bytesDone: number;
  totalBytes: number;
  startedAt: string;
  bytesPerSec: number;
}

export interface CheckerStatus {
  running: CheckProgress[];
  queued: string[];
  concurrency: number;
  maxBytesPerSec: number;
}

export interface IntegrityCheckerOptions extends Pick<ServiceDeps, 'db' | 'store' | 'log' | 'clock'> {
  metrics?: Metrics | undefined;
  concurrency: number;
  maxBytesPerSec: number;
}

interface Running {
  controller: AbortController;
  progress: { bytesDone: number; totalBytes: number; startedAt: number };
}

export class IntegrityChecker {
  readonly #options: IntegrityCheckerOptions;
  readonly #queue: PQueue;
  readonly #throttle: ((bytes: number, signal?: AbortSignal) => Promise<void>) | undefined;
  readonly #pending = new Map<string, Promise<CheckResult>>();
  readonly #queuedControllers = new Map<string, AbortController>();
  readonly #running = new Map<string, Running>();
  #closed = false;
  /** Told after each recorded verdict (the server drops its cached view of that blob). */
  onResult: ((sha256: string) => void) | null = null;

  constructor(options: IntegrityCheckerOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new TypeError(
        `IntegrityChecker: concurrency must be a whole number >= 1, got ${String(options.concurrency)} (${typeof options.concurrency})`,
      );
    }
    this.#options = options;
    this.#queue = new PQueue({ concurrency: options.concurrency });
    const limiter = createRateLimiter(options.maxBytesPerSec);
    this.#throttle = limiter ? (bytes, signal) => limiter.take(bytes, signal) : undefined;
  }

  /** Queues a check of one blob (once: a blob already queued or running shares that check). */
  check(sha256: Sha256): Promise<CheckResult> {
    if (this.#closed) return Promise.resolve('cancelled');
    const existing = this.#pending.get(sha256);
    if (existing) return existing;
    const controller = new AbortController();
    this.#queuedControllers.set(sha256, controller);
    const task = this.#queue
      .add(() => this.#run(sha256, controller), { signal: controller.signal })
      .then((result) => result ?? 'cancelled')
      .catch((err: unknown) => {
        if (controller.signal.aborted) return 'cancelled' as const;
        throw err;
      })
      .finally(() => {
        this.#pending.delete(sha256);
        this.#queuedControllers.delete(sha256);
      });
    this.#pending.set(sha256, task);
    return task;
  }

  /**
   * A check that starts after this call: waits out a check of the same blob
   * already queued or running (it may have read an older copy), then runs a new one.
   */
  async checkFresh(sha256: Sha256): Promise<CheckResult> {
    const earlier = this.#pending.get(sha256);
    if (earlier) await earlier.catch(() => undefined);
    return this.check(sha256);
  }

  /** Queues every stored blob; resolves when all of them have been checked. */
  async checkAll(): Promise<Record<string, CheckResult>> {
    const digests = await digestsByLastCheck(this.#options);
    const results = await Promise.all(
      digests.map(async (sha256) => [sha256, await this.check(sha256 as Sha256)] as const),
    );
    return Object.fromEntries(results);
  }

  isBusyWith(sha256: string): boolean {
    return this.#pending.has(sha256);
  }

  /** Cancels one check (queued or running), or all of them. Returns how many were cancelled. */
  cancel(sha256?: string): number {
    let count = 0;
    for (const [sha, controller] of this.#queuedControllers) {
      if (sha256 !== undefined && sha !== sha256) continue;
      controller.abort(new Error('check cancelled'));
      count += 1;
    }
    return count;
  }

  status(): CheckerStatus {
    const now = this.#now();
    const running = [...this.#running].map(([sha256, { progress }]) => {
      const seconds = Math.max(0.001, (now - progress.startedAt) / 1000);
      return {
        sha256,
        bytesDone: progress.bytesDone,
        totalBytes: progress.totalBytes,
        startedAt: new Date(progress.startedAt).toISOString(),
        bytesPerSec: Math.round(progress.bytesDone / seconds),
      };
    });
    return {
      running,
      queued: [...this.#pending.keys()].filter((sha) => !this.#running.has(sha)),
      concurrency: this.#options.concurrency,
      maxBytesPerSec: this.#options.maxBytesPerSec,
    };
  }

  /** Stops cleanly: queued checks are dropped, running ones aborted, and this waits for them. */
  async close(): Promise<void> {
    this.#closed = true;
    this.cancel();
    this.#queue.clear();
    await this.#queue.onIdle();
    await Promise.allSettled([...this.#pending.values()]);
  }

  #now(): number {
    return this.#options.clock.now();
  }

  async #run(sha256: Sha256, controller: AbortController): Promise<CheckResult> {
    const { store, log, metrics } = this.#options;
    const row = await blobToCheck(this.#options, sha256);
    if (!row) return 'unknown';
    // What the verdict will be about: the row's last ingest and the file on disk as the check starts.
    const basis: Basis = { ingestedAt: row.ingested_at, version: await store.version(sha256) };
    const running: Running = { controller, progress: { bytesDone: 0, totalBytes: row.size, startedAt: this.#now() } };
    this.#running.set(sha256, running);
    let lastBytes = 0;
    try {
      let outcome: Verdict;
      try {
        outcome = await verifyBlob(store, sha256, {
          signal: controller.signal,
          throttle: this.#throttle,
          onProgress: (done, total) => {
            running.progress.bytesDone = done;
            running.progress.totalBytes = total;
            metrics?.verifyBytes.inc(done - lastBytes);
            lastBytes = done;
          },
        });
      } catch (err) {
        if (controller.signal.aborted || (err as NodeJS.ErrnoException).code !== 'EIO') throw err;
        // The disk cannot read it back: as unservable as wrong bytes.
        outcome = { kind: 'unreadable', err };
      }
      const result = await recordVerdict(this.#options, sha256, outcome, basis);
      if (result !== 'replaced' && result !== 'unknown') this.onResult?.(sha256);
      metrics?.verifyRuns.inc({ result });
      return result;
    } catch (err) {
      if (controller.signal.aborted) {
        metrics?.verifyRuns.inc({ result: 'cancelled' });
        log.info({ sha256 }, 'integrity check cancelled');
        return 'cancelled';
      }
      metrics?.verifyRuns.inc({ result: 'error' });
      log.error({ err, sha256 }, 'integrity check failed to run');
      throw err;
    } finally {
      this.#running.delete(sha256);
    }
  }
}
