/**
 * Writing a response body without letting the socket queue hold our buffers.
 *
 * Node's stream write keeps a reference to every buffer the kernel did not
 * take at once, until the client reads it: a client that stops reading pins
 * the whole read buffer (1 MiB) for as long as it stays connected. Node has no
 * "write what fits now" call, so on a plain TCP socket a sink writes to the
 * socket's file descriptor itself (non-blocking: the kernel takes what fits
 * and says how much), and the caller decides what to keep of the rest. To
 * learn when the socket takes bytes again it queues a small copy of the next
 * bytes the ordinary way, since libuv only watches for writability while it
 * has a write pending; that small copy is all a stalled client pins.
 *
 * Sockets without a usable descriptor (TLS encrypts in user space) get the
 * same interface over ordinary writes of small copies.
 */
import { writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { AppError } from '../errors.js';

/** Bytes per write on sockets without a descriptor (one TLS record). */
const COPY_PIECE_BYTES = 16 * 1024;

export interface SocketSink {
  /**
   * Hands up to `length` bytes of `source` from `offset` to the socket without
   * keeping a reference to `source`; returns how many it took (0: full for now).
   * Throws CONNECTION_GONE when the connection is gone (closed, reset, destroyed).
   */
  trySend(source: Buffer, offset: number, length: number): number;
  /**
   * Queues `piece` (a small buffer the caller gives away) and resolves true
   * once it is written, which means the socket takes bytes again, or false
   * when the connection closed first.
   */
  sendAndWait(piece: Buffer): Promise<boolean>;
}

interface StreamHandle {
  fd?: unknown;
}

function handleOf(socket: Socket): StreamHandle | null {
  // `_handle` is the libuv stream behind a net.Socket; undocumented but stable since Node 0.x.
  return (socket as unknown as { _handle?: StreamHandle | null })._handle ?? null;
}

export function createSocketSink(socket: Socket): SocketSink {
  const handle = socket instanceof TLSSocket ? null : handleOf(socket);
  const fd = handle && typeof handle.fd === 'number' && handle.fd >= 0 ? handle.fd : null;
  const sendAndWait = (piece: Buffer): Promise<boolean> =>
    new Promise((resolve) => {
      if (socket.destroyed) return resolve(false);
      const onClose = (): void => resolve(false);
      socket.once('close', onClose);
      socket.write(piece, (err) => {
        socket.off('close', onClose);
        resolve(!err);
      });
    });

  if (fd === null || !handle) {
    return {
      trySend(source, offset, length) {
        if (socket.destroyed) throw new AppError('CONNECTION_GONE');
        if (socket.writableLength > 0) return 0;
        const n = Math.min(length, COPY_PIECE_BYTES);
        const piece = Buffer.allocUnsafeSlow(n);
        source.copy(piece, 0, offset, offset + n);
        socket.write(piece);
        return n;
      },
      sendAndWait,
    };
  }

  return {
    trySend(source, offset, length) {
      // A destroyed socket's descriptor number may already belong to another
      // file: check on every call (nothing can close it between this check and
      // the write, both run in this one synchronous call on the main thread).
      if (socket.destroyed || handleOf(socket) !== handle) throw new AppError('CONNECTION_GONE');
      // Bytes queued the ordinary way (headers, a wake-up piece) go first.
      if (socket.writableLength > 0) return 0;
      try {
        // libuv keeps every TCP socket non-blocking: this returns at once with what fit (or EAGAIN).
        return writeSync(fd, source, offset, length);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return 0;
        socket.destroy();
        throw new AppError('CONNECTION_GONE', 'the connection closed', {}, { cause: err });
      }
    },
    sendAndWait,
  };
}
