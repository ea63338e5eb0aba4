/** Polling for tests: wait until something observable happened, with a deadline instead of a fixed sleep. */

export interface WaitOptions {
  /** Named in the timeout error. */
  what?: string;
  timeoutMs?: number;
  /** Pause between tries; 0 yields to the event loop only (setImmediate). */
  intervalMs?: number;
}

/** Resolves once `condition` is true; rejects after timeoutMs (default 10 s). */
export async function waitFor(condition: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
  await waitForValue(async () => ((await condition()) ? true : undefined), options);
}

/** Resolves with the first value of `probe` that is not undefined; rejects after timeoutMs (default 10 s). */
export async function waitForValue<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  options: WaitOptions = {},
): Promise<T> {
  const { what = 'a condition', timeoutMs = 10_000, intervalMs = 20 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => (intervalMs > 0 ? setTimeout(resolve, intervalMs) : setImmediate(resolve)));
  }
}
