/**
 * Random-access reads of one object over ranged GETs. A download reads its
 * range front to back in large chunks, so each read continues an open GET
 * (a cursor) where the previous one stopped; only a jump elsewhere, or a
 * cursor whose window is used up, costs a new request. Windows start at the
 * size asked for (a 1-byte range fetches 1 byte) and double while reads stay
 * sequential, so a whole 60 GB package takes about a thousand GETs.
 *
 * Memory stays small: an open GET that nobody reads is paused by TCP flow
 * control (the response stream buffers at most its high-water mark), and
 * cursors idle for IDLE_MS are closed.
 */
import type { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { BlobReader } from '../blob-store.js';
import type { Bucket } from './objects.js';

const MAX_WINDOW_BYTES = 64 << 20;
const IDLE_MS = 15_000;
/** Open cursors kept per object for reuse; beyond it the least recently used is closed. */
const MAX_IDLE_CURSORS = 16;

interface Cursor {
  /** Next byte this cursor's GET delivers, and the end of its window (exclusive). */
  next: number;
  end: number;
  window: number;
  body: Readable | null;
  timer: NodeJS.Timeout | null;
}

/** A reader of `key`, whose HEAD said `head` (size and version). */
export function objectReader(bucket: Bucket, key: string, head: { size: number; version: string }): BlobReader {
  const ref = { client: bucket.client, bucket: bucket.settings.bucket, key, ...head, fail: bucket.fail };
  const idle: Cursor[] = [];
  let closed = false;

  const park = (cursor: Cursor): void => {
    if (closed) return closeCursor(cursor);
    cursor.timer = setTimeout(() => {
      const at = idle.indexOf(cursor);
      if (at >= 0) idle.splice(at, 1);
      closeCursor(cursor);
    }, IDLE_MS);
    cursor.timer.unref();
    idle.push(cursor);
    if (idle.length > MAX_IDLE_CURSORS) closeCursor(idle.shift()!);
  };

  const takeAt = (position: number): Cursor | null => {
    const at = idle.findIndex((c) => c.next === position);
    if (at < 0) return null;
    const [cursor] = idle.splice(at, 1);
    if (cursor!.timer) clearTimeout(cursor!.timer);
    cursor!.timer = null;
    return cursor!;
  };

  const openWindow = async (cursor: Cursor, position: number, length: number): Promise<void> => {
    const end = Math.min(ref.size, position + Math.max(length, cursor.window));
    let response;
    try {
      response = await ref.client.send(
        new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key, Range: `bytes=${position}-${end - 1}` }),
      );
    } catch (err) {
      throw ref.fail(`reading ${ref.key}`, err);
    }
    const body = response.Body as Readable | undefined;
    const delivered = deliveredEnd(response, position);
    if (!body || delivered === null || delivered < end || delivered > ref.size) {
      body?.destroy();
      throw ref.fail(
        `reading ${ref.key}`,
        new Error(`asked for bytes ${position}-${end - 1}, got ${String(response.ContentLength)} bytes`),
      );
    }
    // An error while parked must not be unhandled; the next read sees the stream destroyed.
    body.on('error', () => undefined);
    cursor.body = body;
    cursor.next = position;
    cursor.end = delivered;
  };

  return {
    size: ref.size,
    version: ref.version,
    async read(target, length, position) {
      if (closed) throw new Error(`reader of ${ref.key} is closed`);
      const want = Math.min(length, ref.size - position);
      if (want <= 0) return 0;
      const cursor = takeAt(position) ?? { next: position, end: position, window: 0, body: null, timer: null };
      try {
        if (cursor.next >= cursor.end || !cursor.body) {
          cursor.window = Math.min(MAX_WINDOW_BYTES, Math.max(want, cursor.window * 2));
          await openWindow(cursor, position, want);
        }
        const count = Math.min(want, cursor.end - position);
        try {
          await readInto(cursor.body!, target, count);
        } catch {
          // A parked GET the server or a timeout closed: one fresh request from here, then give up.
          closeCursor(cursor);
          await openWindow(cursor, position, count);
          await readInto(cursor.body!, target, count).catch((err: unknown) => {
            throw ref.fail(`reading ${ref.key}`, err);
          });
        }
        cursor.next = position + count;
        if (cursor.next >= cursor.end) finishCursor(cursor);
        park(cursor);
        return count;
      } catch (err) {
        closeCursor(cursor);
        throw err;
      }
    },
    async close() {
      closed = true;
      for (const cursor of idle.splice(0)) closeCursor(cursor);
      await Promise.resolve();
    },
  };
}

/**
 * Where the bytes of a ranged GET for `position` end (exclusive), or null when
 * they do not start there. A server may answer with more than was asked
 * (s3rver sends the whole object for bytes=0-0; RFC 9110 lets a server ignore
 * Range): the surplus is simply the rest of the window.
 */
function deliveredEnd(response: { ContentLength?: number; ContentRange?: string }, position: number): number | null {
  const length = response.ContentLength;
  if (length === undefined) return null;
  const start = response.ContentRange === undefined ? 0 : Number(/^bytes (\d+)-/.exec(response.ContentRange)?.[1]);
  return start === position ? position + length : null;
}

/**
 * Ends a cursor whose window was read whole. Its response is let run to its
 * end, which hands the connection back to the agent for the next GET;
 * destroying it unread to the end would close the connection.
 */
function finishCursor(cursor: Cursor): void {
  if (cursor.timer) clearTimeout(cursor.timer);
  cursor.timer = null;
  cursor.body?.resume();
  cursor.body = null;
}

function closeCursor(cursor: Cursor): void {
  if (cursor.timer) clearTimeout(cursor.timer);
  cursor.timer = null;
  cursor.body?.destroy();
  cursor.body = null;
}

/** Fills target[0, count) from the stream, leaving what follows in it for the next read. */
async function readInto(body: Readable, target: Buffer, count: number): Promise<void> {
  let done = 0;
  while (done < count) {
    if (body.destroyed) throw new Error('the object stream was closed');
    const chunk = body.read() as Buffer | null;
    if (chunk === null) {
      if (body.readableEnded) throw new Error(`the object ended ${count - done} bytes early`);
      await new Promise<void>((resolve, reject) => {
        const settle = (err?: unknown): void => {
          body.off('readable', ok);
          body.off('end', ok);
          body.off('close', ok);
          body.off('error', settle);
          if (err) reject(err instanceof Error ? err : new Error('the object stream failed'));
          else resolve();
        };
        const ok = (): void => settle();
        body.once('readable', ok);
        body.once('end', ok);
        body.once('close', ok);
        body.once('error', settle);
      });
      continue;
    }
    const take = Math.min(chunk.length, count - done);
    chunk.copy(target, done, 0, take);
    done += take;
    if (take < chunk.length) body.unshift(chunk.subarray(take));
  }
}
