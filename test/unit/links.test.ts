/** The pure parts of server/links.ts: validating a public address, judging its host, quoting for a shell. */
import { describe, expect, it } from 'vitest';
import { addressWarnings, curlCommand, downloadUrl, parsePublicUrl, shellQuote } from '../../server/links.js';

describe('parsePublicUrl', () => {
  it('normalises what it accepts', () => {
    expect(parsePublicUrl(' http://Mirror.LAN:8080/ ')).toBe('http://mirror.lan:8080');
    expect(parsePublicUrl('https://intranet.example/mirror/')).toBe('https://intranet.example/mirror');
    expect(parsePublicUrl('http://mirror.lan:80')).toBe('http://mirror.lan');
    expect(parsePublicUrl('http://192.168.1.20:8080')).toBe('http://192.168.1.20:8080');
    expect(parsePublicUrl('http://[FD00::5]:8080')).toBe('http://[fd00::5]:8080');
  });

  it('refuses credentials, queries, fragments, other schemes and links instead of addresses, naming the field', () => {
    for (const [text, message] of [
      ['http://u:p@mirror.lan', /user name or password/],
      ['http://:p@mirror.lan', /user name or password/],
      ['http://mirror.lan?', /query/],
      ['http://mirror.lan#', /fragment/],
      ['file:///srv/mirror', /http:\/\/ or https:\/\//],
      ['http://mirror.lan/d/abc', /not a download link/],
      ['http://mirror.lan/api/v1', /without \/admin or \/api/],
      ['/relative', /absolute URL/],
    ] as const) {
      let thrown: unknown;
      try {
        parsePublicUrl(text, 'url');
      } catch (err) {
        thrown = err;
      }
      expect(thrown, text).toMatchObject({
        code: 'VALIDATION_FAILED',
        message: expect.stringMatching(message) as string,
      });
    }
    try {
      parsePublicUrl('nope', 'publicUrl');
    } catch (err) {
      expect((err as { details: unknown }).details).toEqual({
        fields: [{ field: 'publicUrl', message: expect.any(String) as string }],
      });
    }
  });
});

describe('addressWarnings', () => {
  it('warns about hosts no Mac can reach this mirror at', () => {
    for (const url of [
      'http://localhost:8080',
      'http://LOCALHOST',
      'http://x.localhost',
      'http://127.0.0.1',
      'http://127.8.9.10:1',
      'http://[::1]',
      'http://[::ffff:127.0.0.1]',
      'http://169.254.1.1',
      'http://[fe80::1]',
      'http://0.0.0.0',
      'http://[::]',
      'http://224.0.0.1',
      'http://255.255.255.255',
      'http://[ff02::1]',
    ]) {
      expect(addressWarnings(url), url).toHaveLength(1);
      expect(addressWarnings(url)[0]).toMatch(/^Macs cannot reach this mirror at /);
    }
  });

  it('says nothing about LAN addresses and names', () => {
    for (const url of [
      'http://192.168.0.2',
      'http://10.1.2.3:8080',
      'http://172.16.0.1',
      'http://mirror',
      'http://mirror.local',
      'https://m.example.com',
      'http://[fd12::1]',
      'http://[2001:db8::1]',
    ]) {
      expect(addressWarnings(url), url).toEqual([]);
    }
  });
});

describe('curl line', () => {
  it('quotes only when the shell needs it', () => {
    const sha = '0'.repeat(64);
    expect(curlCommand(downloadUrl('http://mirror.lan:8080', sha, 'Win11-arm.pvmp'))).toBe(
      `curl -I http://mirror.lan:8080/d/${sha}/Win11-arm.pvmp`,
    );
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
  });
});
