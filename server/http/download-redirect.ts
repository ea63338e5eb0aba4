/**
 * Redirect mode (MIRROR_S3_DOWNLOADS=redirect): once everything up to the
 * body is decided (the row, the validators and conditionals, the object's
 * presence and size), a GET is answered `302 Found` to a freshly presigned
 * URL of the object instead of streaming it, so the bytes flow from the
 * object store to the Mac. HEAD and the checksum line are never redirected.
 *
 * The client repeats its Range and conditional headers to the store, which
 * judges them against its own validators (its ETag is not the digest). The
 * object under a digest's key never changes, so whatever the store answers
 * to Range, If-Range, If-None-Match or If-Modified-Since carries the right
 * bytes. If-Match and If-Unmodified-Since could fail there although they
 * passed here, and the store serves one range per request only, so such
 * requests (and ranges that are not one plain range) are streamed as in
 * proxy mode.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LINK_CHECK_USER_AGENT } from '../links.js';
import { AppError } from '../errors.js';
import { sendError } from './download-errors.js';
import { contentDisposition, type Target } from './download-target.js';
import type { DownloadDeps } from './downloads.js';
import { evaluateRange, type ByteRange } from './range.js';

/** Seconds a client is asked to wait when presigning failed (the credentials of the store could not be had). */
const RETRY_AFTER_SECONDS = 5;

/** Whether this request's body may come from the store instead (see the module comment). */
export function redirectable(req: IncomingMessage, size: number): boolean {
  if (req.method !== 'GET') return false;
  if (req.headers['if-match'] !== undefined || req.headers['if-unmodified-since'] !== undefined) return false;
  const range = req.headers.range;
  if (range === undefined) return true;
  const decision = evaluateRange(range, size);
  return decision.kind === 'partial' && decision.ranges.length === 1;
}

/**
 * Answers 302 to the object's presigned URL, with the Content-Disposition
 * proxy mode sends baked into it, and tells the observer. A redirect moves
 * no bytes through goldmirror, so it takes no download slot and no bandwidth.
 */
export async function redirectDownload(
  deps: DownloadDeps & { presign: NonNullable<DownloadDeps['presign']> },
  req: IncomingMessage,
  res: ServerResponse,
  target: Target,
  ranges: ByteRange[] | null,
  size: number,
): Promise<void> {
  let location: string;
  try {
    location = await deps.presign(target.sha256, contentDisposition(target.name));
  } catch (err) {
    deps.onError?.(err);
    res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
    // Anyone with a link sees this answer: the bucket's name and address stay in the log (onError).
    return sendError(res, new AppError('STORAGE_UNAVAILABLE', 'could not sign a download URL for the object storage'));
  }
  // The validators and Accept-Ranges describe the package; the store's answer carries its own.
  for (const name of ['ETag', 'Last-Modified', 'Accept-Ranges']) res.removeHeader(name);
  // A presigned URL expires: neither this answer nor its Location may be reused from a cache.
  res.writeHead(302, { Location: location, 'Cache-Control': 'no-store', 'Content-Length': 0 });
  res.end();
  const [range] = ranges ?? [];
  deps.observeRedirect?.({
    sha256: target.sha256,
    firstByte: range?.start ?? 0,
    bytes: range ? range.end - range.start + 1 : size,
    size,
    coversEnd: req.headers['user-agent'] !== LINK_CHECK_USER_AGENT && (!range || range.end === size - 1),
    request: req,
  });
}
