/**
 * What services are given: one `ServiceDeps` shape that the runtime (and the
 * app built from it) carries whole, so a caller passes `runtime` or `deps`
 * and each service names the part it reads with `Pick<ServiceDeps, …>`.
 * Time comes from `clock` only, so tests and schedules can move it.
 */
import type { BlobStore } from '../../storage/blob-store.js';
import type { Config } from '../../config/load.js';
import type { Db } from '../db/open.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ActivityTracker } from './activity.js';

/** Wall-clock time and timers; the scheduler's jobs and every service read time through it. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

/** The real clock; its timers never keep the process alive on their own. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

export interface ServiceDeps {
  db: Db;
  store: BlobStore;
  config: Config;
  log: Logger;
  clock: Clock;
  metrics: Metrics;
  /** Downloads in progress and the batched download counters; absent where no server runs (some tests). */
  activity?: ActivityTracker | undefined;
}

/** The part most services need: the database and the time. */
export type DbDeps = Pick<ServiceDeps, 'db' | 'clock'>;
