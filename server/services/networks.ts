/**
 * Client networks of sites: CIDR blocks as numbers, so that a block can be
 * written in one canonical spelling (host bits refused, not silently
 * dropped) and a client address matched to the most specific block holding
 * it. IPv4 and IPv6 are separate families; an IPv4-mapped IPv6 client
 * address is matched as IPv4, so a mapped block (which could never match) is
 * refused with the IPv4 block it stands for.
 */
import { isIP } from 'node:net';
import { parseCidr } from '../../config/cidr.js';

export interface Network {
  family: 4 | 6;
  /** The network address as a number (host bits zero). */
  base: bigint;
  prefix: number;
  /** Canonical spelling: `10.1.0.0/16`, `fd00:1::/64`. */
  text: string;
}

/** An address as a number of 32 (IPv4) or 128 (IPv6) bits; null when `address` is not an IP address. */
export function addressBits(address: string): { family: 4 | 6; value: bigint } | null {
  const version = isIP(address);
  if (version === 4) return { family: 4, value: ipv4Bits(address) };
  if (version !== 6) return null;
  let text = address.toLowerCase().replace(/%.*$/, '');
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two groups.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const v4 = ipv4Bits(tail[1]!);
    text = `${text.slice(0, tail.index)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups =
    rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(parseInt(group, 16));
  return { family: 6, value };
}

function ipv4Bits(address: string): bigint {
  return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function bitsOf(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

/** The spelling of a network address: dotted quad, or the shortest IPv6 form (longest zero run as `::`). */
function formatAddress(family: 4 | 6, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/**
 * Parses one block (`10.1.0.0/16`, `fd00:1::/64`, a bare address for one host); returns a problem text
 * instead of throwing. Host bits below the prefix are refused with the block that was probably meant.
 */
export function parseNetwork(entry: string): Network | string {
  const cidr = parseCidr(entry.trim());
  if (typeof cidr === 'string') return cidr;
  const bits = addressBits(cidr.address);
  if (!bits) return `${JSON.stringify(entry)} is not an IP address or CIDR block`;
  const hostBits = BigInt(bitsOf(bits.family) - cidr.prefix);
  const base = (bits.value >> hostBits) << hostBits;
  const text = `${formatAddress(bits.family, base)}/${cidr.prefix}`;
  if (base !== bits.value)
    return `${JSON.stringify(entry)} has bits set past its /${cidr.prefix} prefix; did you mean ${text}?`;
  const v4 = unmapped({ family: bits.family, value: base });
  if (v4.family === 4 && cidr.prefix >= 96) {
    const meant = `${formatAddress(4, v4.value)}/${cidr.prefix - 96}`;
    return `${JSON.stringify(entry)} is an IPv4-mapped IPv6 block, and such clients are matched as IPv4; did you mean ${meant}?`;
  }
  return { family: bits.family, base, prefix: cidr.prefix, text };
}

/** Whether `address` (already parsed) lies in `network`. */
export function networkHolds(network: Network, address: { family: 4 | 6; value: bigint }): boolean {
  if (network.family !== address.family) return false;
  const hostBits = BigInt(bitsOf(network.family) - network.prefix);
  return address.value >> hostBits === network.base >> hostBits;
}

/** An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, `::ffff:a01:203`) as the IPv4 address it stands for. */
function unmapped(address: { family: 4 | 6; value: bigint }): { family: 4 | 6; value: bigint } {
  if (address.family === 6 && address.value >> 32n === 0xffffn)
    return { family: 4, value: address.value & 0xffffffffn };
  return address;
}

/** A matcher over many named networks: the most specific block holding an address wins. */
export function networkMatcher<T>(entries: ReadonlyArray<{ network: Network; value: T }>): {
  match(address: string): { network: Network; value: T } | null;
} {
  const sorted = [...entries].sort((a, b) => b.network.prefix - a.network.prefix);
  return {
    match(address) {
      const parsed = addressBits(address);
      if (!parsed) return null;
      // Whatever spelling reached here (X-Forwarded-For may carry the hexadecimal one).
      const bits = unmapped(parsed);
      return sorted.find((e) => networkHolds(e.network, bits)) ?? null;
    },
  };
}
