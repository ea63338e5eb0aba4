/**
 * Builds the public links handed to the portal and to Macs, and judges the
 * public address they start with. The address itself comes from the
 * settings service (MIRROR_PUBLIC_URL, else the one stored in the database);
 * nothing here ever falls back to a request's Host or this machine's name.
 */
import net from 'node:net';
import { AppError } from './errors.js';

/** A Download URL: the public address, /d/, the digest and the (cosmetic) file name. */
export function downloadUrl(baseUrl: string, sha256: string, fileName: string): string {
  return `${baseUrl}/d/${sha256}/${encodeURIComponent(fileName)}`;
}

/**
 * Checks and normalises a public address typed by an admin: http or https,
 * a host, an optional port and an optional path prefix (for a reverse
 * proxy); no user name or password, query or fragment. Returns it without a
 * trailing slash, or throws VALIDATION_FAILED naming the `field`.
 */
export function parsePublicUrl(text: string, field = 'publicUrl'): string {
  const fail = (message: string): never => {
    throw new AppError('VALIDATION_FAILED', `invalid public address: ${message}`, { fields: [{ field, message }] });
  };
  const value = text.trim();
  if (value === '') fail('enter the address Macs use, e.g. http://mirror.example.lan:8080');
  if (value.length > 500) fail('must be at most 500 characters');
  if (/\s/.test(value)) fail('must not contain spaces');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail('must be an absolute URL starting with http:// or https://, e.g. http://mirror.example.lan:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    fail(`must start with http:// or https://, not ${url.protocol}//`);
  if (!url.hostname) fail('must name a host');
  if (url.username || url.password) fail('must not contain a user name or password: Macs download without signing in');
  if (url.search || value.includes('?')) fail('must not contain a query (?…)');
  if (url.hash || value.includes('#')) fail('must not contain a fragment (#…)');
  const path = url.pathname.replace(/\/+$/, '');
  if (/(^|\/)d(\/|$)/.test(path)) fail('enter the address of the mirror, not a download link (nothing from /d/ on)');
  if (/(^|\/)(admin|api)(\/|$)/.test(path)) fail('enter the address of the mirror without /admin or /api');
  return `${url.protocol}//${url.host}${path}`;
}

/**
 * Reasons a Mac cannot use links that start with this address: a loopback,
 * link-local or unspecified host, or localhost. Empty when none is known.
 */
export function addressWarnings(baseUrl: string): string[] {
  let host: string;
  try {
    host = new URL(baseUrl).hostname.toLowerCase();
  } catch {
    return [];
  }
  const bare = host.replace(/^\[|\]$/g, '');
  const kind = hostKind(bare);
  if (kind === null) return [];
  const what = {
    localhost: `${host} always means the computer it is typed on`,
    loopback: `${host} is a loopback address: it always means the computer it is used on`,
    'link-local': `${host} is a link-local address: it is not routed and can change`,
    unspecified: `${host} is not an address a Mac can connect to`,
  }[kind];
  return [
    `Macs cannot reach this mirror at ${baseUrl}: ${what}. Set the public address to a name or address every Mac can reach.`,
  ];
}

function hostKind(host: string): 'localhost' | 'loopback' | 'link-local' | 'unspecified' | null {
  if (host === 'localhost' || host.endsWith('.localhost') || host === 'localhost.localdomain') return 'localhost';
  if (net.isIPv4(host)) {
    const [a, b] = host.split('.').map(Number);
    if (a === 127) return 'loopback';
    if (a === 169 && b === 254) return 'link-local';
    // 0/8 "this network", 224/4 multicast, 240/4 reserved and broadcast: nothing a Mac can open a connection to.
    if (a === 0 || a! >= 224) return 'unspecified';
    return null;
  }
  if (net.isIPv6(host)) {
    const v6 = host.toLowerCase();
    if (v6 === '::1') return 'loopback';
    if (v6 === '::' || v6.startsWith('ff')) return 'unspecified';
    if (/^fe[89ab][0-9a-f]?:/.test(v6)) return 'link-local';
    // IPv4-mapped (::ffff:127.0.0.1, written by URL as ::ffff:7f00:1).
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
    if (mapped) {
      const high = parseInt(mapped[1]!, 16);
      return hostKind(`${high >> 8}.${high & 255}.${parseInt(mapped[2]!, 16) >> 8}.${parseInt(mapped[2]!, 16) & 255}`);
    }
    return null;
  }
  return null;
}

/** A command an admin can paste into Terminal on a Mac to see the link's headers. */
export function curlCommand(url: string): string {
  return `curl -I ${shellQuote(url)}`;
}

/** Single-quotes a word for a POSIX shell. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:%@=+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Sent with every link-check request, so the mirror does not count its own checks as downloads. */
export const LINK_CHECK_USER_AGENT = 'goldmirror-link-check/1';

/**
 * Reads at most `maxBytes` of a response body and cancels the rest, so a
 * link that answers with a whole multi-GB package cannot fill memory.
 * Resolves to what was read and whether the body was longer.
 */
export async function readCapped(res: Response, maxBytes: number): Promise<{ bytes: Buffer; truncated: boolean }> {
  if (!res.body) return { bytes: Buffer.alloc(0), truncated: false };
  const chunks: Buffer[] = [];
  let total = 0;
  // Leaving the loop early cancels the stream (the async iterator's return()).
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    total += chunk.byteLength;
    if (total > maxBytes) return { bytes: Buffer.concat(chunks).subarray(0, maxBytes), truncated: true };
  }
  return { bytes: Buffer.concat(chunks), truncated: false };
}
