/**
 * Address lists in settings ("127.0.0.0/8, ::1, 10.1.0.0/16"): each entry is
 * checked by node's own BlockList parser, so what validates here is exactly
 * what the running server will match against.
 */
import net from 'node:net';

/** One CIDR block, normalised: a bare address becomes /32 or /128. */
export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
  text: string;
}

/** Splits on commas and white space; an array (JSON file) is taken as is. */
export function splitList(value: string | readonly string[]): string[] {
  const items = typeof value === 'string' ? value.split(/[\s,]+/) : value.flatMap((v) => v.split(/[\s,]+/));
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

/** Parses one entry; returns a problem text instead of throwing. */
export function parseCidr(entry: string): Cidr | string {
  const slash = entry.indexOf('/');
  const rawAddress = slash === -1 ? entry : entry.slice(0, slash);
  const address = rawAddress.replace(/^\[(.*)\]$/, '$1');
  const version = net.isIP(address);
  if (version === 0) return `${JSON.stringify(entry)} is not an IP address or CIDR block (e.g. 10.0.0.0/8 or fd00::/8)`;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(max) : entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    return `${JSON.stringify(entry)} has an invalid prefix length (0 to ${max} for ${family === 'ipv4' ? 'IPv4' : 'IPv6'})`;
  }
  const prefix = Number(prefixText);
  try {
    new net.BlockList().addSubnet(address, prefix, family);
  } catch (err) {
    return `${JSON.stringify(entry)} is not accepted: ${(err as Error).message}`;
  }
  return { address, prefix, family, text: `${address}/${prefix}` };
}

/** A BlockList holding every block of an already validated list. */
export function blockListOf(cidrs: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const entry of cidrs) {
    const cidr = parseCidr(entry);
    if (typeof cidr === 'string') throw new Error(cidr);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}
