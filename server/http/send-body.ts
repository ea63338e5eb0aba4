// Over 300 lines on purpose: one class whose state (sink, buffers, park timer, prefetch) every step shares on the hot path.
/**
 * Streams a download body from a blob file so that memory follows what the
 * client actually takes:
 *
 * 1. A read buffer (from the capped pool) is held while its chunk is read and
 *    handed to the kernel. Bytes go out through a SocketSink, which never
 *    leaves a buffer referenced by a socket queue.
 * 2. When the kernel takes no more, a small copy of the next bytes is queued
 *    to learn when the socket is writable again. A client not yet known to
 *    read promptly gives its buffer back at once (the unsent rest is read again
 *    from the page cache later), so a client that never reads holds only that
 *    small copy. From object storage a read again is another GET, so there it
 *    keeps the buffer across a short wait, as in 3.
 * 3. A client that has taken KEEP_UP_BYTES without a wait longer than PARK_MS
 *    is "keeping up": it keeps its chunk across short waits and reads the next
 *    chunk ahead, which is what keeps a single fast download close to
 *    sendfile. A wait longer than PARK_MS returns both buffers and it starts
 *    over as unknown. Unknown clients draw from a small share of the pool.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { BlobReader } from '../../storage/blob-store.js';
import type { BufferSource } from './buffer-pool.js';
import type { ByteRange } from './range.js';
import type { RateLimiter } from './rate-limiter.js';
import { AppError, isError } from '../errors.js';
import { createSocketSink, type SocketSink } from './socket-sink.js';

/** Bytes queued to wait for writability: all that a client who stopped reading pins. */
const WAKE_PIECE_BYTES = 2048;
/** A wait for writability longer than this means the client is not keeping up: give the buffers back. */
const PARK_MS = 100;
/** A client that accepts no bytes for this long is dropped (node:http destroys the socket on timeout). */
export const STALL_TIMEOUT_MS = 120_000;
/** Bytes written straight to the socket bypass node's idle timer: re-arm it at most this often. */
const TIMEOUT_REFRESH_MS = 1000;
/** How often a long download asks whether its blob is still servable (a check in another process). */
const REVALIDATE_MS = 1000;

/**
 * Bytes a client must take without a long wait before it counts as keeping
 * up: more than the kernel buffers of a client that never reads can absorb
 * (up to about 4 MiB on Linux loopback, measured), so such a client never
 * gets there however promptly its first waits end.
 */
const KEEP_UP_BYTES = 16 * 1024 * 1024;
/** What a keep-alive connection has shown so far, carried to its next response. */
const promptBytesBySocket = new WeakMap<Socket, number>();

/** One piece of a body: bytes in memory (multipart headers) or an inclusive range of the blob. */
export type BodySegment = { bytes: Buffer } | { range: ByteRange };

export interface SendBodyOptions {
  /** Read buffers for clients keeping up, and the smaller share clients not (yet) known to read may use. */
  buffers: { keepingUp: BufferSource; unknown: BufferSource };
  limiter: RateLimiter | null;
  /** Asked now and then: false stops the transfer (its blob failed a check elsewhere). */
  stillServable?: (() => Promise<boolean>) | undefined;
}

export interface SendOutcome {
  /** Body bytes handed to the kernel. */
  sent: number;
  complete: boolean;
  /** stillServable said no. */
  withdrawn: boolean;
}

interface Chunk {
  buffer: Buffer;
  source: BufferSource;
  position: number;
  length: number;
}

interface Prefetch extends Chunk {
  done: Promise<number>;
}

/** Sends the headers already set on `res`, then `segments`, then ends the response. Rejects only on read errors. */
export async function sendBody(
  res: ServerResponse,
  reader: BlobReader,
  segments: BodySegment[],
  options: SendBodyOptions,
): Promise<SendOutcome> {
  const sender = new BodySender(res, reader, options);
  return sender.run(segments);
}

class BodySender {
  readonly #res: ServerResponse;
  readonly #reader: BlobReader;
  readonly #options: SendBodyOptions;
  #sink: SocketSink | null = null;
  #socket: Socket | null = null;
  /** Bytes taken since the start (of the connection) or the last long wait. */
  #promptBytes = 0;
  #parkTimer: NodeJS.Timeout | null = null;
  #onLate: (() => void) | null = null;
  #prefetch: Prefetch | null = null;
  #sent = 0;
  #timeoutArmedAt = 0;
  #checkedAt = performance.now();
  #withdrawn = false;
  /** Made only when something must be able to stop waiting (a buffer, the rate limit): most bodies never need one. */
  #abort: AbortController | null = null;
  #onClose: (() => void) | null = null;
  /** Reading the unsent rest again costs a request (object storage), not a copy from the page cache (local file). */
  readonly #rereadIsCostly: boolean;

