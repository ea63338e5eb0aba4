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
 *   them the answer is 503 with Retry-After, before any header of a 200;
 * - in redirect mode (S3) a GET is answered 302 to a presigned URL of the
 *   object once everything before the body is decided (download-redirect.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatChecksumLine, type Sha256 } from '../../storage/digest.js';

import type { BlobRow } from '../db/schema.js';
import { AppError, isError } from '../errors.js';
import type { BufferPool } from './buffer-pool.js';
import { streamDownload } from './download-body.js';
import { blobUnknown, sendError, unavailable } from './download-errors.js';
import { evaluateConditionals, setValidators } from './download-preconditions.js';
import { redirectable, redirectDownload } from './download-redirect.js';
import type { DownloadRefusal, DownloadRegistry } from './download-registry.js';
import { parseTarget, type Target } from './download-target.js';
import { evaluateRange } from './range.js';
import { HOP_HEADER } from '../services/routing.js';
import type { LeasedReader } from './open-blobs.js';
import type { RateLimiter } from './rate-limiter.js';

// The steps of a download, each in its own module: the link (download-target), validators and
// conditionals (download-preconditions), the body (download-body), error answers (download-errors).
export { DOWNLOAD_PREFIX } from './download-target.js';

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

/** What a download observer learns when a GET was redirected to the object store (redirect mode). */
export interface DownloadRedirect {
  sha256: Sha256;
  /** The body the store is asked for: its first byte and length (the whole package unless one range). */
  firstByte: number;
  bytes: number;
  size: number;
  /** It asks for the file's last byte and is not goldmirror's own link check (see DownloadStart). */
  coversEnd: boolean;
  request: IncomingMessage;
  /** Sent to a replica (its base URL), for the client's site; absent for the object store. */
  servedBy?: { replica: string; site: string } | undefined;
}

/** Called when the body ends: all bytes sent (`complete`), or cut short. */
export type DownloadFinish = (outcome: { bytes: number; complete: boolean }) => void;

export interface DownloadDeps {
  findBlob(sha256: Sha256): Promise<Pick<BlobRow, 'size' | 'created_at' | 'state' | 'kind'> | undefined>;
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
  /**
   * Redirect mode: a URL that serves the package straight from the object
   * store (with this Content-Disposition) until it expires; GETs are then
   * answered 302 to it instead of streaming (download-redirect.ts).
   */
  presign?: ((sha256: Sha256, contentDisposition: string) => Promise<string>) | undefined;
  /** Told when a GET was redirected to the object store or to a replica (`servedBy`). */
  observeRedirect?: ((redirect: DownloadRedirect) => void) | undefined;
  /**
   * Sites: a replica of the client's site that serves this GET instead (a 302 to the same path there),
   * or null to serve it here (download-sites.ts).
   */
  routeToReplica?:
    | ((
        req: IncomingMessage,
        res: ServerResponse,
        sha256: Sha256,
      ) => Promise<{ location: string; site: string; replica: string } | null>)
    | undefined;
  onError?: ((err: unknown) => void) | undefined;
}

/** Handles one request whose path starts with /d/; never throws, always answers. */
export function createDownloadHandler(deps: DownloadDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return function handleDownload(req, res) {
    serve(deps, req, res).catch((err: unknown) => {
      deps.onError?.(err);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // A database or bucket that cannot be reached, or a busy database: 503 with Retry-After, which a Mac waits out.
      const retry = isError(err, 'DATABASE_UNAVAILABLE') || isError(err, 'DATABASE_BUSY');
      const storage = isError(err, 'STORAGE_UNAVAILABLE');
      if (retry || storage) res.setHeader('Retry-After', '5');
      // The bucket's name and address stay in the log (onError): anyone with a link may see this answer.
      if (storage)
        sendError(res, new AppError('STORAGE_UNAVAILABLE', 'the object storage cannot be reached; try again shortly'));
      else sendError(res, retry ? err : new AppError('INTERNAL', 'internal server error'));
    });
  };
}

