/**
 * The download caps (MIRROR_MAX_DOWNLOADS, MIRROR_MAX_DOWNLOADS_PER_CLIENT)
 * against a real server: stalled clients hold their slots, the next one gets
 * 503 TOO_MANY_DOWNLOADS with Retry-After before any byte of a 200, and what
 * is not a long download (HEAD, the .sha256 line, small ranges) is never refused.
 * Clients use several loopback source addresses (127.0.0.2, …) to be different clients.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingest } from '../../server/services/ingest.js';
import { startMirror, testStream, type TestMirror } from '../helpers/env.js';
import { httpRequest, type HttpReply } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;

type Reply = HttpReply;

function get(
  mirror: TestMirror,
  urlPath: string,
  options: { from?: string; method?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const { port } = new URL(mirror.url);
  return httpRequest(`http://127.0.0.1:${port}${urlPath}`, {
    method: options.method,
    headers: options.headers,
    localAddress: options.from ?? '127.0.0.1',
  });
}

/** A client that sends a GET and never reads; resolves once the server counts its download. */
async function stalledDownload(
  mirror: TestMirror,
  urlPath: string,
  from: string,
  forwardedFor?: string,
): Promise<net.Socket> {
  const { port } = new URL(mirror.url);
  const before = await slotsUsed(mirror);
  const socket = net.connect({ port: Number(port), host: '127.0.0.1', localAddress: from });
  socket.on('error', () => undefined);
  socket.pause();
  const forwarded = forwardedFor === undefined ? '' : `X-Forwarded-For: ${forwardedFor}\r\n`;
  socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${forwarded}\r\n`);
  await waitFor(async () => (await slotsUsed(mirror)) > before);
  return socket;
}

async function slotsUsed(mirror: TestMirror): Promise<number> {
  return (await mirror.runtime.metrics.downloadSlotsUsed.get()).values[0]?.value ?? 0;
}

async function refused(mirror: TestMirror, scope: 'total' | 'client'): Promise<number> {
  return (await mirror.runtime.metrics.downloadsRefused.get()).values.find((v) => v.labels.scope === scope)?.value ?? 0;
}

function expectRefusal(reply: Reply, scope: 'total' | 'client', limit: number): void {
  expect(reply.status).toBe(503);
  expect(reply.headers['retry-after']).toMatch(/^[1-9]\d*$/);
  expect(reply.headers['content-type']).toMatch(/^application\/json/);
  expect(reply.headers['cache-control']).toBe('no-store');
  expect(reply.headers['content-disposition']).toBeUndefined();
  expect(reply.headers['content-length']).toBe(String(reply.bytes.length));
  const { error } = JSON.parse(reply.bytes.toString('utf8')) as {
    error: { code: string; message: string; scope: string; limit: number };
  };
  expect(error).toMatchObject({ code: 'TOO_MANY_DOWNLOADS', scope, limit });
  expect(error.message).toMatch(/try again/);
}

describe('download caps', () => {
  let mirror: TestMirror;
  let link: string;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    mirror = await startMirror({ maxDownloads: 3, maxDownloadsPerClient: 2 });
    const { blob } = await ingest(mirror.runtime.ingestDeps, {
      source: testStream(32 * MiB, 'caps'),
      fileName: 'caps.pvmp',
    });
    link = `/d/${blob.sha256}/caps.pvmp`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await mirror?.close();
  });

  it('refuses a client beyond its own cap and the mirror beyond its total with 503 and Retry-After; frees slots as clients go', async () => {
    sockets.push(await stalledDownload(mirror, link, '127.0.0.1'));
    sockets.push(await stalledDownload(mirror, link, '127.0.0.1'));
    expect(await slotsUsed(mirror)).toBe(2);

    // Third from the same client: its cap (2) is full, even though the mirror has a slot left.
    expectRefusal(await get(mirror, link, { from: '127.0.0.1' }), 'client', 2);
    // A long range counts like a whole download.
    expectRefusal(
      await get(mirror, link, { from: '127.0.0.1', headers: { Range: `bytes=0-${4 * MiB}` } }),
      'client',
      2,
    );
    expect(await refused(mirror, 'client')).toBe(2);

    // Another client takes the last slot; then the mirror is full for everyone.
    sockets.push(await stalledDownload(mirror, link, '127.0.0.2'));
    expect(await slotsUsed(mirror)).toBe(3);
    expectRefusal(await get(mirror, link, { from: '127.0.0.3' }), 'total', 3);
    expect(await refused(mirror, 'total')).toBe(1);

    // Not long downloads: never refused, and they take no slot.
    const head = await get(mirror, link, { from: '127.0.0.1', method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(32 * MiB));
    const checksum = await get(mirror, `${link}.sha256`, { from: '127.0.0.1' });
    expect(checksum.status).toBe(200);
    const window = await get(mirror, link, { from: '127.0.0.3', headers: { Range: `bytes=${MiB}-${2 * MiB - 1}` } });
    expect(window.status).toBe(206);
    expect(window.bytes.length).toBe(MiB);
    expect(await slotsUsed(mirror)).toBe(3);

    // A client that goes away frees its slot at once.
    sockets.shift()!.destroy();
    await waitFor(async () => (await slotsUsed(mirror)) === 2);
    const full = await get(mirror, link, { from: '127.0.0.3' });
    expect(full.status).toBe(200);
    expect(full.bytes.length).toBe(32 * MiB);
    // ...and so does a finished download.
    expect(await slotsUsed(mirror)).toBe(2);
  });

  it('shows the slots and refusals in /metrics', async () => {
    const text = await mirror.runtime.metrics.registry.metrics();
    expect(text).toMatch(/^goldmirror_download_slots_used 2$/m);
    expect(text).toMatch(/^goldmirror_download_slots_max 3$/m);
    expect(text).toMatch(/^goldmirror_downloads_refused_total\{scope="client"\} 2$/m);
    expect(text).toMatch(/^goldmirror_downloads_refused_total\{scope="total"\} 1$/m);
  });
});

describe('download caps set to 0', () => {
  let mirror: TestMirror;
  afterAll(async () => {
    await mirror?.close();
  });

  it('mean no cap', async () => {
    mirror = await startMirror({ maxDownloads: 0, maxDownloadsPerClient: 0 });
    const { blob } = await ingest(mirror.runtime.ingestDeps, {
      source: testStream(24 * MiB, 'uncapped'),
      fileName: 'u.pvmp',
    });
    const link = `/d/${blob.sha256}/u.pvmp`;
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < 40; i += 1) sockets.push(await stalledDownload(mirror, link, '127.0.0.1'));
      expect(await slotsUsed(mirror)).toBe(40);
      expect((await get(mirror, link)).status).toBe(200);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});

describe('the per-client cap behind a trusted reverse proxy (MIRROR_TRUST_PROXY)', () => {
  let mirror: TestMirror;
  let link: string;
  const sockets: net.Socket[] = [];
  beforeAll(async () => {
    // 127.0.0.1 plays the proxy; every Mac behind it reaches the mirror from that one address.
    mirror = await startMirror({ maxDownloads: 0, maxDownloadsPerClient: 1, trustProxy: '127.0.0.1' });
    const { blob } = await ingest(mirror.runtime.ingestDeps, {
      source: testStream(8 * MiB, 'caps-proxy'),
      fileName: 'p.pvmp',
    });
    link = `/d/${blob.sha256}/p.pvmp`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await mirror?.close();
  });

  it('counts each Mac the proxy forwards for, not the proxy, and believes X-Forwarded-For only from the proxy', async () => {
    sockets.push(await stalledDownload(mirror, link, '127.0.0.1', '192.168.1.20'));
    sockets.push(await stalledDownload(mirror, link, '127.0.0.1', '192.168.1.21'));
    expect(await slotsUsed(mirror)).toBe(2);
    // The same Mac again is over its own cap of 1, whatever it wrote further left in the header.
    const again = await get(mirror, link, { from: '127.0.0.1', headers: { 'X-Forwarded-For': '192.168.1.20' } });
    expectRefusal(again, 'client', 1);
    const spoofed = await get(mirror, link, {
      from: '127.0.0.1',
      headers: { 'X-Forwarded-For': '10.9.9.9, 192.168.1.21' },
    });
    expectRefusal(spoofed, 'client', 1);
    // A peer that is not the proxy counts as itself: its own X-Forwarded-For does not move it into a free slot.
    sockets.push(await stalledDownload(mirror, link, '127.0.0.2', '192.168.1.22'));
    expectRefusal(
      await get(mirror, link, { from: '127.0.0.2', headers: { 'X-Forwarded-For': '192.168.1.23' } }),
      'client',
      1,
    );
    expect(await slotsUsed(mirror)).toBe(3);
  });
});
