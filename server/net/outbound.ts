/**
 * The one way the mirror makes HTTP requests to other servers (pulls from a
 * URL, checksum files, sync). The body it fetches becomes a public download
 * link, so an admin (or a stolen admin token) must not be able to point it at
 * the mirror's own loopback services or a cloud metadata address.
 *
 * Algorithm, for every hop of a redirect chain:
 * 1. the URL must be http or https;
 * 2. an IP literal host is checked at once (node connects to it without a lookup);
 * 3. a host name is resolved by a custom `lookup` at connect time, and only
 *    permitted addresses are handed to the socket: what was checked is what is
 *    connected to, so a name that later resolves elsewhere (DNS rebinding)
 *    gains nothing;
 * 4. redirects are followed by hand (at most `maxRedirects`), each new hop
 *    starting again at 1; credentials are dropped when the origin changes.
 *
 * Refused unless MIRROR_FETCH_ALLOW lists them: loopback (127.0.0.0/8, ::1),
 * link-local (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0/8, ::) and the
 * addresses this mirror listens on (every interface address when it listens
 * on a wildcard).
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import { Readable } from 'node:stream';
import { blockListOf } from '../../config/cidr.js';
import { AppError } from '../errors.js';

export interface OutboundPolicy {
  /** CIDR blocks an operator opened (MIRROR_FETCH_ALLOW); they win over every refusal below. */
  allow: readonly string[];
  /** The mirror's listen host (MIRROR_HOST); a wildcard stands for every local interface address. */
  listenHost: string;
}

export interface OutboundInit {
  /** POST (a replica's heartbeat to its primary) sends `body`; a redirect of it is handed back, never followed. */
  method?: 'GET' | 'HEAD' | 'POST';
  body?: string | undefined;
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
  /** 'follow' (default) checks and follows each hop; 'manual' hands the 3xx back. */
  redirect?: 'follow' | 'manual';
  maxRedirects?: number;
  /** No byte sent or received for this long (connecting included) fails the request. */
  idleTimeoutMs?: number;
}

/**
 * Like the global fetch for GET and HEAD: resolves to a Response with a
 * streamed body; network failures reject with TypeError('fetch failed', { cause })
 * as undici does, and a refused address rejects with FETCH_ADDRESS_REFUSED.
 */
export type OutboundFetch = (url: string | URL, init?: OutboundInit) => Promise<Response>;

const BUILT_IN: ReadonlyArray<{ what: string; list: net.BlockList }> = [
  { what: 'a loopback address', list: blockListOf(['127.0.0.0/8', '::1/128']) },
  { what: 'a link-local address', list: blockListOf(['169.254.0.0/16', 'fe80::/10']) },
  { what: 'an unspecified address', list: blockListOf(['0.0.0.0/8', '::/128']) },
];
const DEFAULT_MAX_REDIRECTS = 5;
const DEFAULT_IDLE_TIMEOUT_MS = 120_000;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Statuses whose answer never has a body (the Response constructor refuses one). */
const NULL_BODY = new Set([204, 205, 304]);

/** Why `address` may not be fetched from, or null when it may. */
export type AddressCheck = (address: string) => Promise<string | null>;

export function createAddressCheck(policy: OutboundPolicy): AddressCheck {
  const allow = blockListOf(policy.allow);
  const wildcard = ['', '0.0.0.0', '::', '[::]'].includes(policy.listenHost);
  let named: Promise<string[]> | null = null;
  const own = async (): Promise<string[]> => {
    // Interfaces can change while the server runs (DHCP), so a wildcard is read at each check.
    if (wildcard) return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
    if (net.isIP(policy.listenHost)) return [policy.listenHost];
    named ??= dns.promises.lookup(policy.listenHost, { all: true }).then(
      (all) => all.map((a) => a.address),
      () => [],
    );
    return named;
  };
  return async (address) => {
    const family = net.isIPv4(address) ? 'ipv4' : 'ipv6';
    if (allow.check(address, family)) return null;
    for (const { what, list } of BUILT_IN) if (list.check(address, family)) return what;
    const ownList = new net.BlockList();
    for (const a of await own()) ownList.addAddress(a.replace(/%.*$/, ''), net.isIPv4(a) ? 'ipv4' : 'ipv6');
    if (ownList.check(address, family)) return 'an address this mirror listens on';
    return null;
  };
}

/** The stable refusal: names the address, the host that led to it, and the setting that opens it. */
export function addressRefused(address: string, host: string, what: string): AppError {
  const via = host === address ? '' : ` (${host} resolves to it)`;
  const block = net.isIPv4(address) ? `${address}/32` : `${address}/128`;
  return new AppError(
    'FETCH_ADDRESS_REFUSED',
    `refusing to fetch from ${address}${via}: it is ${what}, which outbound fetches never reach by default; ` +
      `if this is really wanted, add it to MIRROR_FETCH_ALLOW (e.g. MIRROR_FETCH_ALLOW=${block})`,
    { address, host },
  );
}

