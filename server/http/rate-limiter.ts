/**
 * A shared byte-rate cap for all downloads of this process. Each caller
 * reserves the next slot on a virtual timeline (bytes / rate seconds long)
 * and waits until its slot starts, so concurrent downloads share the rate
 * fairly in arrival order and the total never exceeds it over time.
 */
export interface RateLimiter {
  /** Resolves when `bytes` may be sent; rejects only if `signal` aborts. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/** Allowance a limiter carries when traffic resumes after a pause, so short bursts start at once. */
const BURST_MS = 250;

export function createRateLimiter(bytesPerSec: number, now: () => number = performance.now.bind(performance)): RateLimiter | null {
  if (bytesPerSec <= 0) return null;
  let nextFreeMs = now();
  return {
    take(bytes, signal) {
      const t = now();
      const start = Math.max(nextFreeMs, t - BURST_MS);
      nextFreeMs = start + (bytes * 1000) / bytesPerSec;
      const waitMs = start - t;
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
