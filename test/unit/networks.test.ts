/**
 * Client networks of sites (server/services/networks.ts): one canonical
 * spelling per block, host bits refused with the block that was meant, and
 * the most specific block holding a client address wins, IPv4 and IPv6 kept
 * apart (an IPv4-mapped IPv6 client is an IPv4 client).
 */
import { describe, expect, it } from 'vitest';
import { canonicalAddress } from '../../server/http/client-address.js';
import {
  addressBits,
  networkHolds,
  networkMatcher,
  parseNetwork,
  type Network,
} from '../../server/services/networks.js';
import { decideRoute, type RoutingTable } from '../../server/services/routing.js';
import type { Sha256 } from '../../storage/digest.js';

/** The canonical text of a valid block; fails the test with the problem otherwise. */
function canonical(entry: string): string {
  const parsed = parseNetwork(entry);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed.text;
}

function network(entry: string): Network {
  const parsed = parseNetwork(entry);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

/** The problem text parseNetwork gives for an entry it refuses. */
function problem(entry: string): string {
  const parsed = parseNetwork(entry);
  if (typeof parsed !== 'string') throw new Error(`${entry} was accepted as ${parsed.text}`);
  return parsed;
}

describe('parseNetwork', () => {
  it('reads IPv4 and IPv6 blocks as numbers with family and prefix', () => {
    expect(network('10.1.0.0/16')).toEqual({ family: 4, base: 0x0a010000n, prefix: 16, text: '10.1.0.0/16' });
    expect(network('fd00:1::/64')).toEqual({
      family: 6,
      base: 0xfd000001n << 96n,
      prefix: 64,
      text: 'fd00:1::/64',
    });
    expect(network('0.0.0.0/0')).toEqual({ family: 4, base: 0n, prefix: 0, text: '0.0.0.0/0' });
    expect(network('::/0')).toEqual({ family: 6, base: 0n, prefix: 0, text: '::/0' });
  });

  it('spells a bare address as one host: /32 or /128', () => {
    expect(canonical('10.1.2.3')).toBe('10.1.2.3/32');
    expect(canonical('::1')).toBe('::1/128');
    expect(canonical('2001:db8::7')).toBe('2001:db8::7/128');
    expect(canonical('[fd00::1]')).toBe('fd00::1/128');
  });

  it('writes IPv6 in its shortest form: lower case, no leading zeros, the longest zero run as ::', () => {
    expect(canonical('FD00:0001:0000:0000:0000:0000:0000:0000/64')).toBe('fd00:1::/64');
    expect(canonical('2001:0DB8::/32')).toBe('2001:db8::/32');
    expect(canonical('0:0:0:0:0:0:0:0/0')).toBe('::/0');
    expect(canonical('0:0:0:0:0:0:0:1')).toBe('::1/128');
    expect(canonical('1:0:0:0:0:0:0:0')).toBe('1::/128');
    // The longest run is compressed, not the first one.
    expect(canonical('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1/128');
    // Two runs of the same length: the first one.
    expect(canonical('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1/128');
    expect(canonical('1:0:0:0:2:0:0:0')).toBe('1::2:0:0:0/128');
    // A single zero group stays a 0 (RFC 5952).
    expect(canonical('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1/128');
    // Other spellings of the same block agree.
    for (const spelling of ['fd00:0:0:0::/48', 'fd00::0/48', 'FD00:0000::/48', '[fd00::]/48'])
      expect(canonical(spelling)).toBe('fd00::/48');
  });

  it('trims blanks, and reads a prefix written with a leading zero as its number', () => {
    expect(canonical('  10.0.0.0/8 ')).toBe('10.0.0.0/8');
    expect(canonical('10.0.0.0/08')).toBe('10.0.0.0/8');
  });

  it('refuses host bits below the prefix and names the block that was probably meant', () => {
    expect(problem('10.1.2.0/16')).toBe('"10.1.2.0/16" has bits set past its /16 prefix; did you mean 10.1.0.0/16?');
    expect(problem('192.168.1.77/24')).toBe(
      '"192.168.1.77/24" has bits set past its /24 prefix; did you mean 192.168.1.0/24?',
    );
    expect(problem('10.0.0.1/0')).toBe('"10.0.0.1/0" has bits set past its /0 prefix; did you mean 0.0.0.0/0?');
    expect(problem('fd00::1/64')).toBe('"fd00::1/64" has bits set past its /64 prefix; did you mean fd00::/64?');
    expect(problem('2001:db8:1:2:3::/48')).toBe(
      '"2001:db8:1:2:3::/48" has bits set past its /48 prefix; did you mean 2001:db8:1::/48?',
    );
  });

  it('refuses what is no address or has no valid prefix length, saying which', () => {
    expect(problem('office')).toBe('"office" is not an IP address or CIDR block (e.g. 10.0.0.0/8 or fd00::/8)');
    expect(problem('10.0.0.256/32')).toMatch(/is not an IP address or CIDR block/);
    expect(problem('010.1.1.1')).toMatch(/is not an IP address or CIDR block/);
    expect(problem('10.0.0.0/33')).toBe('"10.0.0.0/33" has an invalid prefix length (0 to 32 for IPv4)');
    expect(problem('10.0.0.0/')).toBe('"10.0.0.0/" has an invalid prefix length (0 to 32 for IPv4)');
    expect(problem('10.0.0.0/-1')).toBe('"10.0.0.0/-1" has an invalid prefix length (0 to 32 for IPv4)');
    expect(problem('10.0.0.0/8/8')).toMatch(/has an invalid prefix length/);
    expect(problem('fd00::/129')).toBe('"fd00::/129" has an invalid prefix length (0 to 128 for IPv6)');
    expect(problem('')).toMatch(/is not an IP address or CIDR block/);
  });

  it('refuses an IPv4-mapped IPv6 block (clients are matched as IPv4) and names the IPv4 block meant', () => {
    expect(problem('::ffff:10.0.0.0/104')).toBe(
      '"::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 block, and such clients are matched as IPv4; did you mean 10.0.0.0/8?',
    );
    expect(problem('::ffff:192.168.1.7')).toMatch(/did you mean 192\.168\.1\.7\/32\?$/);
    expect(problem('::ffff:0:0/96')).toMatch(/did you mean 0\.0\.0\.0\/0\?$/);
    // Wider blocks that merely contain the mapped range are ordinary IPv6 blocks.
    expect(canonical('::/64')).toBe('::/64');
  });
});

describe('addressBits and networkHolds', () => {
  it('reads IPv4, IPv6 and an embedded IPv4 tail as numbers', () => {
    expect(addressBits('10.1.2.3')).toEqual({ family: 4, value: 0x0a010203n });
    expect(addressBits('::1')).toEqual({ family: 6, value: 1n });
    expect(addressBits('64:ff9b::10.1.2.3')).toEqual({ family: 6, value: (0x64ff9bn << 96n) | 0x0a010203n });
    expect(addressBits('fe80::1%eth0')).toEqual({ family: 6, value: (0xfe80n << 112n) | 1n });
    expect(addressBits('mac-17.office')).toBeNull();
  });

  it('holds exactly the addresses inside the block, edges included', () => {
    const block = network('10.1.0.0/16');
    expect(networkHolds(block, addressBits('10.1.0.0')!)).toBe(true);
    expect(networkHolds(block, addressBits('10.1.255.255')!)).toBe(true);
    expect(networkHolds(block, addressBits('10.0.255.255')!)).toBe(false);
    expect(networkHolds(block, addressBits('10.2.0.0')!)).toBe(false);
    const v6 = network('fd00:1::/64');
    expect(networkHolds(v6, addressBits('fd00:1::ffff:ffff:ffff:ffff')!)).toBe(true);
    expect(networkHolds(v6, addressBits('fd00:1:0:1::')!)).toBe(false);
    expect(networkHolds(network('0.0.0.0/0'), addressBits('255.255.255.255')!)).toBe(true);
  });
});

describe('networkMatcher', () => {
  const matcherOf = (entries: Array<[string, string]>) =>
    networkMatcher(entries.map(([block, value]) => ({ network: network(block), value })));
  const siteOf = (m: ReturnType<typeof matcherOf>, address: string) => m.match(address)?.value ?? null;

  it('gives the most specific block holding the address, in whatever order the blocks come', () => {
    const blocks: Array<[string, string]> = [
      ['10.0.0.0/8', 'campus'],
      ['10.1.0.0/16', 'hq'],
      ['10.1.5.0/24', 'lab'],
      ['10.1.5.9/32', 'printer-room'],
    ];
    for (const order of [blocks, [...blocks].reverse(), [blocks[2]!, blocks[0]!, blocks[3]!, blocks[1]!]]) {
      const m = matcherOf(order);
      expect(siteOf(m, '10.200.0.1')).toBe('campus');
      expect(siteOf(m, '10.1.200.1')).toBe('hq');
      expect(siteOf(m, '10.1.5.8')).toBe('lab');
      expect(siteOf(m, '10.1.5.9')).toBe('printer-room');
      expect(siteOf(m, '11.0.0.1')).toBeNull();
    }
    expect(matcherOf(blocks).match('10.1.5.8')?.network.text).toBe('10.1.5.0/24');
  });

  it('keeps IPv4 and IPv6 apart: ::/0 holds no IPv4 client, 0.0.0.0/0 no IPv6 one', () => {
    const m = matcherOf([
      ['::/0', 'every-v6'],
      ['fd00:1::/64', 'branch'],
    ]);
    expect(siteOf(m, '10.1.2.3')).toBeNull();
    expect(siteOf(m, 'fd00:1::17')).toBe('branch');
    expect(siteOf(m, '2001:db8::1')).toBe('every-v6');
    const v4 = matcherOf([['0.0.0.0/0', 'every-v4']]);
    expect(siteOf(v4, '::1')).toBeNull();
    expect(siteOf(v4, '192.0.2.1')).toBe('every-v4');
    // 10.0.0.0/8 as bits is not the IPv6 block ::a00:0/104.
    expect(siteOf(matcherOf([['10.0.0.0/8', 'hq']]), '::a00:1')).toBeNull();
  });

  it('matches an IPv4-mapped IPv6 client as the IPv4 address it stands for, in either spelling', () => {
    const m = matcherOf([
      ['10.1.0.0/16', 'hq'],
      ['::/0', 'every-v6'],
    ]);
    // A dual-stack socket reports IPv4 peers like this; canonicalAddress makes them plain IPv4 first.
    expect(canonicalAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(siteOf(m, canonicalAddress('::ffff:10.1.2.3'))).toBe('hq');
    // The matcher itself agrees, also for the hexadecimal spelling a proxy may write into X-Forwarded-For.
    expect(siteOf(m, '::ffff:10.1.2.3')).toBe('hq');
    expect(siteOf(m, '::FFFF:a01:203')).toBe('hq');
    expect(siteOf(m, '0:0:0:0:0:ffff:10.1.2.3')).toBe('hq');
    expect(siteOf(m, '::ffff:10.2.0.1')).toBeNull();
  });

  it('matches nothing for a text that is no address', () => {
    expect(matcherOf([['0.0.0.0/0', 'all']]).match('unknown')).toBeNull();
  });
});

describe('decideRoute picks the site by the client address', () => {
  const sha = 'a'.repeat(64) as Sha256;
  const table = (sites: Array<[string, string[]]>): RoutingTable => ({
    loadedAt: 0,
    sites: new Map(sites.map(([name]) => [name, { name, redirects: true }])),
    matcher: networkMatcher(
      sites.flatMap(([name, blocks]) => blocks.map((b) => ({ network: network(b), value: name }))),
    ),
    replicas: [],
    claims: new Map(),
    storedPublicUrl: '',
  });

  it('says why this mirror serves a client: no site defined, or in none of them', () => {
    const query = { client: '10.1.2.3', sha256: sha, now: 0, ownUrl: '' };
    expect(decideRoute(table([]), query)).toEqual({
      client: '10.1.2.3',
      site: null,
      network: null,
      replica: null,
      reason: 'no site is defined',
      candidates: [],
    });
    expect(decideRoute(table([['hq', ['10.9.0.0/16']]]), query).reason).toBe('the client is in no site');
  });

  it('finds the site of an IPv4-mapped client and names the most specific network', () => {
    const t = table([
      ['campus', ['10.0.0.0/8']],
      ['hq', ['10.1.0.0/16', 'fd00:1::/64']],
    ]);
    const decision = decideRoute(t, { client: '::ffff:10.1.2.3', sha256: sha, now: 0, ownUrl: '' });
    expect(decision).toMatchObject({ client: '10.1.2.3', site: 'hq', network: '10.1.0.0/16', replica: null });
    expect(decision.reason).toBe('site hq has no replica');
    expect(decideRoute(t, { client: 'FD00:1::5', sha256: sha, now: 0, ownUrl: '' })).toMatchObject({
      client: 'fd00:1::5',
      site: 'hq',
      network: 'fd00:1::/64',
    });
    expect(decideRoute(t, { client: '10.7.0.1', sha256: sha, now: 0, ownUrl: '' }).site).toBe('campus');
  });
});
