/**
 * The integrity checker: re-hashes stored blobs through a p-queue with a
 * concurrency limit and a shared read-rate cap, so checks never starve
 * downloads. Results go to the database (state, verified_at), which is what
 * the download links read, so a check run anywhere takes effect everywhere.
 */
import PQueue from 'p-queue';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { verifyBlob, type VerifyOutcome } from '../../storage/verify.js';
import type { Db } from '../db/open.js';
import { createRateLimiter } from '../http/rate-limiter.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { setBlobState } from '../repos/blobs.js';
import { recordAudit, systemActor } from '../services/audit.js';

export type CheckResult = VerifyOutcome['kind'] | 'cancelled' | 'unknown';

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

export interface IntegrityCheckerOptions {
  db: Db;
  store: BlobStore;
  log: Logger;
  metrics?: Metrics | undefined;
  concurrency: number;
  maxBytesPerSec: number;
  now?: () => number;
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
      throw new TypeError(`IntegrityChecker: concurrency must be a whole number >= 1, got ${String(options.concurrency)} (${typeof options.concurrency})`);
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
    const rows = await this.#options.db.selectFrom('blobs').select('sha256').orderBy('verified_at').execute();
    const results = await Promise.all(rows.map(async (r) => [r.sha256, await this.check(r.sha256 as Sha256)] as const));
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
    return (this.#options.now ?? Date.now)();
  }

  async #run(sha256: Sha256, controller: AbortController): Promise<CheckResult> {
    const { db, store, log, metrics } = this.#options;
    const row = await db.selectFrom('blobs').select(['sha256', 'size']).where('sha256', '=', sha256).executeTakeFirst();
    if (!row) return 'unknown';
    const running: Running = { controller, progress: { bytesDone: 0, totalBytes: row.size, startedAt: this.#now() } };
    this.#running.set(sha256, running);
    let lastBytes = 0;
    try {
      const outcome = await verifyBlob(store, sha256, {
        signal: controller.signal,
        throttle: this.#throttle,
        onProgress: (done, total) => {
          running.progress.bytesDone = done;
          running.progress.totalBytes = total;
          metrics?.verifyBytes.inc(done - lastBytes);
          lastBytes = done;
        },
      });
      await this.#record(sha256, outcome);
      this.onResult?.(sha256);
      metrics?.verifyRuns.inc({ result: outcome.kind });
      return outcome.kind;
    } catch (err) {
      if (controller.signal.aborted) {
        metrics?.verifyRuns.inc({ result: 'cancelled' });
        log.info({ sha256 }, 'integrity check cancelled');
        return 'cancelled';
      }
      if ((err as NodeJS.ErrnoException).code === 'EIO') {
        // The disk cannot read it back: as unservable as wrong bytes.
        const detail = 'read error (EIO) while re-hashing: the disk is failing';
        await setBlobState(db, sha256, 'corrupt', { verifiedAtMs: this.#now(), detail });
        this.onResult?.(sha256);
        await recordAudit(db, { actor: systemActor, action: 'blob.corrupt', target: `blob:${sha256}`, at: this.#now(), details: { detail } });
        metrics?.verifyRuns.inc({ result: 'corrupt' });
        log.error({ err, sha256 }, 'integrity check: blob cannot be read; its links answer 503');
        return 'corrupt';
      }
      metrics?.verifyRuns.inc({ result: 'error' });
      log.error({ err, sha256 }, 'integrity check failed to run');
      throw err;
    } finally {
      this.#running.delete(sha256);
    }
  }

  async #record(sha256: Sha256, outcome: VerifyOutcome): Promise<void> {
    const { db, store, log } = this.#options;
    const now = this.#now();
    switch (outcome.kind) {
      case 'ok':
        await setBlobState(db, sha256, 'ok', { verifiedAtMs: now });
        log.info({ sha256, size: outcome.size }, 'integrity check passed');
        return;
      case 'replaced':
        log.info({ sha256 }, 'blob was replaced during its check; the new copy will be checked on schedule');
        return;
      case 'missing': {
        const detail = 'the blob file is missing from the data directory';
        await setBlobState(db, sha256, 'missing', { verifiedAtMs: now, detail });
        await recordAudit(db, { actor: systemActor, action: 'blob.missing', target: `blob:${sha256}`, at: now, details: { detail } });
        log.error({ sha256 }, 'integrity check: blob file is missing; its links now answer 503');
        return;
      }
      case 'corrupt': {
        // A repair may have landed since the read: then there is nothing to withhold.
        if ((await store.version(sha256)) !== outcome.version) {
          log.info({ sha256 }, 'blob was replaced right after a failed check; the new copy will be checked on schedule');
          return;
        }
        // Withhold first (links answer 503 from this moment, caches dropped), then move the bytes aside.
        const detail = `content hashes to ${outcome.actual}`;
        await setBlobState(db, sha256, 'corrupt', { verifiedAtMs: now, detail });
        this.onResult?.(sha256);
        const quarantined = await store.quarantine(sha256, now);
        await recordAudit(db, {
          actor: systemActor,
          action: 'blob.corrupt',
          target: `blob:${sha256}`,
          at: now,
          details: { detail, quarantined },
        });
        log.error({ sha256, actual: outcome.actual, quarantined }, 'integrity check: blob is corrupt; moved to quarantine, links answer 503');
        return;
      }
    }
  }
}