  constructor(res: ServerResponse, reader: BlobReader, options: SendBodyOptions) {
    this.#res = res;
    this.#reader = reader;
    this.#options = options;
    this.#rereadIsCostly = reader.readSync === undefined;
  }

  async run(segments: BodySegment[]): Promise<SendOutcome> {
    try {
      this.#sink = await this.#startBody();
      for (const segment of segments) {
        if ('bytes' in segment) await this.#sendBytes(segment.bytes);
        else await this.#sendRange(segment.range.start, segment.range.end + 1);
      }
      return { sent: this.#sent, complete: await endResponse(this.#res), withdrawn: false };
    } catch (err) {
      if (isError(err, 'CONNECTION_GONE')) return { sent: this.#sent, complete: false, withdrawn: this.#withdrawn };
      throw err;
    } finally {
      if (this.#parkTimer) clearTimeout(this.#parkTimer);
      this.#dropPrefetch();
      const socket = this.#socket;
      if (socket) promptBytesBySocket.set(socket, this.#promptBytes);
      if (this.#onClose) this.#res.off('close', this.#onClose);
    }
  }

  /** Puts the status line and headers on the wire and waits for the socket if a pipelined response is still ahead of this one. */
  async #startBody(): Promise<SocketSink> {
    const res = this.#res;
    res.flushHeaders();
    if (!res.socket) {
      await new Promise<void>((resolve) => {
        const onSocket = (): void => {
          res.off('close', onSocket);
          res.off('socket', onSocket);
          resolve();
        };
        res.once('socket', onSocket);
        res.once('close', onSocket);
      });
    }
    const socket = res.socket;
    if (!socket || socket.destroyed || res.destroyed) throw new AppError('CONNECTION_GONE');
    this.#armTimeout();
    this.#socket = socket;
    this.#promptBytes = promptBytesBySocket.get(socket) ?? 0;
    return createSocketSink(socket);
  }

  async #sendBytes(bytes: Buffer): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      offset += this.#trySend(bytes, offset, bytes.length - offset);
      if (offset < bytes.length)
        offset += await this.#awaitWritable(
          this.#queueWakePiece(bytes, offset, bytes.length - offset),
          () => undefined,
        );
    }
  }

  async #sendRange(start: number, end: number): Promise<void> {
    const { limiter } = this.#options;
    let position = start;
    // Bytes read again after a client gave its buffer back were paid for the first time.
    let chargedUntil = start;
    while (position < end) {
      if (this.#closed()) throw new AppError('CONNECTION_GONE');
      await this.#revalidate();
      const chunk = (await this.#takePrefetch(position)) ?? (await this.#read(position, end));
      if (this.#keepingUp()) this.#startPrefetch(position + chunk.length, end);
      const unpaid = position + chunk.length - chargedUntil;
      if (limiter && unpaid > 0) await limiter.take(unpaid, this.#abortSignal()).catch(() => undefined);
      chargedUntil = Math.max(chargedUntil, position + chunk.length);
      let offset = 0;
      let held = true;
      try {
        while (offset < chunk.length) {
          if (this.#closed()) throw new AppError('CONNECTION_GONE');
          offset += this.#trySend(chunk.buffer, offset, chunk.length - offset);
          if (offset === chunk.length) break;
          // The kernel is full. A client not known to keep up gives the buffer back
          // while it waits; one keeping up keeps it, unless the wait turns out long.
          const wake = this.#queueWakePiece(chunk.buffer, offset, chunk.length - offset);
          if (!this.#holdsAcrossWaits()) {
            held = false;
            chunk.source.release(chunk.buffer);
          }
          offset += await this.#awaitWritable(wake, () => {
            if (!held) return;
            held = false;
            chunk.source.release(chunk.buffer);
          });
          if (!held) break;
        }
      } finally {
        if (held) chunk.source.release(chunk.buffer);
      }
      position += offset;
    }
  }

  /** Keeps read buffers across short waits and reads ahead: the client has shown it reads. */
  #keepingUp(): boolean {
    return this.#promptBytes >= KEEP_UP_BYTES;
  }

  /** Keeps its chunk while it waits for the socket, unless the wait turns out long. */
  #holdsAcrossWaits(): boolean {
    return this.#rereadIsCostly || this.#keepingUp();
  }

  #trySend(source: Buffer, offset: number, length: number): number {
    const took = this.#sink!.trySend(source, offset, length);
    if (took > 0) {
      this.#sent += took;
      this.#promptBytes += took;
      this.#armTimeout();
    }
    return took;
  }

  /** Queues a copy of the next few bytes, so libuv tells us (by writing them) when the socket takes bytes again. */
  #queueWakePiece(source: Buffer, offset: number, length: number): { bytes: number; writable: Promise<boolean> } {
    const piece = Buffer.allocUnsafeSlow(Math.min(length, WAKE_PIECE_BYTES));
    source.copy(piece, 0, offset, offset + piece.length);
    return { bytes: piece.length, writable: this.#sink!.sendAndWait(piece) };
  }

