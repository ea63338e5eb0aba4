/**
 * The body of a download: plan it (whole, one range, or multipart/byteranges),
 * admit it against the download caps, send the headers, then stream it and
 * tell the observer how it ended.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlobReader } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { LINK_CHECK_USER_AGENT } from '../links.js';
import { BufferPool, BufferShare } from './buffer-pool.js';
import { clientAddress } from './client-address.js';
import { sendRefusal } from './download-errors.js';
import { isRefusal, type ActiveDownload } from './download-registry.js';
import { contentDisposition, type Target } from './download-target.js';
import type { DownloadDeps } from './downloads.js';
import type { LeasedReader } from './open-blobs.js';
import type { ByteRange } from './range.js';
import { readFully, sendBody, STALL_TIMEOUT_MS, type BodySegment, type SendOutcome } from './send-body.js';

/** Read size: large reads are what make Node close to sendfile here (see README, Performance). */
const CHUNK_BYTES = 1 << 20;
/**
 * Read buffers in existence at most, for all downloads of the process: the
 * pool's share of RSS stays 32 MiB however many clients connect (downloads
 * beyond it take turns; each holds a buffer only while it reads or sends).
 * 32 lets 16 parallel downloads each read one chunk ahead (16 buffers: about
 * 20% less throughput in the bench).
 */
const POOL_BUFFERS = 32;
/**
 * Of those, what downloads to clients not yet known to read may hold at once:
 * a thousand clients connecting at once then touch 8 MiB of buffers, not 32.
 */
const UNKNOWN_CLIENT_BUFFERS = 8;
/** Single ranges up to this size are read with one blocking read (page cache: microseconds; cheaper than the thread pool) and sent whole. */
const INLINE_MAX_BYTES = 64 * 1024;
/** Bodies larger than this are "long downloads": they count against the download caps. */
export const LONG_DOWNLOAD_BYTES = 1 << 20;

interface BodyPart {
  /** Bytes written before the range (multipart headers), if any. */
  prefix: Buffer | null;
  range: ByteRange | null;
}

interface BodyPlan {
  status: 200 | 206;
  length: number;
  contentType: string;
  contentRange: string | null;
  parts: BodyPart[];
}

/**
 * Sends the package body for `ranges` (null: all of it) from the open `lease`,
 * which it releases; HEAD gets the same headers and no body.
 */
export async function streamDownload(
  deps: DownloadDeps,
  req: IncomingMessage,
  res: ServerResponse,
  target: Target,
  lease: LeasedReader,
  ranges: ByteRange[] | null,
  size: number,
): Promise<void> {
  let active: ActiveDownload | null = null;
  try {
    const plan = planBody(ranges, size);
    if (req.method === 'GET' && plan.length > INLINE_MAX_BYTES && deps.registry) {
      const admitted = deps.registry.begin({
        sha256: target.sha256,
        client: (deps.clientOf ?? clientAddress)(req),
        counted: plan.length > LONG_DOWNLOAD_BYTES,
        cut: () => res.destroy(),
      });
      if (isRefusal(admitted)) {
        deps.onRefused?.(admitted);
        return sendRefusal(res, admitted);
      }
      active = admitted;
    }
    // A small body from a reader with no blocking read (an object) is read before the headers and sent in one write.
    const inline = req.method === 'GET' ? inlineRange(plan, deps) : null;
    const early = inline && !lease.reader.readSync ? await readInline(lease.reader, inline, plan.length) : null;
    res.setHeader('Content-Disposition', contentDisposition(target.name));
    res.setHeader('Content-Length', plan.length);
    if (plan.contentRange) res.setHeader('Content-Range', plan.contentRange);
    res.setHeader('Content-Type', plan.contentType);
    res.writeHead(plan.status);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const coversEnd =
      req.headers['user-agent'] !== LINK_CHECK_USER_AGENT &&
      (size === 0 || plan.parts.some((p) => p.range !== null && p.range.end === size - 1));
    const finish = deps.observe?.({
      sha256: target.sha256,
      status: plan.status,
      bytes: plan.length,
      coversEnd,
      size,
      request: req,
      response: res,
    });
    let outcome = { sent: 0, complete: false, withdrawn: false };
    try {
      outcome = await sendParts(lease.reader, res, plan, deps, target.sha256, early);
    } finally {
      // Also on a read error, so gauges and heartbeats never leak.
      if (!outcome.complete) res.destroy();
      active?.end();
      finish?.({ bytes: outcome.sent, complete: outcome.complete });
    }
    if (outcome.withdrawn && (active?.markCut() ?? true)) deps.onWithdrawn?.(target.sha256);
    // A client that went away frees the file at once; finished ones leave it open for reuse.
    lease.release(!outcome.complete);
  } finally {
    active?.end();
    lease.release();
  }
}

const defaultPool = new BufferPool(CHUNK_BYTES, POOL_BUFFERS);
const buffersByPool = new WeakMap<BufferPool, { keepingUp: BufferPool; unknown: BufferShare }>();

