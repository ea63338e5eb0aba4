/**
 * Hostile and sloppy clients against a running server (in-process, port 0):
 * malformed requests, huge headers, Range fuzzing against an independent
 * oracle, path traversal on every route family, oversized and malformed
 * JSON, slowloris, and 200 concurrent mixed connections with bounded memory.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { putBlob, sha256Hex, startMirror, testBytes, testStream, type TestMirror } from '../helpers/env.js';
import { waitFor } from '../helpers/wait.js';
import { downloadSha256, listDir, request, sleep, tusCreate, tusPatchHeaders } from './helpers.js';

const MiB = 1024 * 1024;

/** Sends raw bytes on a fresh connection; resolves with everything the server sent until it closed (or maxWaitMs). */
function rawExchange(port: number, payload: string | Buffer, maxWaitMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, maxWaitMs);
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('close', done);
    socket.on('error', done);
    socket.write(payload);
  });
}

/** mulberry32: a small seeded PRNG, so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Expected = { kind: 'full' } | { kind: 'unsatisfiable' } | { kind: 'partial'; ranges: Array<[number, number]> };

/**
 * The oracle, written from RFC 9110 §14 and the README rather than from
 * server/http/range.ts: Range = range-unit "=" 1#range-spec, unit "bytes"
 * case-insensitively; list elements may be empty and have OWS around commas;
 * a spec is first-pos "-" [last-pos] or "-" suffix-length, digits only.
 * Any invalid spec (or last < first) invalidates the header → whole 200. A
 * spec is satisfiable if first-pos < size, or a suffix-length > 0. None
 * satisfiable → 416. More than 64 satisfiable ranges, or several that add up to more than
 * the file → whole 200 (README).
 * Ends past the last byte clamp; ranges are neither merged nor reordered.
 */
