/**
 * The primary process of `serve --workers N`: forks N workers that each run
 * the whole server and share the listen sockets (node:cluster, round robin),
 * replaces a worker that dies, answers the workers' /metrics scrapes with the
 * sum over all of them, and on SIGTERM/SIGINT lets every worker drain within
 * the shutdown timeout. It opens no database and serves nothing itself.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../log.js';
import { answerClusterScrapes } from './metrics.js';
import { isReadyMessage } from './worker.js';

export interface SupervisorOptions {
  workers: number;
  /** How long a stopping worker may let running transfers finish (config.shutdownTimeoutMs). */
  shutdownTimeoutMs: number;
  log: Logger;
}

/** A worker that lived at least this long was serving, so its replacement starts at once. */
const STABLE_AFTER_MS = 10_000;
/** A slot whose workers keep dying young restarts after 1 s, 2 s, 4 s, … up to this, not in a tight loop. */
const MAX_RESTART_DELAY_MS = 30_000;
/** Past the shutdown timeout, time for a worker to close its database and exit before it is killed. */
const EXIT_GRACE_MS = 5_000;

interface Slot {
  worker: Worker | null;
  startedAt: number;
  youngDeaths: number;
  restart: NodeJS.Timeout | null;
}

/** Runs the workers until a signal stopped them all; resolves with the primary's exit code. */
export function superviseWorkers(options: SupervisorOptions): Promise<number> {
  const { log } = options;
  answerClusterScrapes();
  const slots: Slot[] = Array.from({ length: options.workers }, () => ({
    worker: null,
    startedAt: 0,
    youngDeaths: 0,
    restart: null,
  }));
  let anyReady = false;
  let stopping = false;
  let exitCode = 0;
  let killTimer: NodeJS.Timeout | null = null;
  let finished: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finished = resolve));

  const describe = (worker: Worker) => ({ worker: worker.id, workerPid: worker.process.pid });

  const fork = (slot: Slot): void => {
    slot.restart = null;
    const worker = cluster.fork();
    slot.worker = worker;
    slot.startedAt = Date.now();
    worker.on('message', (message: unknown) => {
      if (isReadyMessage(message)) anyReady = true;
    });
    // An IPC error (a dying worker) must not take the primary down with it; the exit that follows is handled.
    worker.on('error', (err: Error) => log.warn({ ...describe(worker), err }, 'worker channel error'));
    worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => onExit(slot, worker, code, signal));
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: NodeJS.Signals | null): void => {
    slot.worker = null;
    if (stopping) {
      log.info({ ...describe(worker), code, signal }, 'worker stopped');
      finishIfAllStopped();
      return;
    }
    if (!anyReady) {
      // Nothing ever served (a port in use, a broken data dir): stop like a single process would, with an error.
      log.error({ ...describe(worker), code, signal }, 'a worker failed to start: stopping');
      exitCode = 1;
      stop();
      return;
    }
    const livedMs = Date.now() - slot.startedAt;
    slot.youngDeaths = livedMs >= STABLE_AFTER_MS ? 0 : slot.youngDeaths + 1;
    const restartInMs = slot.youngDeaths === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** (slot.youngDeaths - 1));
    log.warn({ ...describe(worker), code, signal, livedMs, restartInMs }, 'worker exited: starting a replacement');
    slot.restart = setTimeout(() => fork(slot), restartInMs);
  };

  const killRemaining = (why: string): void => {
    for (const slot of slots) {
      if (!slot.worker) continue;
      log.warn(describe(slot.worker), `killing a worker that ${why}`);
      slot.worker.process.kill('SIGKILL');
    }
  };

  const stop = (): void => {
    stopping = true;
    for (const slot of slots) {
      if (slot.restart) clearTimeout(slot.restart);
      slot.restart = null;
    }
    // The signal alone, not worker.kill(): that would cut the IPC channel first, and a worker that loses it exits at once.
    for (const slot of slots) slot.worker?.process.kill('SIGTERM');
    killTimer = setTimeout(
      () => killRemaining('did not stop within the shutdown timeout'),
      options.shutdownTimeoutMs + EXIT_GRACE_MS,
    );
    finishIfAllStopped();
  };

  const finishIfAllStopped = (): void => {
    if (slots.some((slot) => slot.worker !== null)) return;
    if (killTimer) clearTimeout(killTimer);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    log.info({ exitCode }, 'all workers stopped');
    finished(exitCode);
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: stopping the workers now');
      killRemaining('was still finishing its transfers');
      return;
    }
    log.info(
      { signal, timeoutMs: options.shutdownTimeoutMs },
      'shutting down: every worker stops accepting and waits for its running transfers',
    );
    stop();
  };

  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  log.info({ workers: options.workers }, 'starting workers');
  for (const slot of slots) fork(slot);
  return done;
}