function buffersOf(pool: BufferPool): { keepingUp: BufferPool; unknown: BufferShare } {
  let buffers = buffersByPool.get(pool);
  if (!buffers)
    buffersByPool.set(
      pool,
      (buffers = {
        keepingUp: pool,
        unknown: new BufferShare(pool, Math.min(UNKNOWN_CLIENT_BUFFERS, pool.maxBuffers)),
      }),
    );
  return buffers;
}

function planBody(ranges: ByteRange[] | null, size: number): BodyPlan {
  if (ranges === null) {
    return {
      status: 200,
      length: size,
      contentType: 'application/octet-stream',
      contentRange: null,
      parts: [whole(size)],
    };
  }
  const [first] = ranges;
  if (ranges.length === 1 && first) {
    return {
      status: 206,
      length: first.end - first.start + 1,
      contentType: 'application/octet-stream',
      contentRange: `bytes ${first.start}-${first.end}/${size}`,
      parts: [{ prefix: null, range: first }],
    };
  }
  // multipart/byteranges (RFC 9110 §14.6): each part has its own Content-Type and Content-Range.
  const boundary = randomBytes(12).toString('hex');
  const parts: BodyPart[] = ranges.map((range, i) => ({
    prefix: Buffer.from(
      `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/octet-stream\r\n` +
        `Content-Range: bytes ${range.start}-${range.end}/${size}\r\n\r\n`,
    ),
    range,
  }));
  parts.push({ prefix: Buffer.from(`\r\n--${boundary}--\r\n`), range: null });
  const length = parts.reduce(
    (n, p) => n + (p.prefix?.length ?? 0) + (p.range ? p.range.end - p.range.start + 1 : 0),
    0,
  );
  return { status: 206, length, contentType: `multipart/byteranges; boundary=${boundary}`, contentRange: null, parts };
}

function whole(size: number): BodyPart {
  return { prefix: null, range: size > 0 ? { start: 0, end: size - 1 } : null };
}

/**
 * Sends the planned body. A small single range is read with one blocking read
 * into its own buffer and sent whole; everything else goes through sendBody,
 * which holds read buffers only while they are read and handed to the kernel.
 * Not async: the large-body path hands back sendBody's promise without another frame.
 */
function sendParts(
  reader: BlobReader,
  res: ServerResponse,
  plan: BodyPlan,
  deps: DownloadDeps,
  sha256: Sha256,
  early: Buffer | null,
): Promise<SendOutcome> {
  const inline = inlineRange(plan, deps);
  if (inline && (early || reader.readSync)) {
    armStallTimeout(res);
    let body = early;
    if (!body) {
      body = Buffer.allocUnsafe(plan.length);
      const got = reader.readSync!(body, plan.length, inline.start);
      if (got !== plan.length) throw new Error(`blob ended early at byte ${inline.start + got} of ${reader.size}`);
    }
    const got = body.length;
    return new Promise<SendOutcome>((resolve) => {
      const onClose = (): void => resolve({ sent: 0, complete: false, withdrawn: false });
      res.once('close', onClose);
      res.end(body, () => {
        res.off('close', onClose);
        resolve({ sent: got, complete: true, withdrawn: false });
      });
    });
  }
  // sendBody arms the stall timeout itself (and re-arms it: its writes bypass node's idle timer).
  const segments: BodySegment[] = [];
  for (const part of plan.parts) {
    if (part.prefix) segments.push({ bytes: part.prefix });
    if (part.range) segments.push({ range: part.range });
  }
  return sendBody(res, reader, segments, {
    buffers: buffersOf(deps.pool ?? defaultPool),
    limiter: deps.limiter,
    stillServable: async () => (await deps.findBlob(sha256))?.state === 'ok',
  });
}

/** The one range of a body small enough to be read whole and sent in one write, or null. */
function inlineRange(plan: BodyPlan, deps: DownloadDeps): ByteRange | null {
  const [only] = plan.parts;
  if (plan.parts.length !== 1 || !only?.range || only.prefix || deps.limiter || plan.length > INLINE_MAX_BYTES)
    return null;
  return only.range;
}

/** Reads a small range whole through the asynchronous path (readers with no readSync: objects). */
async function readInline(reader: BlobReader, range: ByteRange, length: number): Promise<Buffer> {
  const body = Buffer.allocUnsafe(length);
  const got = await readFully(reader, body, length, range.start);
  if (got !== length) throw new Error(`blob ended early at byte ${range.start + got} of ${reader.size}`);
  return body;
}

/**
 * Drop the connection when the client stops reading: with no 'timeout'
 * listener, node:http destroys the socket itself. Set per response because
 * node:http resets socket timeouts between keep-alive requests.
 */
function armStallTimeout(res: ServerResponse): void {
  res.socket?.setTimeout(STALL_TIMEOUT_MS);
}
