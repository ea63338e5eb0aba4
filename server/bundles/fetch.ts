/**
 * Pulling a package from an upstream HTTP(S) server into the store. The body
 * streams straight into the normal ingest (hashed once, nothing visible until
 * verified). A dropped connection resumes with a Range request guarded by
 * If-Range, so the bytes cannot silently change underneath; an upstream that
 * cannot resume makes the fetch fail cleanly after its retries. Every request
 * goes through the outbound address guard (server/net/outbound.ts).
 */
import path from 'node:path';
import type { ByteSource } from '../../storage/blob-store.js';
import type { BlobKind } from '../db/schema.js';
import { parseChecksumText, type Sha256 } from '../../storage/digest.js';
import { AppError } from '../errors.js';
import { assertFreeSpace, ingest, type IngestDeps, type IngestResult } from '../services/ingest.js';
import { readCapped } from '../links.js';
import { createOutboundFetch, type OutboundFetch } from '../net/outbound.js';

/** Without a configured guard (a library caller), the strictest one: nothing opened, every interface is "own". */
let strictest: OutboundFetch | null = null;

/** The guarded HTTP client of `deps`, or the strictest default. */
export function outboundOf(deps: IngestDeps): OutboundFetch {
  if (deps.outbound) return deps.outbound;
  strictest ??= createOutboundFetch({ allow: [], listenHost: '0.0.0.0' });
  return strictest;
}

export interface FetchOptions {
  expectedSha256?: Sha256 | undefined;
  checksumUrl?: string | undefined;
  headers?: Record<string, string>;
  fileName?: string | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((bytesDone: number, totalBytes: number | null) => void) | undefined;
  /** What the blob is (default: a package). */
  kind?: BlobKind | undefined;
  /** Wraps the downloaded bytes before they are stored (a check that fails at their end stores nothing). */
  wrapSource?: ((source: AsyncIterable<Uint8Array>) => ByteSource) | undefined;
  /** Told the headers of the first answer (its length and validator), before any byte is stored. */
  onResponse?: ((headers: Headers) => void) | undefined;
  /** Consecutive failed attempts tolerated before giving up. */
  maxRetries?: number;
  retryDelayMs?: number;
}

export async function fetchIntoStore(deps: IngestDeps, url: string, options: FetchOptions = {}): Promise<IngestResult> {
  const target = parseUpstreamUrl(url, 'url');
  const http = outboundOf(deps);
  let expected = options.expectedSha256;
  if (options.checksumUrl !== undefined) {
    const text = await fetchSmallText(http, parseUpstreamUrl(options.checksumUrl, 'checksum URL'), options);
    expected = parseChecksumText(text, `checksum file at ${options.checksumUrl}`);
  }
  const fileName = options.fileName ?? (decodeURIComponent(path.posix.basename(target.pathname)) || 'package.pvmp');
  // A Content-Length is checked against the free space before the first byte is written.
  const checkLength = (total: number) => assertFreeSpace(deps, total, `${target.href}`);
  return ingest(deps, {
    source: (options.wrapSource ?? ((body) => body))(resumableBody(http, target, options, checkLength)),
    fileName,
    expectedSha256: expected,
    signal: options.signal,
    kind: options.kind,
  });
}

export function parseUpstreamUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AppError('VALIDATION_FAILED', `${what} is not a valid URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new AppError('VALIDATION_FAILED', `${what} must use http or https`);
  return url;
}

async function fetchSmallText(http: OutboundFetch, url: URL, options: FetchOptions): Promise<string> {
  const res = await http(url, {
    headers: options.headers,
    signal: options.signal ?? AbortSignal.timeout(30_000),
  }).catch((err: unknown) => {
    throw err instanceof AppError ? err : upstreamError(url, err);
  });
  if (!res.ok) {
    await res.body?.cancel();
    throw new AppError('SOURCE_FAILED', `${url.href} answered HTTP ${res.status}`);
  }
  // A checksum file is one line; never buffer more (the package URL pasted by mistake, say).
  const { bytes } = await readCapped(res, 65536);
  return bytes.toString('utf8');
}

/**
 * The upstream body as one stream of chunks across reconnections. The
 * validator (strong ETag, else Last-Modified) of the first answer pins the
 * content; a resumed answer must be 206 starting exactly where we stopped.
 */
async function* resumableBody(
  http: OutboundFetch,
  url: URL,
  options: FetchOptions,
  checkLength: (total: number) => Promise<void>,
): AsyncGenerator<Uint8Array> {
  const maxRetries = options.maxRetries ?? 5;
  const delayMs = options.retryDelayMs ?? 1000;
  let offset = 0;
  let total: number | null = null;
  let validator: string | null = null;
  let failures = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    const headers: Record<string, string> = { ...options.headers, 'Accept-Encoding': 'identity' };
    if (offset > 0) {
      headers.Range = `bytes=${offset}-`;
      if (validator) headers['If-Range'] = validator;
    }
    let res: Response;
    try {
      res = await http(url, { headers, signal: options.signal, redirect: 'follow' });
    } catch (err) {
      // A refused address or a redirect loop will not get better by retrying.
      if (options.signal?.aborted || err instanceof AppError) throw err;
      failures += 1;
      if (failures > maxRetries) throw upstreamError(url, err);
      await sleep(delayMs * failures, options.signal);
      continue;
    }
    if (offset === 0) {
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new AppError('SOURCE_FAILED', `${url.href} answered HTTP ${res.status}`);
      }
      validator = validatorOf(res.headers);
      options.onResponse?.(res.headers);
      const length = res.headers.get('content-length');
      total = length !== null && /^\d+$/.test(length) ? Number(length) : null;
      if (total !== null) {
        try {
          await checkLength(total);
        } catch (err) {
          await res.body?.cancel();
          throw err;
        }
      }
    } else {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (res.status !== 206 || !range || Number(range[1]) !== offset) {
        await res.body?.cancel();
        throw new AppError(
          'SOURCE_FAILED',
          res.status === 200
            ? `${url.href} dropped the connection and cannot resume (it ignores Range or the file changed); nothing was stored`
            : `${url.href} answered HTTP ${res.status} when resuming at byte ${offset}`,
        );
      }
    }
    try {
      if (!res.body) throw new Error('empty body');
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        offset += chunk.byteLength;
        failures = 0;
        options.onProgress?.(offset, total);
        yield chunk;
      }
      if (total === null || offset === total) return;
      throw new Error(`connection ended after ${offset} of ${total} bytes`);
    } catch (err) {
      if (options.signal?.aborted || err instanceof AppError) throw err;
      failures += 1;
      if (failures > maxRetries) throw upstreamError(url, err);
      await sleep(delayMs * failures, options.signal);
    }
  }
}

/** What pins an upstream file's content: its strong ETag, else its Last-Modified date. */
export function validatorOf(headers: Headers): string | null {
  const etag = headers.get('etag');
  return etag && !etag.startsWith('W/') ? etag : headers.get('last-modified');
}

export function upstreamError(url: URL, err: unknown): AppError {
  const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
  return new AppError('SOURCE_FAILED', `could not download ${url.href}: ${cause}`, {}, { cause: err });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      },
      { once: true },
    );
  });
}
