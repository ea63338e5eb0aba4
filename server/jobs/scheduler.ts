/**
 * Periodic jobs on an injectable clock. Work is chosen from the database on
 * every tick (what is due), never from a timetable held in memory, so a
 * restart or a second node picks up exactly where things stand.
 */
import type { Clock } from '../services/deps.js';

/**
 * Runs `tick` every `everyMs` (first run after `everyMs`, or at once with `atStart`), one run at a time,
 * until stopped. stop() aborts the signal a running tick was given, so a long
 * job (a sync of many GB) ends promptly on shutdown.
 */
export function every(
  clock: Clock,
  everyMs: number,
  tick: (signal: AbortSignal) => Promise<void>,
  onError: (err: unknown) => void,
  options: { atStart?: boolean } = {},
): { stop(): Promise<void> } {
  let stopped = false;
  const controller = new AbortController();
  let running: Promise<void> = Promise.resolve();
  let timer: { cancel(): void } | null = null;
  const run = (): void => {
    running = Promise.resolve()
      .then(() => tick(controller.signal))
      .catch((err: unknown) => {
        if (!controller.signal.aborted) onError(err);
      })
      .finally(schedule);
  };
  const schedule = (): void => {
    if (stopped) return;
    timer = clock.setTimeout(run, everyMs);
  };
  if (options.atStart) run();
  else schedule();
  return {
    async stop() {
      stopped = true;
      timer?.cancel();
      controller.abort(new Error('shutting down'));
      await running;
    },
  };
}