function oracle(header: string, size: number): Expected {
  // One leniency beyond the grammar, which the server shares (and its unit tests pin, e.g. "bytes= 1-2"):
  // optional whitespace around the unit and after "=". It changes no valid header's meaning.
  const m = /^[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*=(.*)$/s.exec(header);
  if (!m || m[1]!.toLowerCase() !== 'bytes') return { kind: 'full' };
  const elements = m[2]!.split(',').map((e) => e.replace(/^[ \t]+|[ \t]+$/g, ''));
  const specs = elements.filter((e) => e !== '');
  if (specs.length === 0) return { kind: 'full' };
  const size64 = BigInt(size);
  const ranges: Array<[number, number]> = [];
  for (const spec of specs) {
    const suffix = /^-([0-9]+)$/.exec(spec);
    const int = /^([0-9]+)-([0-9]*)$/.exec(spec);
    if (suffix) {
      const n = BigInt(suffix[1]!);
      if (n > 0n && size64 > 0n) ranges.push([Number(n >= size64 ? 0n : size64 - n), size - 1]);
    } else if (int) {
      const first = BigInt(int[1]!);
      const last = int[2] === '' ? null : BigInt(int[2]!);
      if (last !== null && last < first) return { kind: 'full' };
      if (first < size64) ranges.push([Number(first), Number(last === null || last >= size64 ? size64 - 1n : last)]);
    } else {
      return { kind: 'full' };
    }
  }
  if (ranges.length === 0) return { kind: 'unsatisfiable' };
  if (ranges.length > 64) return { kind: 'full' };
  // Several ranges adding up to more than the file (overlaps) → whole 200 (README, as Go does).
  if (ranges.length > 1 && ranges.reduce((n, [a, b]) => n + (b - a + 1), 0) > size) return { kind: 'full' };
  return { kind: 'partial', ranges };
}

/** Random Range headers: mostly plausible, a good share broken in the ways clients and fuzzers break them. */
function randomRange(rand: () => number, size: number): string {
  const int = (max: number): number => Math.floor(rand() * max);
  const pos = (): string => {
    const r = rand();
    if (r < 0.05) return '9'.repeat(16 + int(10)); // beyond 2^53
    if (r < 0.15) return String(size + int(50)); // at or past the end
    if (r < 0.2) return String(size - 1);
    return String(int(size));
  };
  const spec = (): string => {
    const r = rand();
    if (r < 0.35) {
      const a = pos();
      const b = rand() < 0.85 ? String(Number(a) + int(3000)) : pos(); // mostly ordered, some inverted
      return `${a}-${Number.isSafeInteger(Number(b)) ? b : pos()}`;
    }
    if (r < 0.55) return `${pos()}-`;
    if (r < 0.75) return `-${rand() < 0.1 ? '0' : rand() < 0.1 ? pos() : String(1 + int(size / 2))}`;
    const junk = ['', '-', '--5', '5', '1-2-3', '0x10-20', '+1-2', '1 -2', 'a-b', '-1-', '0-0', ' 3 - 4 '];
    return junk[int(junk.length)]!;
  };
  const sep = (): string => [',', ', ', ' ,', ' , ', ',\t', ',,', ', ,'][int(7)]!;
  const r = rand();
  if (r < 0.05)
    return ['', 'bytes', 'bytes=', 'bytes=,', 'items=0-5', 'bytes 0-5', '=0-5', 'bytes==0-5', 'bytes =0-5'][int(9)]!;
  const unit = rand() < 0.05 ? ['Bytes', 'BYTES', 'byte', 'bits'][int(4)]! : 'bytes';
  let count = 1;
  if (r > 0.6) count = 2 + int(5);
  if (r > 0.97) count = 62 + int(6); // around the 64-range cut-off
  const specs = Array.from({ length: count }, spec);
  if (count > 60) {
    // Only satisfiable specs, so the >64 rule is tested, not the junk.
    for (let i = 0; i < specs.length; i++) specs[i] = `${int(size)}-`;
  }
  return `${unit}=${specs.reduce((acc, s, i) => (i === 0 ? s : acc + sep() + s), '')}`;
}

/** Parses a multipart/byteranges body into its parts. */
function parseMultipart(
  body: Buffer,
  boundary: string,
  size: number,
): Array<{ range: [number, number]; type: string; data: Buffer }> {
  const parts: Array<{ range: [number, number]; type: string; data: Buffer }> = [];
  let at = 0;
  for (let i = 0; ; i++) {
    const delimiter = `${i === 0 ? '' : '\r\n'}--${boundary}`;
    expect(body.subarray(at, at + delimiter.length).toString('latin1')).toBe(delimiter);
    at += delimiter.length;
    if (body.subarray(at, at + 4).toString('latin1') === '--\r\n') {
      expect(at + 4).toBe(body.length);
      return parts;
    }
    expect(body.subarray(at, at + 2).toString('latin1')).toBe('\r\n');
    at += 2;
    const headerEnd = body.indexOf('\r\n\r\n', at, 'latin1');
    expect(headerEnd).toBeGreaterThan(at);
    const headers = Object.fromEntries(
      body
        .subarray(at, headerEnd)
        .toString('latin1')
        .split('\r\n')
        .map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    );
    at = headerEnd + 4;
    const cr = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headers['content-range'] ?? '');
    expect(cr, `part Content-Range: ${headers['content-range']}`).not.toBeNull();
    expect(Number(cr![3])).toBe(size);
    const start = Number(cr![1]);
    const end = Number(cr![2]);
    parts.push({
      range: [start, end],
      type: headers['content-type'] ?? '',
      data: body.subarray(at, at + end - start + 1),
    });
    at += end - start + 1;
  }
}

