/** Who the client is (MIRROR_TRUST_PROXY, X-Forwarded-For) and the key sign-in throttling counts it under. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { isError } from '../../server/errors.js';
import { canonicalAddress, resolveClientAddress, trustedProxies } from '../../server/http/client-address.js';
import { throttleKey } from '../../server/services/login-throttle.js';

describe('resolveClientAddress', () => {
  const trusted = trustedProxies(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);

  it('takes the socket peer when no proxy is trusted or the peer is not one of them', () => {
    expect(resolveClientAddress('192.0.2.1', '198.51.100.7', trustedProxies([]))).toBe('192.0.2.1');
    expect(resolveClientAddress('192.0.2.1', '198.51.100.7', trusted)).toBe('192.0.2.1');
    expect(resolveClientAddress('::ffff:192.0.2.1', undefined, trusted)).toBe('192.0.2.1');
    expect(resolveClientAddress('', undefined, trusted)).toBe('unknown');
  });

  it('walks X-Forwarded-For right to left from a trusted peer, past trusted hops', () => {
    expect(resolveClientAddress('127.0.0.1', '198.51.100.7', trusted)).toBe('198.51.100.7');
    expect(resolveClientAddress('::ffff:127.0.0.1', '198.51.100.7', trusted)).toBe('198.51.100.7');
    expect(resolveClientAddress('127.0.0.1', '198.51.100.7, 10.9.8.7', trusted)).toBe('198.51.100.7');
    expect(resolveClientAddress('127.0.0.1', '198.51.100.7,10.9.8.7 , fd12::1', trusted)).toBe('198.51.100.7');
    // What a client wrote itself sits further left and is never reached.
    expect(resolveClientAddress('127.0.0.1', '203.0.113.1, 198.51.100.7', trusted)).toBe('198.51.100.7');
    // Every hop trusted: the leftmost one is the client.
    expect(resolveClientAddress('127.0.0.1', '10.0.0.5, 10.0.0.6', trusted)).toBe('10.0.0.5');
    // No header: the proxy itself.
    expect(resolveClientAddress('127.0.0.1', undefined, trusted)).toBe('127.0.0.1');
  });

  it('stops at an entry that is not an address, keeping the last trusted hop', () => {
    expect(resolveClientAddress('127.0.0.1', 'garbage', trusted)).toBe('127.0.0.1');
    expect(resolveClientAddress('127.0.0.1', '198.51.100.7, unknown, 10.0.0.1', trusted)).toBe('10.0.0.1');
    expect(resolveClientAddress('127.0.0.1', '', trusted)).toBe('127.0.0.1');
  });

  it('reads addresses with ports, brackets and zones the way proxies write them', () => {
    expect(canonicalAddress('198.51.100.7:5123')).toBe('198.51.100.7');
    expect(canonicalAddress('[2001:DB8::1]:443')).toBe('2001:db8::1');
    expect(canonicalAddress('[2001:db8::1]')).toBe('2001:db8::1');
    expect(canonicalAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(canonicalAddress('::FFFF:198.51.100.7')).toBe('198.51.100.7');
    expect(canonicalAddress('not an address')).toBe('');
    expect(canonicalAddress('999.1.1.1')).toBe('');
  });
});

describe('throttleKey', () => {
  it('keeps IPv4 addresses and groups IPv6 addresses by /64', () => {
    expect(throttleKey('198.51.100.7')).toBe('198.51.100.7');
    expect(throttleKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(throttleKey('2001:0db8:0001:0002:ffff:ffff:ffff:fffe')).toBe('2001:db8:1:2::/64');
    expect(throttleKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(throttleKey('::1')).toBe('0:0:0:0::/64');
    expect(throttleKey('2001:db8::')).toBe('2001:db8:0:0::/64');
    expect(throttleKey('64:ff9b::198.51.100.7')).toBe('64:ff9b:0:0::/64');
    expect(throttleKey('unknown')).toBe('unknown');
  });
});

describe('MIRROR_TRUST_PROXY', () => {
  const load = (env: Record<string, string>) => loadConfig({ env });

  it('reads a list from the environment and from the config file, each entry normalised to a CIDR block', () => {
    expect(load({ MIRROR_TRUST_PROXY: ' 10.0.0.1, 192.168.0.0/16 ,fd00::/8,' }).trustProxy).toEqual([
      '10.0.0.1/32',
      '192.168.0.0/16',
      'fd00::/8',
    ]);
    expect(loadConfig({ env: {}, overrides: { trustProxy: ['127.0.0.1'] } }).trustProxy).toEqual(['127.0.0.1/32']);
    expect(load({}).trustProxy).toEqual([]);
  });

  it('refuses anything that is not an address or CIDR, naming each bad entry', () => {
    let error: unknown;
    try {
      load({ MIRROR_TRUST_PROXY: '10.0.0.1, proxy.lan, 10.0.0.0/33, fd00::/129, 1.2.3.4/8/8, 10.0.0.0/x' });
    } catch (err) {
      error = err;
    }
    if (!isError(error, 'CONFIG_INVALID')) throw new Error('expected a CONFIG_INVALID error', { cause: error });
    const problems = error.details.problems;
    for (const bad of ['proxy.lan', '10.0.0.0/33', 'fd00::/129', '1.2.3.4/8/8', '10.0.0.0/x']) {
      expect(
        problems.some((p) => p.startsWith('MIRROR_TRUST_PROXY: ') && p.includes(JSON.stringify(bad))),
        bad,
      ).toBe(true);
    }
    expect(problems.some((p) => p.includes('"10.0.0.1"'))).toBe(false);
  });
});
