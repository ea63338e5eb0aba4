/**
 * Who a request comes from, for per-client limits. The one place that
 * decides it: trusting a reverse proxy's X-Forwarded-For later changes only
 * this function (or the function passed in its place).
 */
import type { IncomingMessage } from 'node:http';

/**
 * The socket peer's address, IPv4-mapped IPv6 written as plain IPv4. IPv6
 * addresses are kept whole, not grouped by /64: the Macs of one office LAN
 * usually share one /64, and a per-/64 limit would treat them as one client.
 */
export function clientAddress(req: IncomingMessage): string {
  const address = req.socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}
