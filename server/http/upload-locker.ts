/**
 * The tus locker kept in the database (`upload_locks`), so that a request of
 * any process, on any node, serving the same database excludes the others
 * from the same upload. A lock is one row taken with one atomic statement,
 * renewed every second while held and deleted on release; a process that dies
 * holding one leaves a row that expires (UPLOAD_CLAIM_TTL_MS) and is taken over.
 * A waiting request asks the holder to let go through the row, as tus'
 * in-memory locker does within one process, and the holder's renewal sees it.
 */
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/server';
import { AppError, errorBody, isError } from '../errors.js';
import type { Logger } from '../log.js';
import type { DbDeps } from '../services/deps.js';
import { newHolderId } from '../services/holders.js';
import {
  askUploadRelease,
  releaseUploadLock,
  renewUploadLockFor,
  takeUploadLockFor,
  UPLOAD_CLAIM_TTL_MS,
} from '../services/upload-coordination.js';

/** A held lock is renewed (and asked-for releases are noticed) this often. */
const RENEW_EVERY_MS = 1000;
/** A waiting request tries again this often. */
const RETRY_EVERY_MS = 100;
/** A request that cannot get the lock in this time is answered 423 (tus clients retry). */
const ACQUIRE_TIMEOUT_MS = 30_000;
/**
 * The holder stops writing when its lock was last confirmed this long ago: well before another
 * process may take it over, with room for the clocks of different nodes to differ by 5 s.
 */
const FENCE_MS = UPLOAD_CLAIM_TTL_MS - 5000;

export type LockerDeps = DbDeps & { log: Logger };

export class DatabaseLocker implements Locker {
  readonly #deps: LockerDeps;
  /** The locks this process holds, per upload, so that writes can check theirs is still theirs. */
  readonly #held = new Map<string, Set<DatabaseLock>>();
  readonly #settled: (id: string) => Promise<void>;

  /** `settled`: resolves once this process's writes to the upload have ended; a lock is released only then. */
  constructor(deps: LockerDeps, settled: (id: string) => Promise<void> = () => Promise.resolve()) {
    this.#deps = deps;
    this.#settled = settled;
  }

  newLock(id: string): DatabaseLock {
    return new DatabaseLock(id, this.#deps, this.#held, this.#settled);
  }

  /** One attempt: the lock of `id` if it is free now, else null (for actions that must not wait). */
  async tryLock(id: string): Promise<DatabaseLock | null> {
    const lock = this.newLock(id);
    return (await lock.tryOnce()) ? lock : null;
  }

  /**
   * Whether this process holds the lock of `id`, confirmed recently enough that no other process can
   * have taken it. Not while an older request of this process still has one it lost (its writes and
   * the new holder's cannot be told apart here): the new holder waits until the old request has ended.
   */
  holds(id: string): boolean {
    const locks = this.#held.get(id);
    if (locks?.size !== 1) return false;
    const [lock] = locks;
    return lock?.confirmed() ?? false;
  }
}

class DatabaseLock implements Lock {
  readonly #id: string;
  readonly #deps: LockerDeps;
  readonly #held: Map<string, Set<DatabaseLock>>;
  readonly #settled: (id: string) => Promise<void>;
  readonly #holder = newHolderId();
  #timer: NodeJS.Timeout | null = null;
  #confirmedAt = 0;
  #lost = false;
  #renewing = false;
  #releaseAsked = false;

  constructor(
    id: string,
    deps: LockerDeps,
    held: Map<string, Set<DatabaseLock>>,
    settled: (id: string) => Promise<void>,
  ) {
    this.#id = id;
    this.#deps = deps;
    this.#held = held;
    this.#settled = settled;
  }

