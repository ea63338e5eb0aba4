/**
 * A shared byte-rate cap for all downloads of this process. Each caller
 * reserves the next slot on a virtual timeline (bytes / rate seconds long)
 * and waits until its slot ends, so concurrent downloads share the rate
 * fairly in arrival order and the total never exceeds it over time.
 */
export interface RateLimiter {
  /** Resolves when `bytes` may be sent; rejects only if `signal` aborts. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/** Allowance a limiter carries when traffic resumes after a pause, so short bursts start at once. */
const BURST_MS = 250;

export function createRateLimiter(
  bytesPerSec: number,
  now: () => number = performance.now.bind(performance),
): RateLimiter | null {
  if (bytesPerSec <= 0) return null;
  let nextFreeMs = now();
  return {
    take(bytes, signal) {
      const t = now();
      const start = Math.max(nextFreeMs, t - BURST_MS);
      nextFreeMs = start + (bytes * 1000) / bytesPerSec;
      // Wait until the slot ends, not until it starts: the caller sends all
      // `bytes` at once when this resolves, so releasing at the start let a
      // whole chunk (1 MiB for downloads) through ahead of its time, e.g. two
      // 1 MiB downloads at 1 MiB/s finished in under 1 s. The backdated start
      // (BURST_MS) is the only head start.
      const waitMs = nextFreeMs - t;
      if (waitMs <= 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }, waitMs);
        const onAbort = (): void => {
          clearTimeout(timer);
          reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}
