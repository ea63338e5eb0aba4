/**
 * The outbound address guard (server/net/outbound.ts) through the real pull
 * path (fetchIntoStore) and the client itself, against real node:http peers
 * on loopback: loopback, link-local, unspecified and the mirror's own
 * addresses are refused unless MIRROR_FETCH_ALLOW lists them, on every
 * redirect hop and after DNS resolution, before any request reaches the peer.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { isError } from '../../server/errors.js';
import { fetchIntoStore } from '../../server/bundles/fetch.js';
import { createLogger } from '../../server/log.js';
import { createAddressCheck, createOutboundFetch } from '../../server/net/outbound.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import type { Sha256 } from '../../storage/digest.js';
import { containing, matching } from '../helpers/api.js';
import { storedFiles } from '../helpers/blobs.js';
import { makeTempDir, sha256Hex, testBytes, testConfig } from '../helpers/env.js';

interface Peer {
  url: string;
  port: number;
  hits: Array<{ url: string; authorization: string | undefined }>;
  close(): Promise<void>;
}

/** A node:http server on `host`: /file.pvmp serves `data`, /to?u=URL redirects there, /loop redirects to itself. */
async function startPeer(host: string, data: Buffer): Promise<Peer> {
  const hits: Peer['hits'] = [];
  const server = http.createServer((req, res) => {
    hits.push({ url: req.url ?? '', authorization: req.headers.authorization });
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/to') return void res.writeHead(302, { Location: url.searchParams.get('u') ?? '/' }).end();
    if (url.pathname === '/loop') return void res.writeHead(307, { Location: '/loop' }).end();
    if (url.pathname === '/file.pvmp') return void res.writeHead(200, { 'Content-Length': data.length }).end(data);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    port,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const data = testBytes(256 * 1024 + 5, 'outbound');
const digest = sha256Hex(data) as Sha256;
const fast = { retryDelayMs: 5, maxRetries: 2 };

describe('outbound fetches refuse loopback, link-local, unspecified and own addresses', () => {
  let peer: Peer;
  let other: Peer;
  let dir: string;
  let strict: Runtime;
  let opened: Runtime;
  beforeAll(async () => {
    peer = await startPeer('127.0.0.1', data);
    other = await startPeer('127.0.0.2', data);
    dir = await makeTempDir();
    // No MIRROR_FETCH_ALLOW at all, and one that opens only 127.0.0.2.
    strict = await openRuntime(testConfig(`${dir}/strict`, { fetchAllow: '' }), createLogger('silent'));
    opened = await openRuntime(testConfig(`${dir}/opened`, { fetchAllow: '127.0.0.2/32' }), createLogger('silent'));
  });
  afterAll(async () => {
    await strict?.close();
    await opened?.close();
    await peer?.close();
    await other?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function nothingStored(runtime: Runtime): Promise<void> {
    expect(await runtime.db.selectFrom('blobs').select('sha256').execute()).toEqual([]);
    expect(await storedFiles(runtime, 'tmp')).toEqual({});
  }

  it('refuses a loopback URL by default, by IP and by a name that resolves to it, before the peer sees a request', async () => {
    await expect(fetchIntoStore(strict.ingestDeps, `${peer.url}/file.pvmp`, fast)).rejects.toMatchObject({
      code: 'FETCH_ADDRESS_REFUSED',
      message: matching(
        /^refusing to fetch from 127\.0\.0\.1: it is a loopback address, .* add it to MIRROR_FETCH_ALLOW \(e\.g\. MIRROR_FETCH_ALLOW=127\.0\.0\.1\/32\)$/,
      ),
    });
    await expect(
      fetchIntoStore(strict.ingestDeps, `http://localhost:${peer.port}/file.pvmp`, fast),
    ).rejects.toMatchObject({
      code: 'FETCH_ADDRESS_REFUSED',
      message: containing('(localhost resolves to it): it is a loopback address'),
    });
    await expect(
      fetchIntoStore(strict.ingestDeps, `${peer.url}/x.pvmp`, { ...fast, checksumUrl: `${peer.url}/x.sha256` }),
    ).rejects.toMatchObject({
      code: 'FETCH_ADDRESS_REFUSED',
    });
    expect(peer.hits).toEqual([]);
    await nothingStored(strict);
  });

  it('refuses link-local, unspecified and IPv4-mapped loopback literals without connecting', async () => {
    const cases: Array<[string, RegExp]> = [
      ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254: it is a link-local address/],
      ['http://[fe80::1]/x.pvmp', /fe80::1: it is a link-local address/],
      [`http://0.0.0.0:${peer.port}/file.pvmp`, /0\.0\.0\.0: it is an unspecified address/],
      [`http://[::]:${peer.port}/file.pvmp`, /:: it is an unspecified address/],
      [`http://[::ffff:127.0.0.1]:${peer.port}/file.pvmp`, /::ffff:7f00:1: it is a loopback address/],
    ];
    for (const [url, message] of cases) {
      await expect(fetchIntoStore(strict.ingestDeps, url, fast), url).rejects.toMatchObject({
        code: 'FETCH_ADDRESS_REFUSED',
        message: matching(message),
      });
    }
    expect(peer.hits).toEqual([]);
    await nothingStored(strict);
  });

  it('refuses the addresses the mirror listens on: its listen host, or every interface address behind a wildcard', async () => {
    const pinned = createAddressCheck({ allow: [], listenHost: '198.51.100.7' });
    expect(await pinned('198.51.100.7')).toBe('an address this mirror listens on');
    expect(await pinned('198.51.100.8')).toBeNull();
    expect(await pinned('10.1.2.3')).toBeNull(); // the LAN stays reachable
    expect(
      await createAddressCheck({ allow: ['198.51.100.0/24'], listenHost: '198.51.100.7' })('198.51.100.7'),
    ).toBeNull();
    const wildcard = createAddressCheck({ allow: [], listenHost: '0.0.0.0' });
    const own = Object.values(os.networkInterfaces())
      .flatMap((list) => list ?? [])
      .filter((i) => !i.internal && !i.address.startsWith('fe80'))
      .map((i) => i.address);
    for (const address of own) expect(await wildcard(address), address).toBe('an address this mirror listens on');
  });

  it('MIRROR_FETCH_ALLOW opens exactly what it lists', async () => {
    const { blob } = await fetchIntoStore(opened.ingestDeps, `${other.url}/file.pvmp`, {
      ...fast,
      expectedSha256: digest,
    });
    expect(blob.sha256).toBe(digest);
    await expect(fetchIntoStore(opened.ingestDeps, `${peer.url}/file.pvmp`, fast)).rejects.toMatchObject({
      code: 'FETCH_ADDRESS_REFUSED',
    });
    expect(peer.hits).toEqual([]);
    await opened.db.deleteFrom('blobs').execute();
    await (await opened.store.detach(digest))?.discard();
  });

  it('checks every redirect hop: an allowed server redirecting to loopback, by IP or by name, is refused at that hop', async () => {
    for (const target of [`${peer.url}/file.pvmp`, `http://localhost:${peer.port}/file.pvmp`]) {
      const start = `${other.url}/to?u=${encodeURIComponent(target)}`;
      await expect(fetchIntoStore(opened.ingestDeps, start, fast), target).rejects.toMatchObject({
        code: 'FETCH_ADDRESS_REFUSED',
        message: matching(/^refusing to fetch from 127\.0\.0\.1[ :]/),
      });
    }
    expect(other.hits.filter((h) => h.url.startsWith('/to'))).toHaveLength(2);
    expect(peer.hits).toEqual([]);
    await nothingStored(opened);
  });

  it('follows at most 5 redirects, and drops credentials when a redirect changes the origin', async () => {
    const client = createOutboundFetch({ allow: ['127.0.0.0/8'], listenHost: '127.0.0.1' });
    await expect(client(`${other.url}/loop`)).rejects.toMatchObject({
      code: 'SOURCE_FAILED',
      message: containing('redirected more than 5 times'),
    });
    expect(other.hits.filter((h) => h.url === '/loop')).toHaveLength(6);

    peer.hits.length = 0;
    other.hits.length = 0;
    const auth = { Authorization: 'Bearer gm_secret' };
    const crossOrigin = await client(`${other.url}/to?u=${encodeURIComponent(`${peer.url}/file.pvmp`)}`, {
      headers: auth,
    });
    expect(crossOrigin.status).toBe(200);
    expect(Buffer.from(await crossOrigin.arrayBuffer()).equals(data)).toBe(true);
    expect(other.hits[0]!.authorization).toBe('Bearer gm_secret');
    expect(peer.hits[0]!.authorization).toBeUndefined();
    const sameOrigin = await client(`${peer.url}/to?u=/file.pvmp`, { headers: auth });
    await sameOrigin.arrayBuffer();
    expect(peer.hits.at(-1)).toEqual({ url: '/file.pvmp', authorization: 'Bearer gm_secret' });
  });
});

describe('MIRROR_FETCH_ALLOW and MIRROR_FETCH_CONCURRENCY settings', () => {
  it('are validated at start, every problem named, and normalised', () => {
    expect(
      loadConfig({ env: { MIRROR_FETCH_ALLOW: '127.0.0.0/8, ::1 [fd00::]/8', MIRROR_FETCH_CONCURRENCY: '4' } }),
    ).toMatchObject({
      fetchAllow: ['127.0.0.0/8', '::1/128', 'fd00::/8'],
      fetchConcurrency: 4,
    });
    expect(loadConfig({ env: {} })).toMatchObject({ fetchAllow: [], fetchConcurrency: 2 });
    let problems: readonly string[] = [];
    try {
      loadConfig({ env: { MIRROR_FETCH_ALLOW: '10.0.0.0/33, localhost', MIRROR_FETCH_CONCURRENCY: '0' } });
    } catch (err) {
      if (isError(err, 'CONFIG_INVALID')) problems = err.details.problems;
    }
    expect(problems).toEqual([
      'MIRROR_FETCH_ALLOW: "10.0.0.0/33" has an invalid prefix length (0 to 32 for IPv4)',
      'MIRROR_FETCH_ALLOW: "localhost" is not an IP address or CIDR block (e.g. 10.0.0.0/8 or fd00::/8)',
      'MIRROR_FETCH_CONCURRENCY: Too small: expected number to be >=1',
    ]);
  });
});
