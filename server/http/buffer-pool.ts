/**
 * Reusable read buffers for the download path. Allocating a fresh 1 MiB
 * buffer per chunk costs page faults and GC churn (measured: it dominated the
 * CPU of random 1 MiB range requests); a small free list removes both. A
 * buffer comes back only after the socket is done with it.
 */
export class BufferPool {
  readonly bufferBytes: number;
  readonly #maxFree: number;
  readonly #free: Buffer[] = [];

  constructor(bufferBytes: number, maxFree: number) {
    this.bufferBytes = bufferBytes;
    this.#maxFree = maxFree;
  }

  acquire(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
  }

  release(buffer: Buffer): void {
    if (buffer.length === this.bufferBytes && this.#free.length < this.#maxFree) this.#free.push(buffer);
  }
}
