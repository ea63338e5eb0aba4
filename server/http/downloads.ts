/**
 * The public download links, `GET|HEAD /d/<sha256>/<name>`: the one path the
 * Macs use, so it runs on plain node:http (no framework on the hot path) and
 * behaves like a strict static file server (RFC 9110 ranges and conditionals,
 * nginx and Go's http.ServeContent where the RFC leaves a choice).
 *
 * Choices, documented in the README:
 * - several ranges → `multipart/byteranges` (up to MAX_RANGES; more → 200);
 * - a Range on HEAD is evaluated like on GET, so HEAD shows exactly the headers GET would;
 * - the name segment is cosmetic but must end in `.pvmp` (any case), or
 *   `.pvmp.sha256` for the `shasum -c` line; anything else is 404, so a link
 *   can never offer the package under another kind of name (`Invoice.exe`);
 * - bodies over LONG_DOWNLOAD_BYTES count against the download caps; beyond
 *   them the answer is 503 with Retry-After, before any header of a 200.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { BlobReader } from '../../storage/blob-store.js';
import { BufferPool, BufferShare } from './buffer-pool.js';
import { clientAddress } from './client-address.js';
import { isRefusal, type ActiveDownload, type DownloadRefusal, type DownloadRegistry } from './download-registry.js';
import { LINK_CHECK_USER_AGENT } from '../links.js';
import type { LeasedReader } from './open-blobs.js';
import { formatChecksumLine, type Sha256 } from '../../storage/digest.js';
import type { BlobRow } from '../db/schema.js';
import { AppError, errorBody, isError } from '../errors.js';
import { isSafeRequestedName } from '../file-names.js';
import type { RateLimiter } from './rate-limiter.js';
import { sendBody, STALL_TIMEOUT_MS, type BodySegment } from './send-body.js';
import {
  evaluatePreconditions,
  evaluateRange,
  ifRangeAllowsPartial,
  type ByteRange,
} from './range.js';

export const DOWNLOAD_PREFIX = '/d/';

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
/** Seconds a refused client is asked to wait before trying again. */
const RETRY_AFTER_SECONDS = 30;
const CACHE_CONTROL = 'public, max-age=31536000, immutable';

/** What a download observer learns when a body starts streaming. */
export interface DownloadStart {
  sha256: Sha256;
  status: number;
  /** Body bytes the response will carry. */
  bytes: number;
  /**
   * Counts as a finished download when complete: it carries the file's last
   * byte (a whole download, or the final piece of a resumed one) and is not
   * goldmirror's own link check.
   */
  coversEnd: boolean;
  /** The package's size, and the exchange itself (client address, user agent, progress) for the download log. */
  size?: number;
  request?: IncomingMessage;
  response?: ServerResponse;
}

/** Called when the body ends: all bytes sent (`complete`), or cut short. */
export type DownloadFinish = (outcome: { bytes: number; complete: boolean }) => void;

export interface DownloadDeps {
  findBlob(sha256: Sha256): Promise<Pick<BlobRow, 'size' | 'created_at' | 'state'> | undefined>;
  /** Opens (or reuses) the blob's file; throws BLOB_UNKNOWN when it is gone. */
  openBlob(sha256: Sha256): Promise<LeasedReader>;
  /** Told when a registered, 'ok' package cannot be served (file gone or the wrong size). */
  onUnavailable?: ((sha256: Sha256, reason: 'missing' | 'wrong size') => void) | undefined;
  /** Drops any cached view of a blob (its file turned out to be gone). */
  forget?: ((sha256: Sha256) => void) | undefined;
  /** Read buffers shared by all responses (CHUNK_BYTES each). */
  pool?: BufferPool | undefined;
  limiter: RateLimiter | null;
  /** Active downloads: the caps, and cutting off the downloads of a blob that failed a check. */
  registry?: DownloadRegistry | undefined;
  /** The client a download counts against (default: the socket peer address). */
  clientOf?: ((req: IncomingMessage) => string) | undefined;
  /** Told when a download is refused by a cap. */
  onRefused?: ((refusal: DownloadRefusal) => void) | undefined;
  /** Told when a streaming download is cut off because its blob is no longer servable. */
  onWithdrawn?: ((sha256: Sha256) => void) | undefined;
  /** Metrics, heartbeats and logs: told when each body starts and how it ended. */
  observe?: ((start: DownloadStart) => DownloadFinish) | undefined;
  onError?: ((err: unknown) => void) | undefined;
}

interface Target {
  sha256: Sha256;
  name: string;
  checksum: boolean;
}

/** Handles one request whose path starts with /d/; never throws, always answers. */
export function createDownloadHandler(deps: DownloadDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return function handleDownload(req, res) {
    serve(deps, req, res).catch((err: unknown) => {
      deps.onError?.(err);
      if (!res.headersSent) sendError(res, new AppError('INTERNAL', 'internal server error'));
      else res.destroy();
    });
  };
}

