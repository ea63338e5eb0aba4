/**
 * Who the client is, for sign-in throttling, per-client download caps and
 * the download log; the one place that decides it: the socket peer, unless that
 * peer is a configured reverse proxy (MIRROR_TRUST_PROXY), in which case
 * X-Forwarded-For is walked right to left past trusted hops. A client can
 * write anything into that header, so only entries added by trusted proxies
 * (the right-hand end) are believed. Matching uses node's BlockList.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { blockListOf } from '../../config/cidr.js';
import type { Context } from 'hono';

/** A set of trusted proxy addresses and CIDRs. */
export interface TrustedProxies {
  has(address: string): boolean;
}

/** Builds the matcher from validated config entries (`10.0.0.1`, `10.0.0.0/8`, `fd00::/8`). */
export function trustedProxies(entries: readonly string[]): TrustedProxies {
  const list = blockListOf(entries);
  return {
    has(address) {
      const family = isIP(address);
      return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/** One address in a canonical spelling: no zone or brackets, IPv4-mapped IPv6 as plain IPv4; '' when not an IP. */
export function canonicalAddress(text: string): string {
  let address = text.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed) address = bracketed[1]!;
  else if (/^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(address)) address = address.slice(0, address.lastIndexOf(':'));
  address = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) address = mapped[1]!;
  return isIP(address) === 0 ? '' : address.toLowerCase();
}

/**
 * The client address: the socket peer, or, when that peer is trusted, the
 * first address in X-Forwarded-For (from the right) that is not a trusted
 * proxy. An unparsable entry stops the walk at the last trusted hop.
 */
export function resolveClientAddress(peer: string, forwardedFor: string | undefined, trusted: TrustedProxies): string {
  let client = canonicalAddress(peer);
  if (client === '' || !trusted.has(client) || !forwardedFor) return client || 'unknown';
  const hops = forwardedFor.split(',');
  for (let i = hops.length - 1; i >= 0; i -= 1) {
    const hop = canonicalAddress(hops[i]!);
    if (hop === '') break;
    client = hop;
    if (!trusted.has(hop)) break;
  }
  return client;
}

/** The client address of a request through @hono/node-server. */
export function clientAddressOf(c: Context, trusted: TrustedProxies): string {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return resolveClientAddress(incoming?.socket?.remoteAddress ?? '', c.req.header('x-forwarded-for'), trusted);
}

/**
 * The client address of a plain node:http request (the download links), by
 * the same rule. IPv6 addresses stay whole here (the Macs of one office LAN
 * usually share a /64; only sign-in throttling groups by /64).
 */
export function clientAddressOfRequest(req: IncomingMessage, trusted: TrustedProxies): string {
  const forwarded = req.headers['x-forwarded-for'];
  return resolveClientAddress(
    req.socket.remoteAddress ?? '',
    Array.isArray(forwarded) ? forwarded.join(',') : forwarded,
    trusted,
  );
}

/** The socket peer alone (no trusted proxies). */
export function clientAddress(req: IncomingMessage): string {
  return clientAddressOfRequest(req, NO_PROXIES);
}

const NO_PROXIES: TrustedProxies = { has: () => false };