  async lock(stopSignal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const deadline = performance.now() + ACQUIRE_TIMEOUT_MS;
    let askedAt = -Infinity;
    for (;;) {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what tus' own locker throws
      if (stopSignal.aborted) throw ERRORS.ABORTED;
      if (await this.#orUnavailable(() => this.tryOnce(requestRelease))) return;
      // Again now and then: the lock may have passed to a third request meanwhile.
      if (performance.now() - askedAt >= RENEW_EVERY_MS) {
        askedAt = performance.now();
        await this.#orUnavailable(() => askUploadRelease(this.#deps, this.#id, this.#holder));
      }
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      if (performance.now() > deadline) throw tusAnswer(new AppError('UPLOAD_BUSY'));
      await new Promise((resolve) => setTimeout(resolve, RETRY_EVERY_MS));
    }
  }

  /** A database that does not answer is a 503 in our words, not tus' 500 with the driver's message. */
  async #orUnavailable<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      // This step only talks to the database: whatever failed there (unreachable, busy, closed), the client can
      // only wait and retry. The cause is in the log.
      this.#deps.log.warn({ err, upload: this.#id }, 'could not reach the lock of an upload in the database');
      const appError = isError(err)
        ? err
        : new AppError('DATABASE_UNAVAILABLE', 'the database did not answer; try again in a few seconds');
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      throw tusAnswer(appError);
    }
  }

  /** Takes the lock if it is free (or expired) now; then keeps it renewed until unlock(). */
  async tryOnce(requestRelease: RequestRelease = () => undefined): Promise<boolean> {
    const asked = performance.now();
    if (!(await takeUploadLockFor(this.#deps, this.#id, this.#holder))) return false;
    this.#confirmedAt = asked;
    const locks = this.#held.get(this.#id) ?? new Set();
    // Taken in the database, so any older lock of this process on the same upload was lost.
    for (const older of locks) older.#lost = true;
    locks.add(this);
    this.#held.set(this.#id, locks);
    this.#timer = setInterval(() => void this.#renew(requestRelease), RENEW_EVERY_MS);
    this.#timer.unref();
    return true;
  }

  confirmed(): boolean {
    return !this.#lost && performance.now() - this.#confirmedAt < FENCE_MS;
  }

  async #renew(requestRelease: RequestRelease): Promise<void> {
    if (this.#renewing || this.#timer === null) return;
    this.#renewing = true;
    const asked = performance.now();
    try {
      const state = await renewUploadLockFor(this.#deps, this.#id, this.#holder);
      if (this.#timer === null) return;
      if (!state) {
        // Taken over after it expired: its writes already stop at the fence; have tus end the request.
        this.#lost = true;
        this.#stopRenewing();
        this.#deps.log.warn({ upload: this.#id }, 'lost the lock of an upload (not renewed in time)');
        await requestRelease();
        return;
      }
      this.#confirmedAt = asked;
      if (state.releaseRequested && !this.#releaseAsked) {
        this.#releaseAsked = true;
        await requestRelease();
      }
    } catch (err) {
      // The next renewal tries again; writes stop at the fence if none succeeds in time.
      this.#deps.log.warn({ err, upload: this.#id }, 'could not renew the lock of an upload');
    } finally {
      this.#renewing = false;
    }
  }

  #stopRenewing(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Called when the request has ended (tus does, even after the lock was lost); held until its writes end. */
  async unlock(): Promise<void> {
    await this.#settled(this.#id).catch(() => undefined);
    this.#stopRenewing();
    const locks = this.#held.get(this.#id);
    if (locks?.delete(this) && locks.size === 0) this.#held.delete(this.#id);
    try {
      await releaseUploadLock(this.#deps, this.#id, this.#holder);
    } catch (err) {
      // It expires by itself.
      this.#deps.log.warn({ err, upload: this.#id }, 'could not release the lock of an upload');
    }
  }
}

/** The answer @tus/server sends for a thrown { status_code, body }. */
function tusAnswer(err: AppError): { status_code: number; body: string } {
  return { status_code: err.status, body: JSON.stringify(errorBody(err)) };
}
