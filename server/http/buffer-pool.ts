/**
 * Reusable read buffers for the download path, with a hard cap on how many
 * exist. Allocating a fresh 1 MiB buffer per chunk costs page faults and GC
 * churn (measured: it dominated the CPU of random 1 MiB range requests), and
 * an uncapped pool grows with the number of connections: a thousand clients
 * arriving at once would each touch a buffer, and the allocator keeps that
 * memory. With a cap, the pool's share of RSS is at most `maxBuffers` buffers
 * however many downloads run; callers beyond it wait their turn (FIFO).
 */
export class BufferPool {
  readonly bufferBytes: number;
  readonly maxBuffers: number;
  readonly #free: Buffer[] = [];
  readonly #waiters: Array<{
    resolve: (buffer: Buffer) => void;
    reject: (err: unknown) => void;
    signal: AbortSignal | undefined;
    onAbort: () => void;
  }> = [];
  #created = 0;

  constructor(bufferBytes: number, maxBuffers: number) {
    if (!Number.isInteger(bufferBytes) || bufferBytes < 1)
      throw new TypeError(`BufferPool: bufferBytes must be a whole number >= 1, got ${String(bufferBytes)}`);
    if (!Number.isInteger(maxBuffers) || maxBuffers < 1)
      throw new TypeError(`BufferPool: maxBuffers must be a whole number >= 1, got ${String(maxBuffers)}`);
    this.bufferBytes = bufferBytes;
    this.maxBuffers = maxBuffers;
  }

  /** A buffer at once, or null when all `maxBuffers` are in use. */
  tryAcquire(): Buffer | null {
    const free = this.#free.pop();
    if (free) return free;
    if (this.#created >= this.maxBuffers) return null;
    this.#created += 1;
    return Buffer.allocUnsafeSlow(this.bufferBytes);
  }

  /** A buffer as soon as one is free; rejects if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<Buffer> {
    const buffer = this.tryAcquire();
    if (buffer) return Promise.resolve(buffer);
    if (signal?.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Gives a buffer back; only once nothing (a read, a queued socket write) uses it any more. */
  release(buffer: Buffer): void {
    if (buffer.length !== this.bufferBytes) return;
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.resolve(buffer);
      return;
    }
    this.#free.push(buffer);
  }

  /** Buffers handed out and not yet released. */
  get inUse(): number {
    return this.#created - this.#free.length;
  }
}

/** What a caller takes buffers from: the pool itself or a share of it. */
export interface BufferSource {
  tryAcquire(): Buffer | null;
  acquire(signal?: AbortSignal): Promise<Buffer>;
  release(buffer: Buffer): void;
}

/**
 * At most `maxBuffers` of a pool's buffers for one kind of caller, so one kind
 * (downloads to clients not yet known to read) cannot take the whole pool,
 * and a crowd of them touches only a few buffers.
 */
export class BufferShare implements BufferSource {
  readonly #pool: BufferPool;
  readonly #max: number;
  readonly #waiters: Array<() => void> = [];
  #used = 0;

  constructor(pool: BufferPool, maxBuffers: number) {
    if (!Number.isInteger(maxBuffers) || maxBuffers < 1)
      throw new TypeError(`BufferShare: maxBuffers must be a whole number >= 1, got ${String(maxBuffers)}`);
    this.#pool = pool;
    this.#max = maxBuffers;
  }

  tryAcquire(): Buffer | null {
    if (this.#used >= this.#max) return null;
    const buffer = this.#pool.tryAcquire();
    if (buffer) this.#used += 1;
    return buffer;
  }

  async acquire(signal?: AbortSignal): Promise<Buffer> {
    while (this.#used >= this.#max) {
      if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
      await new Promise<void>((resolve) => {
        const onAbort = (): void => {
          const i = this.#waiters.indexOf(wake);
          if (i >= 0) this.#waiters.splice(i, 1);
          resolve();
        };
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#waiters.push(wake);
      });
    }
    this.#used += 1;
    try {
      return await this.#pool.acquire(signal);
    } catch (err) {
      this.#used -= 1;
      this.#waiters.shift()?.();
      throw err;
    }
  }

  release(buffer: Buffer): void {
    this.#used -= 1;
    this.#pool.release(buffer);
    this.#waiters.shift()?.();
  }
}
