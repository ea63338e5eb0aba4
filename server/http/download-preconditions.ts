/**
 * The validators of a download (ETag = the quoted digest, Last-Modified = the
 * row's creation) and the conditional and Range headers judged against them
 * (RFC 9110 §13, §14; the rules themselves are in range.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AppError } from '../errors.js';
import { sendError } from './download-errors.js';
import { evaluatePreconditions, evaluateRange, ifRangeAllowsPartial, type ByteRange } from './range.js';

const CACHE_CONTROL = 'public, max-age=31536000, immutable';

/** Sets the headers every answer about a stored package carries, the checksum line's included. */
export function setValidators(res: ServerResponse, etag: string, lastModifiedMs: number): void {
  res.setHeader('ETag', etag);
  res.setHeader('Last-Modified', new Date(lastModifiedMs).toUTCString());
  res.setHeader('Cache-Control', CACHE_CONTROL);
  res.setHeader('X-Content-Type-Options', 'nosniff');
}

/**
 * Evaluates If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since,
 * If-Range and Range, in the RFC's order. Returns the ranges to send (null:
 * the whole body), or false when it already answered (304, 412 or 416).
 */
export function evaluateConditionals(
  req: IncomingMessage,
  res: ServerResponse,
  etag: string,
  lastModifiedMs: number,
  size: number,
): ByteRange[] | null | false {
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
    return false;
  }
  if (precondition === 'precondition-failed') {
    sendError(res, new AppError('PRECONDITION_FAILED', 'the stored package does not match the request preconditions'));
    return false;
  }
  if (!ifRangeAllowsPartial(headerValue(req.headers['if-range']), etag, lastModifiedMs)) return null;
  const decision = evaluateRange(headerValue(req.headers.range), size);
  if (decision.kind === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${size}`);
    sendError(
      res,
      new AppError('RANGE_NOT_SATISFIABLE', `no requested range lies within the ${size} bytes of this package`),
    );
    return false;
  }
  return decision.kind === 'partial' ? decision.ranges : null;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}