export function createOutboundFetch(policy: OutboundPolicy): OutboundFetch {
  const check = createAddressCheck(policy);
  // A connect-time lookup: only addresses that pass the check reach the socket.
  const lookup = ((hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err);
      void Promise.all(addresses.map(async (a) => ({ ...a, refusal: await check(a.address) }))).then((checked) => {
        const permitted = checked.filter((a) => a.refusal === null);
        const first = checked[0];
        if (!first)
          return callback(
            Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }),
          );
        if (permitted.length === 0) return callback(addressRefused(first.address, hostname, first.refusal!));
        if (options.all)
          return callback(
            null,
            permitted.map(({ address, family }) => ({ address, family })),
          );
        return callback(null, permitted[0]!.address, permitted[0]!.family);
      }, callback);
    });
  }) as unknown as net.LookupFunction;
  return (url, init = {}) =>
    followRedirects(url, init, async (target) => {
      const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
      if (net.isIP(host)) {
        const refusal = await check(host);
        if (refusal) throw addressRefused(host, host, refusal);
      }
      return { lookup };
    });
}

interface HopOptions {
  lookup?: net.LookupFunction;
}

async function followRedirects(
  start: string | URL,
  init: OutboundInit,
  prepare: (url: URL) => Promise<HopOptions>,
): Promise<Response> {
  const maxRedirects = init.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  let url = typeof start === 'string' ? new URL(start) : start;
  let method = init.method ?? 'GET';
  let headers = { ...init.headers };
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new AppError('SOURCE_FAILED', `cannot fetch ${url.href}: only http and https are supported`);
    }
    init.signal?.throwIfAborted();
    const res = await requestOnce(url, method, headers, init, await prepare(url));
    const location = res.headers.get('location');
    if (init.redirect === 'manual' || method === 'POST' || !REDIRECTS.has(res.status) || location === null) return res;
    await res.body?.cancel().catch(() => undefined);
    if (hop >= maxRedirects)
      throw new AppError('SOURCE_FAILED', `${url.href} redirected more than ${maxRedirects} times; giving up`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new AppError('SOURCE_FAILED', `${url.href} redirected to an invalid URL: ${JSON.stringify(location)}`);
    }
    // Credentials were meant for the origin they were given for (as browsers and undici do).
    if (next.origin !== url.origin) headers = withoutCredentials(headers);
    if (res.status === 303 && method !== 'HEAD') method = 'GET';
    url = next;
  }
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(
      ([name]) => !['authorization', 'cookie', 'proxy-authorization'].includes(name.toLowerCase()),
    ),
  );
}

function requestOnce(
  url: URL,
  method: string,
  headers: Record<string, string>,
  init: OutboundInit,
  hop: HopOptions,
): Promise<Response> {
  const { signal } = init;
  const secure = url.protocol === 'https:';
  const body = method === 'POST' ? Buffer.from(init.body ?? '') : null;
  const options: https.RequestOptions = {
    method,
    headers: body ? { ...headers, 'Content-Length': String(body.length) } : headers,
    // A fresh connection per request: every connect passes the lookup check again.
    agent: false,
    timeout: init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
  };
  if (hop.lookup) options.lookup = hop.lookup;
  return new Promise<Response>((resolve, reject) => {
    let response: http.IncomingMessage | null = null;
    // Aborting rejects with the signal's reason, as fetch does, before or during the body.
    const onAbort = (): void => {
      if (response) response.destroy(signal?.reason as Error);
      else req.destroy(signal?.reason as Error);
    };
    const done = (): void => signal?.removeEventListener('abort', onAbort);
    const req = (secure ? https : http).request(url, options);
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`no data for ${(options.timeout ?? 0) / 1000} s`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', (err) => {
      done();
      reject(err instanceof AppError || err === signal?.reason ? err : new TypeError('fetch failed', { cause: err }));
    });
    req.on('response', (res) => {
      response = res;
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 599) {
        res.destroy();
        done();
        reject(new AppError('SOURCE_FAILED', `${url.href} answered with an invalid HTTP status ${status}`));
        return;
      }
      const responseHeaders = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
        try {
          responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
        } catch {
          // A header value fetch would not accept either: leave it out.
        }
      }
      const hasBody = method !== 'HEAD' && !NULL_BODY.has(status);
      if (!hasBody) res.resume();
      // A connection cut before the body is complete errors the stream (node destroys an incomplete response).
      res.once('close', done);
      resolve(
        new Response(hasBody ? (Readable.toWeb(res) as ReadableStream<Uint8Array>) : null, {
          status,
          statusText: res.statusMessage,
          headers: responseHeaders,
        }),
      );
    });
    if (signal) {
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    req.end(body ?? undefined);
  });
}