describe('bad input against a running server', () => {
  let mirror: TestMirror;
  let port: number;
  let token: string;
  const size = 10_007;
  const data = testBytes(size, 'range-fuzz');
  let sha: string;

  beforeAll(async () => {
    mirror = await startMirror();
    port = Number(new URL(mirror.url).port);
    token = (await createApiToken(mirror.runtime, systemActor, 'faults')).token;
    sha = await putBlob(mirror, data, 'fuzz.pvmp');
  });
  afterAll(async () => {
    await mirror?.close();
  });

  async function expectAlive(): Promise<void> {
    const res = await request(`${mirror.url}/healthz`, { agent: false });
    expect(res.status).toBe(200);
  }

  it('answers malformed request lines and oversized headers with 4xx and stays up', async () => {
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['garbage request line', 'GARBAGE\r\n\r\n', /^HTTP\/1\.1 400 /],
      ['binary junk', randomBytes(512), /^HTTP\/1\.1 400 /],
      ['unknown HTTP version', 'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 (400|505) /],
      ['NUL in the path', 'GET /d/\0/x HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 400 /],
      ['space in a header name', 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n', /^HTTP\/1\.1 400 /],
      ['bare LF line ends with a broken header', 'GET /healthz HTTP/1.1\nHost: x\nX\n\n', /^HTTP\/1\.1 400 /],
      [
        'Content-Length and Transfer-Encoding together (smuggling)',
        'POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        /^HTTP\/1\.1 400 /,
      ],
      [
        'negative Content-Length',
        'POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
        /^HTTP\/1\.1 400 /,
      ],
      [
        '100 KB header',
        `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`,
        /^HTTP\/1\.1 431 /,
      ],
      ['100 KB request target', `GET /d/${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, /^HTTP\/1\.1 431 /],
      [
        '3000 small headers',
        `GET /healthz HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-${i}: y`).join('\r\n')}\r\n\r\n`,
        /^HTTP\/1\.1 431 /,
      ],
      [
        '100 KB Range header on a download',
        `GET /d/${'0'.repeat(64)}/x.pvmp HTTP/1.1\r\nHost: x\r\nRange: bytes=${'0-1,'.repeat(25_000)}\r\n\r\n`,
        /^HTTP\/1\.1 431 /,
      ],
    ];
    for (const [name, payload, expected] of cases) {
      const answer = await rawExchange(port, payload);
      expect(answer, name).toMatch(expected);
      await expectAlive();
    }
  });

  it('answers 3000 random Range headers over keep-alive exactly as the oracle says', async () => {
    // FAULTS_RANGE_SEED replays (or varies) the fuzz run.
    const seed = Number(process.env.FAULTS_RANGE_SEED ?? 0x5eed_0001);
    const rand = prng(seed);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
    const url = `${mirror.url}/d/${sha}/fuzz.pvmp`;
    const total = 3000;
    const tally = {
      full: 0,
      partial: 0,
      multipart: 0,
      unsatisfiable: 0,
      reused: 0,
    };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const i = next++;
        const range = randomRange(rand, size);
        const head = rand() < 0.1;
        const res = await request(url, {
          method: head ? 'HEAD' : 'GET',
          headers: { Range: range },
          agent,
        });
        if (res.reused) tally.reused += 1;
        const want = oracle(range, size);
        const ctx = `#${i} (seed ${seed}) ${head ? 'HEAD' : 'GET'} Range: ${JSON.stringify(range)}`;
        if (want.kind === 'full') {
          tally.full += 1;
          expect(res.status, ctx).toBe(200);
          expect(res.headers['content-range'], ctx).toBeUndefined();
          expect(res.headers['content-length'], ctx).toBe(String(size));
          if (!head) expect(res.bytes.equals(data), ctx).toBe(true);
        } else if (want.kind === 'unsatisfiable') {
          tally.unsatisfiable += 1;
          expect(res.status, ctx).toBe(416);
          expect(res.headers['content-range'], ctx).toBe(`bytes */${size}`);
        } else if (want.ranges.length === 1) {
          tally.partial += 1;
          const [s, e] = want.ranges[0]!;
          expect(res.status, ctx).toBe(206);
          expect(res.headers['content-range'], ctx).toBe(`bytes ${s}-${e}/${size}`);
          expect(res.headers['content-length'], ctx).toBe(String(e - s + 1));
          if (!head) expect(res.bytes.equals(data.subarray(s, e + 1)), ctx).toBe(true);
        } else {
          tally.multipart += 1;
          expect(res.status, ctx).toBe(206);
          expect(res.headers['content-range'], ctx).toBeUndefined();
          const boundary = /^multipart\/byteranges; boundary=([^;\s]+)$/.exec(res.headers['content-type'] ?? '')?.[1];
          expect(boundary, ctx).toBeTruthy();
          if (!head) {
            expect(res.headers['content-length'], ctx).toBe(String(res.bytes.length));
            const parts = parseMultipart(res.bytes, boundary!, size);
            expect(
              parts.map((p) => p.range),
              ctx,
            ).toEqual(want.ranges);
            for (const p of parts) {
              expect(p.type, ctx).toBe('application/octet-stream');
              expect(p.data.equals(data.subarray(p.range[0], p.range[1] + 1)), ctx).toBe(true);
            }
          }
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    agent.destroy();
    // Every kind of answer was exercised, over reused connections.
    expect(tally.full).toBeGreaterThan(200);
    expect(tally.partial).toBeGreaterThan(200);
    expect(tally.multipart).toBeGreaterThan(200);
    expect(tally.unsatisfiable).toBeGreaterThan(30);
    expect(tally.reused).toBeGreaterThan(total * 0.9);
    await expectAlive();
  });

  it('never serves a file from outside the store, whatever the traversal or encoding, on any route family', async () => {
    // Things that must never appear in a 200 body.
    const canary = `CANARY-${randomBytes(8).toString('hex')}`;
    await fs.writeFile(path.join(mirror.dir, 'canary.txt'), canary);
    await fs.writeFile(path.join(path.dirname(mirror.dir), `canary-${path.basename(mirror.dir)}.txt`), canary);
    const secrets = [
      canary,
      'SQLite format 3',
      '"name": "goldmirror"',
      'root:x:0:0',
      'createDownloadHandler',
      'export function',
    ];
    const exists = await fs.readFile('/etc/passwd', 'utf8').catch(() => '');
    if (!exists.includes('root:x:0:0')) secrets.splice(secrets.indexOf('root:x:0:0'), 1);

    const prefixes = [
      '/d/',
      `/d/${sha}/`,
      `/d/${sha}`,
      '/api/v1/',
      '/api/v1/blobs/',
      '/api/v1/images/',
      '/api/v1/groups/',
      '/api/v1/uploads/',
      '/api/v1/export/',
      '/api/v1/fetch/',
      '/api/v1/tokens/',
      '/admin/',
      '/admin/assets/',
      '/admin/assets/copy.js/',
      '/metrics/',
      '/metrics',
      '/healthz/',
      '/',
      '//',
    ];
    const payloads = [
      '../../../../../../../../etc/passwd',
      '..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd',
      '%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
      '%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      '%2E%2E%2F%2E%2E%2F%2E%2E%2Fpackage.json',
      '..%5c..%5c..%5c..%5cetc%5cpasswd',
      '....//....//....//etc/passwd',
      '%252e%252e%252f%252e%252e%252fetc%252fpasswd',
      '..%c0%af..%c0%af..%c0%afetc%c0%afpasswd',
      '..%ef%bc%8f..%ef%bc%8fpackage.json',
      '/etc/passwd',
      '%2fetc%2fpasswd',
      '..;/..;/..;/package.json',
      '../goldmirror.db',
      '..%2fgoldmirror.db',
      '%2e%2e%2fcanary.txt',
      '..%2f..%2fpackage.json',
      '..%2f..%2f..%2fpackage.json',
      '..%2f..%2f..%2f..%2fpackage.json',
      '..%2f..%2fweb%2fapp.tsx',
      '..%2f..%2fserver%2fhttp%2fdownloads.ts',
      '%00../../../etc/passwd',
      '.%2e/.%2e/.%2e/.%2e/etc/passwd',
      'x/../../../../../../etc/passwd',
      '..\\..\\..\\..\\etc\\passwd',
      `${'..%2f'.repeat(40)}etc%2fpasswd`,
      '%',
      '%zz%2',
    ];
    let checked = 0;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    for (const prefix of prefixes) {
      for (const payload of payloads) {
        for (const auth of [true, false]) {
          for (const method of ['GET', 'HEAD']) {
            const target = prefix + payload;
            const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
              // The path goes out exactly as written: node's client does not normalise it.
              const req = http.request(
                {
                  host: '127.0.0.1',
                  port,
                  path: target,
                  method,
                  agent,
                  headers: auth ? { Authorization: `Bearer ${token}` } : {},
                },
                (r) => {
                  const chunks: Buffer[] = [];
                  r.on('data', (d: Buffer) => chunks.push(d));
                  r.on('end', () =>
                    resolve({
                      status: r.statusCode ?? 0,
                      body: Buffer.concat(chunks).toString('latin1'),
                    }),
                  );
                },
              );
              req.on('error', reject);
              req.end();
            }).catch((err: Error) => ({ status: -1, body: err.message }));
            const ctx = `${method} ${target}${auth ? ' (with token)' : ''} → ${res.status}`;
            checked += 1;
            expect(res.status, ctx).toBeGreaterThanOrEqual(200);
            expect(res.status, `${ctx}: ${res.body.slice(0, 200)}`).toBeLessThan(500);
            for (const secret of secrets)
              expect(res.body.includes(secret), `${ctx} leaked ${JSON.stringify(secret)}`).toBe(false);
            // A link with a traversal in its name is malformed (400) or has too many segments (404); a name that
            // only looks like one after a second decoding (%252e) is a plain cosmetic name: the blob itself, nothing else.
            if (prefix === `/d/${sha}/`) {
              if (res.status === 200)
                expect(method === 'HEAD' ? '' : res.body, ctx).toBe(method === 'HEAD' ? '' : data.toString('latin1'));
              else expect([400, 404], ctx).toContain(res.status);
            }
          }
        }
      }
    }
    agent.destroy();
    expect(checked).toBe(prefixes.length * payloads.length * 4);
    await expectAlive();
  });

  it('refuses API bodies over 1 MiB with 413 and malformed JSON with 400 (with a valid token)', async () => {
    const auth = { Authorization: `Bearer ${token}` };
    // One keep-alive connection pool for all of it: a refused body must not leave a dead socket behind.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (p: string, headers: Record<string, string>, body: string | AsyncIterable<Uint8Array>) =>
      request(`${mirror.url}/api/v1${p}`, {
        method: 'POST',
        headers,
        body,
        agent,
      });
    try {
      const big = JSON.stringify({ name: 'big', pad: 'x'.repeat(1.5 * MiB) });
      for (let i = 0; i < 3; i++) {
        const sized = await post('/groups', { ...auth, 'Content-Type': 'application/json' }, big);
        expect(sized.status).toBe(413);
        expect(JSON.parse(sized.body)).toMatchObject({
          error: { code: 'PAYLOAD_TOO_LARGE' },
        });
        expect(sized.headers.connection).toBe('close');
      }
      // Without a Content-Length (chunked), the limit is counted as the body streams.
      async function* chunked(): AsyncGenerator<Buffer> {
        for (let i = 0; i < 24; i++)
          yield Buffer.from(i === 0 ? `{"name":"big","pad":"${'y'.repeat(64 * 1024)}` : 'y'.repeat(64 * 1024));
        yield Buffer.from('"}');
      }
      const streamed = await post(
        '/groups',
        {
          ...auth,
          'Content-Type': 'application/json',
          'Transfer-Encoding': 'chunked',
        },
        chunked(),
      );
      expect(streamed.status).toBe(413);
      // Before sign-in too: the public session route has the same limit.
      const login = await post('/session', { 'Content-Type': 'application/json' }, big);
      expect(login.status).toBe(413);

      for (const body of ['{"name": ', '{name: "x"}', '\u0000', '{"name":"x"}}', '[1,2', '"\\u12"', '']) {
        const res = await post('/groups', { ...auth, 'Content-Type': 'application/json' }, body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(JSON.parse(res.body), body).toMatchObject({
          error: { code: 'BAD_REQUEST' },
        });
      }
      const wrongType = await post('/groups', { ...auth, 'Content-Type': 'text/plain' }, '{"name":"x"}');
      expect(wrongType.status).toBe(400);
      const fine = await post('/groups', { ...auth, 'Content-Type': 'application/json' }, '{"name":"json-ok"}');
      expect(fine.status, fine.body).toBe(201);
    } finally {
      agent.destroy();
    }
  });

  it('frees slowloris sockets (headers at 1 byte per second) by headersTimeout, and keeps serving meanwhile', async () => {
    // connectionsCheckingInterval is a real (writable) property of http.Server missing from @types/node 20.
    const server = mirror.server.server as http.Server & {
      connectionsCheckingInterval: number;
    };
    const saved = {
      headersTimeout: server.headersTimeout,
      interval: server.connectionsCheckingInterval,
    };
    // 30 s is too slow for a test: lower headersTimeout on the running server. Node checks it on a
    // timer (connectionsCheckingInterval, 30 s, armed at listen), so re-arm that timer shorter too.
    const rearm = (): void => {
      for (const listener of server.listeners('listening')) {
        if ((listener as { name?: string }).name === 'setupConnectionsTracking') (listener as () => void).call(server);
      }
    };
    server.headersTimeout = 2000;
    server.connectionsCheckingInterval = 250;
    rearm();
    const sockets: Array<{
      socket: net.Socket;
      closedAfterMs: number | null;
      answer: string;
    }> = [];
    const timers: NodeJS.Timeout[] = [];
    try {
      const started = Date.now();
      for (let i = 0; i < 20; i++) {
        const entry = {
          socket: net.connect(port, '127.0.0.1'),
          closedAfterMs: null as number | null,
          answer: '',
        };
        entry.socket.on('data', (d: Buffer) => (entry.answer += d.toString('latin1')));
        entry.socket.on('close', () => (entry.closedAfterMs = Date.now() - started));
        entry.socket.on('error', () => undefined);
        entry.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        const drip = 'X-Slow: ' + 'a'.repeat(60);
        let at = 0;
        timers.push(
          setInterval(() => {
            if (!entry.socket.destroyed && at < drip.length) entry.socket.write(drip[at++]!);
          }, 1000),
        );
        sockets.push(entry);
      }
      // Meanwhile the server serves everyone else.
      await sleep(1000);
      await expectAlive();
      await waitFor(() => sockets.every((s) => s.closedAfterMs !== null), { timeoutMs: 15_000, intervalMs: 100 }).catch(
        () => undefined,
      );
      for (const s of sockets) {
        expect(s.closedAfterMs, 'a slowloris socket was never closed').not.toBeNull();
        expect(s.closedAfterMs!).toBeGreaterThanOrEqual(1500);
        expect(s.closedAfterMs!).toBeLessThan(2000 + 3000);
        expect(s.answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      }
      await expectAlive();
    } finally {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.socket.destroy();
      server.headersTimeout = saved.headersTimeout;
      server.connectionsCheckingInterval = saved.interval;
      rearm();
    }
  });

  it('handles 200 concurrent connections mixing downloads, tus uploads and API calls, with bounded memory', async () => {
    const bigSize = 16 * MiB;
    const bigData = testBytes(bigSize, 'concurrent-big');
    const bigSha = await putBlob(mirror, bigData, 'big.pvmp');
    const uploadSize = 3 * MiB + 17;
    const uploads = 40;
    const downloads = 120;
    const apiCalls = 40;
    const expectedUploads = Array.from({ length: uploads }, (_, i) => sha256Hex(testBytes(uploadSize, `up-${i}`)));
    // Warm up (first-use allocations), then take the baseline.
    await downloadSha256(`${mirror.url}/d/${bigSha}/big.pvmp`, {}, undefined);
    await sleep(200);
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
    let moved = 0;
    const auth = { Authorization: `Bearer ${token}` };
    try {
      const download = async (_: unknown, i: number): Promise<void> => {
        // Eight loopback client addresses: 120 downloads from one address would exceed the per-client cap (16).
        const agent = new http.Agent({ keepAlive: false, localAddress: `127.0.0.${2 + (i % 8)}` });
        const res = await downloadSha256(`${mirror.url}/d/${bigSha}/big.pvmp`, {}, agent);
        expect(res).toEqual({ status: 200, sha256: bigSha, bytes: bigSize });
        moved += res.bytes;
      };
      const upload = async (i: number): Promise<void> => {
        const { res, uploadUrl } = await tusCreate(mirror.url, token, {
          length: uploadSize,
          filename: `up-${i}.pvmp`,
        });
        expect(res.status, res.body).toBe(201);
        const done = await request(uploadUrl!, {
          method: 'PATCH',
          headers: tusPatchHeaders(token, 0, { 'Content-Length': uploadSize }),
          body: testStream(uploadSize, `up-${i}`, 256 * 1024),
          agent: false,
        });
        expect(done.status, done.body).toBe(204);
        expect(done.headers['upload-sha256']).toBe(expectedUploads[i]);
        moved += uploadSize;
      };
      const api = async (i: number): Promise<void> => {
        const calls: Array<() => Promise<void>> = [
          async () => {
            const r = await request(`${mirror.url}/api/v1/blobs`, {
              headers: auth,
              agent: false,
            });
            expect(r.status).toBe(200);
          },
          async () => {
            const r = await request(`${mirror.url}/api/v1/groups`, {
              method: 'POST',
              headers: { ...auth, 'Content-Type': 'application/json' },
              body: JSON.stringify({ name: `concurrent-${i}` }),
              agent: false,
            });
            expect(r.status, r.body).toBe(201);
          },
          async () => {
            const r = await request(`${mirror.url}/metrics`, {
              headers: auth,
              agent: false,
            });
            expect(r.status).toBe(200);
          },
          async () => {
            const r = await request(`${mirror.url}/d/${sha}/fuzz.pvmp`, {
              headers: { Range: 'bytes=0-99,200-299' },
              agent: false,
            });
            expect(r.status).toBe(206);
          },
        ];
        await calls[i % calls.length]!();
      };
      await Promise.all([
        ...Array.from({ length: downloads }, download),
        ...Array.from({ length: uploads }, (_, i) => upload(i)),
        ...Array.from({ length: apiCalls }, (_, i) => api(i)),
      ]);
    } finally {
      clearInterval(sampler);
    }
    const growth = peak - baseline;
    expect(moved).toBe(downloads * bigSize + uploads * uploadSize);
    // Flat memory: the growth is a small fraction of what went through (buffers are per connection, not per byte).
    expect(growth, `rss grew ${Math.round(growth / MiB)} MiB while moving ${Math.round(moved / MiB)} MiB`).toBeLessThan(
      moved / 4,
    );
    expect(growth).toBeLessThan(384 * MiB);
    expect(await listDir(path.join(mirror.dir, 'uploads'))).toEqual([]);
    expect(await listDir(path.join(mirror.dir, 'tmp'))).toEqual([]);
    await expectAlive();
  });
});