async function serve(deps: DownloadDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return sendError(res, new AppError('METHOD_NOT_ALLOWED', `method ${method} is not allowed on download links`));
  }
  const target = parseTarget(req.url ?? '');
  if (target instanceof AppError) return sendError(res, target);

  const blob = await deps.findBlob(target.sha256);
  if (!blob) return sendError(res, new AppError('BLOB_UNKNOWN', `no package with sha256 ${target.sha256} is stored here`));
  if (blob.state !== 'ok') return sendError(res, unavailable(target.sha256, blob.state));

  const etag = `"${target.sha256}"`;
  const lastModifiedMs = Math.floor(blob.created_at / 1000) * 1000;
  res.setHeader('ETag', etag);
  res.setHeader('Last-Modified', new Date(lastModifiedMs).toUTCString());
  res.setHeader('Cache-Control', CACHE_CONTROL);
  res.setHeader('X-Content-Type-Options', 'nosniff');

  if (target.checksum) {
    const body = formatChecksumLine(target.sha256, target.name);
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(method === 'HEAD' ? undefined : body);
    return;
  }

  res.setHeader('Accept-Ranges', 'bytes');
  const precondition = evaluatePreconditions(
    {
      ifMatch: req.headers['if-match'],
      ifUnmodifiedSince: req.headers['if-unmodified-since'],
      ifNoneMatch: req.headers['if-none-match'],
      ifModifiedSince: req.headers['if-modified-since'],
    },
    etag,
    lastModifiedMs,
  );
  if (precondition === 'not-modified') {
    res.writeHead(304);
    res.end();
    return;
  }
  if (precondition === 'precondition-failed') {
    return sendError(res, new AppError('PRECONDITION_FAILED', 'the stored package does not match the request preconditions'));
  }

  const size = blob.size;
  const decision = ifRangeAllowsPartial(headerValue(req.headers['if-range']), etag, lastModifiedMs)
    ? evaluateRange(headerValue(req.headers.range), size)
    : { kind: 'full' as const };
  if (decision.kind === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${size}`);
    return sendError(res, new AppError('RANGE_NOT_SATISFIABLE', `no requested range lies within the ${size} bytes of this package`));
  }

  // Open before sending headers, so a blob file that vanished (quarantined,
  // deleted behind our back) is a clean 503 rather than a truncated 200.
  // HEAD opens it too: it must answer what GET would (README), and a HEAD
  // that said 200 for a file GET cannot serve misleads link checkers.
  let lease: LeasedReader;
  try {
    lease = await deps.openBlob(target.sha256);
  } catch (err) {
    if (!isError(err, 'BLOB_UNKNOWN')) throw err;
    // The cached row may be stale (deleted or collected a moment ago): ask the database again.
    deps.forget?.(target.sha256);
    if (!(await deps.findBlob(target.sha256))) {
      return sendError(res, new AppError('BLOB_UNKNOWN', `no package with sha256 ${target.sha256} is stored here`));
    }
    deps.onUnavailable?.(target.sha256, 'missing');
    return sendError(res, unavailable(target.sha256, 'missing'));
  }
  const reader = lease.reader;
  if (reader.size !== size) {
    lease.release(true);
    deps.onUnavailable?.(target.sha256, 'wrong size');
    return sendError(res, unavailable(target.sha256, 'corrupt'));
  }

  let active: ActiveDownload | null = null;
  try {
    const plan = planBody(decision.kind === 'partial' ? decision.ranges : null, size);
    if (method === 'GET' && plan.length > INLINE_MAX_BYTES && deps.registry) {
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
    res.setHeader('Content-Disposition', contentDisposition(target.name));
    res.setHeader('Content-Length', plan.length);
    if (plan.contentRange) res.setHeader('Content-Range', plan.contentRange);
    res.setHeader('Content-Type', plan.contentType);
    res.writeHead(plan.status);
    if (method === 'HEAD') {
      res.end();
      return;
    }
    const coversEnd =
      req.headers['user-agent'] !== LINK_CHECK_USER_AGENT && (size === 0 || plan.parts.some((p) => p.range !== null && p.range.end === size - 1));
    const finish = deps.observe?.({ sha256: target.sha256, status: plan.status, bytes: plan.length, coversEnd, size, request: req, response: res });
    let outcome = { sent: 0, complete: false, withdrawn: false };
    try {
      outcome = await sendParts(reader, res, plan, deps, target.sha256);
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
  if (!buffers) buffersByPool.set(pool, (buffers = { keepingUp: pool, unknown: new BufferShare(pool, Math.min(UNKNOWN_CLIENT_BUFFERS, pool.maxBuffers)) }));
  return buffers;
}

/** `<something>.pvmp` or `<something>.pvmp.sha256`, in any letter case (names are pasted by hand). */
const PACKAGE_NAME = /^(.+\.pvmp)(\.sha256)?$/i;

function parseTarget(url: string): Target | AppError {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const rest = path.slice(DOWNLOAD_PREFIX.length);
  const slash = rest.indexOf('/');
  if (!path.startsWith(DOWNLOAD_PREFIX) || slash < 0 || rest.indexOf('/', slash + 1) >= 0) {
    return new AppError('NOT_FOUND', 'download links look like /d/<sha256>/<file name>');
  }
  const digest = rest.slice(0, slash).toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(digest)) {
    return new AppError('DIGEST_INVALID', 'the first segment of a download link must be a 64-digit sha256');
  }
  let name: string;
  try {
    name = decodeURIComponent(rest.slice(slash + 1));
  } catch {
    return new AppError('NAME_INVALID', 'the file name in the link is not valid percent-encoding');
  }
  if (!isSafeRequestedName(name)) return new AppError('NAME_INVALID', 'the file name in the link must be one plain path segment');
  const named = PACKAGE_NAME.exec(name);
  if (!named?.[1]) return new AppError('NOT_FOUND', 'download links end in .pvmp (the package) or .pvmp.sha256 (its checksum line)');
  return { sha256: digest as Sha256, name: named[1], checksum: named[2] !== undefined };
}

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

function planBody(ranges: ByteRange[] | null, size: number): BodyPlan {
  if (ranges === null) {
    return { status: 200, length: size, contentType: 'application/octet-stream', contentRange: null, parts: [whole(size)] };
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
  const length = parts.reduce((n, p) => n + (p.prefix?.length ?? 0) + (p.range ? p.range.end - p.range.start + 1 : 0), 0);
  return { status: 206, length, contentType: `multipart/byteranges; boundary=${boundary}`, contentRange: null, parts };
}

function whole(size: number): BodyPart {
  return { prefix: null, range: size > 0 ? { start: 0, end: size - 1 } : null };
}

/**
 * Sends the planned body. A small single range is read with one blocking read
 * into its own buffer and sent whole; everything else goes through sendBody,
 * which holds read buffers only while they are read and handed to the kernel.
 */
async function sendParts(
  reader: BlobReader,
  res: ServerResponse,
  plan: BodyPlan,
  deps: DownloadDeps,
  sha256: Sha256,
): Promise<{ sent: number; complete: boolean; withdrawn: boolean }> {
  const [only] = plan.parts;
  if (plan.parts.length === 1 && only?.range && !only.prefix && !deps.limiter && plan.length <= INLINE_MAX_BYTES) {
    armStallTimeout(res);
    const body = Buffer.allocUnsafe(plan.length);
    const got = reader.readSync(body, plan.length, only.range.start);
    if (got !== plan.length) throw new Error(`blob ended early at byte ${only.range.start + got} of ${reader.size}`);
    const sent = await new Promise<boolean>((resolve) => {
      const onClose = (): void => resolve(false);
      res.once('close', onClose);
      res.end(body, () => {
        res.off('close', onClose);
        resolve(true);
      });
    });
    return { sent: sent ? got : 0, complete: sent, withdrawn: false };
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

/**
 * Drop the connection when the client stops reading: with no 'timeout'
 * listener, node:http destroys the socket itself. Set per response because
 * node:http resets socket timeouts between keep-alive requests.
 */
function armStallTimeout(res: ServerResponse): void {
  res.socket?.setTimeout(STALL_TIMEOUT_MS);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** `attachment` with an ASCII fallback and the exact name in RFC 8187 form. */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return ascii === name ? `attachment; filename="${name}"` : `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

function unavailable(sha256: Sha256, state: string): AppError {
  return new AppError(
    'BLOB_UNAVAILABLE',
    state === 'missing'
      ? `the package ${sha256} is registered but its file is missing; the administrator has been told`
      : `the package ${sha256} failed its integrity check and is withheld until it is re-imported`,
    { state },
  );
}

function sendError(res: ServerResponse, err: AppError): void {
  const body = JSON.stringify(errorBody(err));
  res.removeHeader('Content-Disposition');
  res.removeHeader('Accept-Ranges');
  res.writeHead(err.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** 503 with Retry-After: a refused download never starts, so the client never mistakes it for a short file. */
function sendRefusal(res: ServerResponse, refusal: DownloadRefusal): void {
  res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
  const message =
    refusal.scope === 'total'
      ? `this mirror is serving its maximum of ${refusal.limit} downloads; try again in ${RETRY_AFTER_SECONDS} s`
      : `this client already has ${refusal.limit} downloads running; try again in ${RETRY_AFTER_SECONDS} s`;
  sendError(res, new AppError('TOO_MANY_DOWNLOADS', message, { scope: refusal.scope, limit: refusal.limit }));
}