  /**
   * Waits until the wake piece is written and returns its length. While a
   * client keeping up waits longer than PARK_MS, `park` gives its buffers back
   * and it counts as unknown again; a prompt wake-up marks it as keeping up.
   */
  async #awaitWritable(wake: { bytes: number; writable: Promise<boolean> }, park: () => void): Promise<number> {
    const started = performance.now();
    let parked = false;
    if (this.#holdsAcrossWaits()) {
      // One timer per transfer, re-armed for each wait; firing after the wait ended does nothing.
      this.#onLate = () => {
        parked = true;
        this.#promptBytes = 0;
        this.#dropPrefetch();
        park();
      };
      if (this.#parkTimer) this.#parkTimer.refresh();
      else this.#parkTimer = setTimeout(() => this.#onLate?.(), PARK_MS);
    }
    const writable = await wake.writable;
    this.#onLate = null;
    if (!writable) throw new AppError('CONNECTION_GONE');
    if (parked || performance.now() - started > PARK_MS) this.#promptBytes = 0;
    else this.#promptBytes += wake.bytes;
    this.#sent += wake.bytes;
    this.#armTimeout();
    return wake.bytes;
  }

  async #read(position: number, end: number): Promise<Chunk> {
    const { buffers } = this.#options;
    const source = this.#keepingUp() ? buffers.keepingUp : buffers.unknown;
    const buffer =
      source.tryAcquire() ??
      (await source.acquire(this.#abortSignal()).catch(() => {
        throw new AppError('CONNECTION_GONE');
      }));
    const length = Math.min(buffer.length, end - position);
    try {
      const got = await readFully(this.#reader, buffer, length, position);
      if (got !== length) throw new Error(`blob ended early at byte ${position + got} of ${this.#reader.size}`);
    } catch (err) {
      source.release(buffer);
      throw err;
    }
    return { buffer, source, position, length };
  }

  #startPrefetch(position: number, end: number): void {
    if (this.#prefetch || position >= end) return;
    const source = this.#options.buffers.keepingUp;
    const buffer = source.tryAcquire();
    if (!buffer) return;
    const length = Math.min(buffer.length, end - position);
    // A failed read-ahead is read again (and reported) the ordinary way.
    const done = readFully(this.#reader, buffer, length, position).catch(() => -1);
    this.#prefetch = { buffer, source, position, length, done };
  }

  async #takePrefetch(position: number): Promise<Chunk | null> {
    const prefetch = this.#prefetch;
    if (!prefetch) return null;
    this.#prefetch = null;
    const got = await prefetch.done;
    if (prefetch.position === position && got === prefetch.length) return prefetch;
    prefetch.source.release(prefetch.buffer);
    return null;
  }

  #dropPrefetch(): void {
    const prefetch = this.#prefetch;
    this.#prefetch = null;
    // The read may still be writing into the buffer: recycle it once it is done.
    if (prefetch) void prefetch.done.then(() => prefetch.source.release(prefetch.buffer));
  }

  #closed(): boolean {
    return this.#res.destroyed || this.#socket?.destroyed === true;
  }

  #abortSignal(): AbortSignal {
    if (!this.#abort) {
      const abort = new AbortController();
      this.#abort = abort;
      this.#onClose = () => abort.abort();
      this.#res.once('close', this.#onClose);
      if (this.#closed()) abort.abort();
    }
    return this.#abort.signal;
  }

  #armTimeout(): void {
    const now = performance.now();
    if (now - this.#timeoutArmedAt < TIMEOUT_REFRESH_MS) return;
    this.#timeoutArmedAt = now;
    this.#res.socket?.setTimeout(STALL_TIMEOUT_MS);
  }

  async #revalidate(): Promise<void> {
    const check = this.#options.stillServable;
    if (!check || performance.now() - this.#checkedAt < REVALIDATE_MS) return;
    this.#checkedAt = performance.now();
    const servable = await check().catch(() => true);
    if (!servable) {
      this.#withdrawn = true;
      this.#res.destroy();
      throw new AppError('CONNECTION_GONE');
    }
  }
}

/** Reads until `length` bytes are in `target` or the file ends; resolves to the count read. */
export async function readFully(reader: BlobReader, target: Buffer, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const got = await reader.read(done === 0 ? target : target.subarray(done), length - done, position + done);
    if (got <= 0) break;
    done += got;
  }
  return done;
}

/** Ends the response; resolves true once everything is flushed, false if the connection closed first. */
function endResponse(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve(false);
    const onClose = (): void => resolve(false);
    res.once('close', onClose);
    res.end(() => {
      res.off('close', onClose);
      resolve(true);
    });
  });
}
