// Over 300 lines on purpose: one class with one lifecycle (queue, rate cap, verdicts) whose steps share its private state.
/**
 * The integrity checker: re-hashes stored blobs through a p-queue with a
 * concurrency limit and a shared read-rate cap, so checks never starve
 * downloads. Results go to the database (state, verified_at), which is what
 * the download links read, so a check run anywhere takes effect everywhere.
 */
import PQueue from 'p-queue';
import type { Sha256 } from '../../storage/digest.js';
import { verifyBlob, type VerifyOutcome } from '../../storage/verify.js';
import { withBlobLock } from '../db/blob-lock.js';
import { findBlob, listDigestsByVerifiedAt, setBlobState } from '../db/repos/blobs.js';
import { createRateLimiter } from '../http/rate-limiter.js';
import type { Metrics } from '../metrics.js';
import { recordAudit, systemActor } from '../services/audit.js';
import type { ServiceDeps } from '../services/deps.js';

export type CheckResult = VerifyOutcome['kind'] | 'cancelled' | 'unknown';

/** A blob that could not be read at all: the state it is withheld in, and the reason kept with it. */
const UNREAD_FINDINGS = {
  missing: { state: 'missing', detail: 'the blob file is missing from the data directory' },
  unreadable: { state: 'corrupt', detail: 'read error (EIO) while re-hashing: the disk is failing' },
} as const;

/** Every finding that withholds a blob is audited as `blob.<state>`, in the same transaction as the state. */
function auditFinding(
  trx: Parameters<typeof recordAudit>[0],
  sha256: Sha256,
  state: 'missing' | 'corrupt',
  at: number,
  details: Record<string, unknown>,
): Promise<void> {
  return recordAudit(trx, { actor: systemActor, action: `blob.${state}`, target: `blob:${sha256}`, at, details });
}

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

/** What a check found: the verifier's outcome, or a read error of the disk. */
type Verdict = VerifyOutcome | { kind: 'unreadable'; err: unknown };

/** The row's last ingest and the file's version when a check started. */
interface Basis {
  ingestedAt: number | null;
  version: string | null;
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
    const digests = await listDigestsByVerifiedAt(this.#options.db);
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
    const { db, store, log, metrics } = this.#options;
    const row = await findBlob(db, sha256);
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
      const result = await this.#record(sha256, outcome, basis);
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

  /**
   * Records a verdict, and quarantines a corrupt file, only while they are
   * still about the copy that was read: inside withBlobLock the row must show
   * no ingest since the check began and the file must be the version read.
   * Otherwise a repair (a re-import of the same content) landed meanwhile,
   * and acting would withhold or quarantine the good new copy: 'replaced'.
   */
  async #record(sha256: Sha256, outcome: Verdict, basis: Basis): Promise<CheckResult> {
    const { db, store, log } = this.#options;
    if (outcome.kind === 'replaced') {
      log.info({ sha256 }, 'blob was replaced during its check; the new copy will be checked on schedule');
      return 'replaced';
    }
    const now = this.#now();
    const readVersion =
      outcome.kind === 'missing' ? null : outcome.kind === 'unreadable' ? basis.version : outcome.version;
    let quarantined: string | null = null;
    const verdict = await withBlobLock(db, async (trx): Promise<CheckResult> => {
      const row = await findBlob(trx, sha256);
      if (!row) return 'unknown';
      if (row.ingested_at !== basis.ingestedAt || (await store.version(sha256)) !== readVersion) return 'replaced';
      switch (outcome.kind) {
        case 'ok':
          await setBlobState(trx, sha256, 'ok', { verifiedAtMs: now });
          return 'ok';
        case 'missing':
        case 'unreadable': {
          const { state, detail } = UNREAD_FINDINGS[outcome.kind];
          await setBlobState(trx, sha256, state, { verifiedAtMs: now, detail });
          await auditFinding(trx, sha256, state, now, { detail });
          return state;
        }
        case 'corrupt': {
          // Withheld (links answer 503 once this commits) and moved aside in one step. A move that fails
          // (permissions, I/O) must not undo the withholding: it is logged and audited instead.
          const detail = `content hashes to ${outcome.actual}`;
          await setBlobState(trx, sha256, 'corrupt', { verifiedAtMs: now, detail });
          const moved = await store.quarantine(sha256, now).then(
            (file) => ({ file, error: null }),
            (err: unknown) => ({ file: null, error: err }),
          );
          quarantined = moved.file;
          if (moved.error)
            log.error(
              { err: moved.error, sha256 },
              'integrity check: could not move the corrupt blob to quarantine; it stays withheld',
            );
          const details = {
            detail,
            quarantined,
            ...(moved.error
              ? { quarantineError: moved.error instanceof Error ? moved.error.message : 'unknown error' }
              : {}),
          };
          await auditFinding(trx, sha256, 'corrupt', now, details);
          return 'corrupt';
        }
      }
    });
    switch (verdict) {
      case 'ok':
        log.info({ sha256 }, 'integrity check passed');
        break;
      case 'replaced':
        log.info({ sha256 }, 'blob was ingested again during its check; the new copy will be checked on schedule');
        break;
      case 'missing':
        log.error({ sha256 }, 'integrity check: blob file is missing; its links now answer 503');
        break;
      case 'corrupt':
        if (outcome.kind === 'unreadable')
          log.error({ err: outcome.err, sha256 }, 'integrity check: blob cannot be read; its links answer 503');
        else
          log.error(
            { sha256, actual: outcome.kind === 'corrupt' ? outcome.actual : null, quarantined },
            'integrity check: blob is corrupt; withheld, links answer 503',
          );
        break;
      default:
        break;
    }
    return verdict;
  }
}