/** request → target → row → validators and conditionals → open the file → body (or, in redirect mode, a 302 to the store). */
async function serve(deps: DownloadDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return sendError(res, new AppError('METHOD_NOT_ALLOWED', `method ${method} is not allowed on download links`));
  }
  const target = parseTarget(req.url ?? '');
  if (target instanceof AppError) return sendError(res, target);

  const blob = await deps.findBlob(target.sha256);
  if (!blob) return sendError(res, blobUnknown(target.sha256));
  if (blob.kind !== target.kind) return sendError(res, wrongKind(target));
  if (blob.state !== 'ok') return sendError(res, unavailable(target.sha256, blob.state));
  if (!target.checksum && deps.routeToReplica) {
    const routed = await deps.routeToReplica(req, res, target.sha256);
    if (routed) return redirectToReplica(deps, req, res, target, blob.size, routed);
  }

  const etag = `"${target.sha256}"`;
  const lastModifiedMs = Math.floor(blob.created_at / 1000) * 1000;
  setValidators(res, etag, lastModifiedMs);
  if (target.checksum) return sendChecksumLine(res, target, method);

  const size = blob.size;
  const ranges = evaluateConditionals(req, res, etag, lastModifiedMs, size);
  if (ranges === false) return;

  // Open before sending headers, so a blob file that vanished (quarantined,
  // deleted behind our back) is a clean 503 rather than a truncated 200.
  // HEAD opens it too: it must answer what GET would (README), and a HEAD
  // that said 200 for a file GET cannot serve misleads link checkers.
  let lease: LeasedReader;
  try {
    lease = await deps.openBlob(target.sha256);
  } catch (err) {
    if (!isError(err, 'BLOB_UNKNOWN')) throw err;
    return answerMissingFile(deps, res, target.sha256);
  }
  if (lease.reader.size !== size) {
    lease.release(true);
    deps.onUnavailable?.(target.sha256, 'wrong size');
    return sendError(res, unavailable(target.sha256, 'corrupt'));
  }
  const { presign } = deps;
  // Another goldmirror (a primary's probe) compares the bytes themselves: it is never sent to the bucket.
  if (presign && redirectable(req, size) && req.headers[HOP_HEADER] === undefined) {
    lease.release();
    return redirectDownload({ ...deps, presign }, req, res, target, ranges, size);
  }
  return streamDownload(deps, req, res, target, lease, ranges, size);
}

/**
 * The 302 to a replica of the client's site: private and never stored, since another client (or this
 * one, later) may be sent elsewhere. The replica judges Range and conditionals itself: same path, same bytes.
 */
function redirectToReplica(
  deps: DownloadDeps,
  req: IncomingMessage,
  res: ServerResponse,
  target: Target,
  size: number,
  routed: { location: string; site: string; replica: string },
): void {
  res.writeHead(302, { Location: routed.location, 'Cache-Control': 'private, no-store', 'Content-Length': 0 });
  res.end();
  const range = singleRange(req.headers.range, size);
  deps.observeRedirect?.({
    sha256: target.sha256,
    firstByte: range?.start ?? 0,
    bytes: range ? range.end - range.start + 1 : size,
    size,
    coversEnd: !range || range.end === size - 1,
    request: req,
    servedBy: { replica: routed.replica, site: routed.site },
  });
}

/** The one range a Range header asks for (what the replica will send), or null for the whole package. */
function singleRange(header: string | undefined, size: number): { start: number; end: number } | null {
  if (header === undefined) return null;
  const decision = evaluateRange(header, size);
  return decision.kind === 'partial' && decision.ranges.length === 1 ? decision.ranges[0]! : null;
}

function sendChecksumLine(res: ServerResponse, target: Target, method: string): void {
  const body = formatChecksumLine(target.sha256, target.name);
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(method === 'HEAD' ? undefined : body);
}

/** A package behind a .dmg name or an update file behind a .pvmp name: as if unknown, with the reason. */
function wrongKind(target: Target): AppError {
  const [is, ends] =
    target.kind === 'update' ? ['a golden-image package', '.pvmp'] : ['a Parallels Desktop update file', '.dmg'];
  return new AppError('NOT_FOUND', `${target.sha256} is ${is}: its download link ends in ${ends}`);
}

/** The row said 'ok' but the file is gone: the cached row may be stale (deleted or collected a moment ago), so ask the database again. */
async function answerMissingFile(deps: DownloadDeps, res: ServerResponse, sha256: Sha256): Promise<void> {
  deps.forget?.(sha256);
  if (!(await deps.findBlob(sha256))) return sendError(res, blobUnknown(sha256));
  deps.onUnavailable?.(sha256, 'missing');
  return sendError(res, unavailable(sha256, 'missing'));
}
