/** A clock the test moves by hand: services read its time, and scheduled jobs fire only when it passes their time. */
import type { Clock } from '../../server/services/deps.js';

export interface FakeClock extends Clock {
  /** Sets the time without firing timers. */
  set(ms: number): void;
  /** Moves time on by `ms`, firing (in order) the timers that fall due. */
  advance(ms: number): void;
  /** Timers waiting to fire, with the time they are due. */
  pending(): Array<{ at: number; ms: number; fire: () => void }>;
}

export function fakeClock(start: number): FakeClock {
  let now = start;
  const timers: Array<{ at: number; ms: number; fn: () => void }> = [];
  const take = (t: (typeof timers)[number]): boolean => {
    const i = timers.indexOf(t);
    if (i < 0) return false;
    timers.splice(i, 1);
    return true;
  };
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const t = { at: now + ms, ms, fn };
      timers.push(t);
      return { cancel: () => void take(t) };
    },
    set(ms) {
      now = ms;
    },
    advance(ms) {
      now += ms;
      for (const t of [...timers].sort((a, b) => a.at - b.at)) if (t.at <= now && take(t)) t.fn();
    },
    pending() {
      return timers.map((t) => ({ at: t.at, ms: t.ms, fire: () => void (take(t) && t.fn()) }));
    },
  };
}
