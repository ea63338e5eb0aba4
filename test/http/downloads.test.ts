/**
 * The public download links against a real goldmirror on 127.0.0.1:<ephemeral>,
 * real sockets and real blob files. node:http and raw net sockets are used
 * where fetch would hide or rewrite things (HEAD bodies, `..` in paths,
 * encoded slashes, connection teardown).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readlinkSync, realpathSync } from 'node:fs';
import fs from 'node:fs/promises';
import http, { type IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingest } from '../../server/services/ingest.js';
import type { Sha256 } from '../../storage/digest.js';
import { removeStored, truncateStored } from '../helpers/blobs.js';
import { putBlob, sha256Hex, startMirror, testBytes, testStream, type TestMirror } from '../helpers/env.js';
import { httpRequest, type HttpReply } from '../helpers/http.js';
import { onS3 } from '../helpers/s3.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;

type Reply = HttpReply;

/** Writes `head` verbatim on a raw socket and returns every byte the server sends until it closes. */
function rawExchange(base: string, head: string): Promise<Buffer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(head));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}

function errorCode(reply: Reply): string {
  expect(reply.headers['content-type']).toMatch(/^application\/json/);
  const parsed = JSON.parse(reply.bytes.toString('utf8')) as {
    error?: { code?: string; message?: string };
  };
  expect(typeof parsed.error?.message).toBe('string');
  return parsed.error?.code ?? '';
}

/** Response headers that must agree between GET and HEAD: all but Date and the random multipart boundary. */
function comparableHeaders(headers: IncomingHttpHeaders): Record<string, unknown> {
  const rest = { ...headers };
  delete rest.date;
  const type = rest['content-type'];
  if (type?.startsWith('multipart/byteranges')) rest['content-type'] = type.replace(/boundary=[^;]+/, 'boundary=*');
  return rest;
}

interface Part {
  headers: Record<string, string>;
  data: Buffer;
}

/** A multipart body parser written from RFC 2046 §5.1.1, independent of the server's code. */
function parseMultipart(body: Buffer, boundary: string): { parts: Part[]; epilogue: string } {
  const dashBoundary = Buffer.from(`--${boundary}`);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  // The first dash-boundary may follow a preamble, which then ends with CRLF.
  let at = body.subarray(0, dashBoundary.length).equals(dashBoundary) ? 0 : body.indexOf(delimiter) + 2;
  expect(at).toBeGreaterThanOrEqual(0);
  at += dashBoundary.length;
  const parts: Part[] = [];
  for (;;) {
    const after = body.subarray(at, at + 2).toString('latin1');
    if (after === '--') return { parts, epilogue: body.subarray(at + 2).toString('latin1') };
    expect(after).toBe('\r\n');
    const headersEnd = body.indexOf('\r\n\r\n', at + 2);
    expect(headersEnd).toBeGreaterThan(0);
    const headers: Record<string, string> = {};
    for (const line of body
      .subarray(at + 2, headersEnd)
      .toString('latin1')
      .split('\r\n')) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const next = body.indexOf(delimiter, headersEnd + 4);
    expect(next).toBeGreaterThan(0);
    parts.push({ headers, data: body.subarray(headersEnd + 4, next) });
    at = next + delimiter.length;
  }
}

/** Open file descriptors of this process (the server runs in it) that point at `file`. */
function fdsOpenOn(file: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) n += 1;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

async function ingestStream(mirror: TestMirror, size: number, seed: string): Promise<Sha256> {
  const { blob } = await ingest(mirror.runtime.ingestDeps, {
    source: testStream(size, seed),
    fileName: `${seed}.pvmp`,
  });
  return blob.sha256 as Sha256;
}

async function fetchBytes(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; bytes: Buffer; headers: Headers }> {
  const res = await fetch(url, { headers });
  return {
    status: res.status,
    bytes: Buffer.from(await res.arrayBuffer()),
    headers: res.headers,
  };
}

describe('download links: routes and RFC 9110 semantics', () => {
  let mirror: TestMirror;
  const data = testBytes(100_000, 'semantics');
  const SIZE = data.length;
  let sha: string;
  let link: string;
  let etag: string;
  let lastModified: string;
  const CREATED_AT = Date.UTC(2021, 2, 2, 3, 4, 5, 678);

  beforeAll(async () => {
    mirror = await startMirror();
    sha = await putBlob(mirror, data, 'pkg.pvmp');
    link = `/d/${sha}/pkg.pvmp`;
    etag = `"${sha}"`;
    // A first-ingest time well in the past (with a sub-second part), so a Last-Modified
    // that followed the clock instead of the database could not pass by accident.
    await mirror.runtime.db.updateTable('blobs').set({ created_at: CREATED_AT }).where('sha256', '=', sha).execute();
    lastModified = 'Tue, 02 Mar 2021 03:04:05 GMT';
  });
  afterAll(async () => {
    await mirror?.close();
  });

  describe('GET and HEAD of a stored blob', () => {
    it('GET answers 200 with the exact bytes and the documented headers', async () => {
      const r = await httpRequest(mirror.url + link);
      expect(r.status).toBe(200);
      expect(sha256Hex(r.bytes)).toBe(sha);
      expect(r.bytes.equals(data)).toBe(true);
      expect(r.headers['accept-ranges']).toBe('bytes');
      expect(r.headers['content-length']).toBe(String(SIZE));
      expect(r.headers.etag).toBe(etag);
      expect(r.headers['last-modified']).toBe(lastModified);
      expect(r.headers['content-type']).toBe('application/octet-stream');
      expect(r.headers['content-disposition']).toBe('attachment; filename="pkg.pvmp"');
      expect(r.headers['cache-control']).toMatch(/\bimmutable\b/);
      expect(r.headers['cache-control']).toMatch(/\bmax-age=\d+/);
      expect(r.headers['content-encoding']).toBeUndefined();
      expect(r.headers['content-range']).toBeUndefined();
      expect(r.headers['transfer-encoding']).toBeUndefined();
    });

    it('Last-Modified is the first-ingest time and stays put; a re-ingest changes neither it nor the ETag', async () => {
      const a = await httpRequest(mirror.url + link, { method: 'HEAD' });
      expect(a.headers['last-modified']).toBe(lastModified);
      await putBlob(mirror, data, 'again.pvmp');
      const b = await httpRequest(mirror.url + `/d/${sha}/other-name.pvmp`, {
        method: 'HEAD',
      });
      expect(b.headers['last-modified']).toBe(lastModified);
      expect(b.headers.etag).toBe(etag);
    });

    it('never compresses, even when the client asks for gzip', async () => {
      const r = await httpRequest(mirror.url + link, {
        headers: { 'Accept-Encoding': 'gzip, deflate, br' },
      });
      expect(r.status).toBe(200);
      expect(r.headers['content-encoding']).toBeUndefined();
      expect(r.headers['content-length']).toBe(String(SIZE));
      expect(r.bytes.equals(data)).toBe(true);
    });

    it('the file name is cosmetic; any safe name ending in .pvmp (and a query string) serves the same bytes', async () => {
      for (const name of [
        'x.pvmp',
        'Another%20Name.pvmp',
        'name.with.dots.pvmp',
        '.hidden.pvmp',
        '....pvmp',
        '%C3%BCml%C3%A4ut.pvmp',
        `${'a'.repeat(250)}.pvmp`,
        'UPPER.PVMP',
        'Mixed.PvMp',
      ]) {
        const r = await httpRequest(mirror.url + `/d/${sha}/${name}?utm=1&x=/../..`);
        expect(r.status, name).toBe(200);
        expect(r.bytes.equals(data)).toBe(true);
      }
    });

    it('accepts the digest in upper case (users paste it)', async () => {
      const r = await httpRequest(mirror.url + `/d/${sha.toUpperCase()}/pkg.pvmp`);
      expect(r.status).toBe(200);
      expect(r.headers.etag).toBe(etag);
      expect(r.bytes.equals(data)).toBe(true);
    });

    it('Content-Disposition carries the requested name, with an RFC 8187 form when it is not plain ASCII', async () => {
      const umlaut = await httpRequest(mirror.url + `/d/${sha}/Gr%C3%BC%C3%9Fe%20Mac.pvmp`, { method: 'HEAD' });
      expect(umlaut.headers['content-disposition']).toBe(
        `attachment; filename="Gr__e Mac.pvmp"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20Mac.pvmp`,
      );
      const quote = await httpRequest(mirror.url + `/d/${sha}/a%22b.pvmp`, {
        method: 'HEAD',
      });
      expect(quote.status).toBe(200);
      expect(quote.headers['content-disposition']).toBe(`attachment; filename="a_b.pvmp"; filename*=UTF-8''a%22b.pvmp`);
    });

    it('HEAD has no body at all on the wire', async () => {
      const { port } = new URL(mirror.url);
      const raw = await rawExchange(
        mirror.url,
        `HEAD ${link} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
      );
      const text = raw.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      expect(text.startsWith('HTTP/1.1 200')).toBe(true);
      expect(text.slice(0, end)).toMatch(new RegExp(`\r\nContent-Length: ${SIZE}\r\n`, 'i'));
      expect(raw.length).toBe(end + 4);
    });

    it('HEAD carries the same status and headers as GET, for every kind of answer', async () => {
      const cases: Array<{ path: string; headers?: Record<string, string> }> = [
        { path: link },
        { path: link, headers: { Range: 'bytes=10-19' } },
        { path: link, headers: { Range: 'bytes=-5' } },
        { path: link, headers: { Range: 'bytes=0-0,10-20,-3' } },
        { path: link, headers: { Range: `bytes=${SIZE}-` } },
        { path: link, headers: { Range: 'bytes=oops' } },
        { path: link, headers: { Range: 'bytes=0-9', 'If-Range': '"nope"' } },
        { path: link, headers: { 'If-None-Match': etag } },
        { path: link, headers: { 'If-Modified-Since': lastModified } },
        { path: link, headers: { 'If-Match': '"nope"' } },
        { path: `${link}.sha256` },
        { path: `/d/${'0'.repeat(64)}/x.pvmp` },
        { path: `/d/${sha}/..` },
        { path: '/d/nothex/x' },
      ];
      for (const c of cases) {
        const get = await httpRequest(mirror.url + c.path, { headers: c.headers });
        const head = await httpRequest(mirror.url + c.path, {
          method: 'HEAD',
          headers: c.headers,
        });
        const label = `${c.path} ${JSON.stringify(c.headers ?? {})}`;
        expect(head.status, label).toBe(get.status);
        expect(comparableHeaders(head.headers), label).toEqual(comparableHeaders(get.headers));
        expect(head.bytes.length, label).toBe(0);
      }
    });
  });

  describe('checksum lines', () => {
    it('<name>.sha256 answers the shasum -c line as text/plain', async () => {
      const r = await httpRequest(mirror.url + `${link}.sha256`);
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toMatch(/^text\/plain/);
      expect(r.bytes.toString('utf8')).toBe(`${sha}  pkg.pvmp\n`);
      expect(r.headers['content-length']).toBe(String(r.bytes.length));
      expect(r.headers['content-disposition']).toBeUndefined();
    });

    it('names the requested (decoded) file, whatever it is', async () => {
      const r = await httpRequest(mirror.url + `/d/${sha}/My%20Image%20%C3%A9.pvmp.sha256`);
      expect(r.status).toBe(200);
      expect(r.bytes.toString('utf8')).toBe(`${sha}  My Image é.pvmp\n`);
    });

    it('an unknown digest is 404 for the checksum too', async () => {
      const r = await httpRequest(mirror.url + `/d/${'1'.repeat(64)}/x.pvmp.sha256`);
      expect(r.status).toBe(404);
      expect(errorCode(r)).toBe('BLOB_UNKNOWN');
    });
  });

  describe('errors and hostile paths', () => {
    it('unknown digest → 404 BLOB_UNKNOWN as JSON', async () => {
      const r = await httpRequest(mirror.url + `/d/${'f'.repeat(64)}/pkg.pvmp`);
      expect(r.status).toBe(404);
      expect(errorCode(r)).toBe('BLOB_UNKNOWN');
      expect(r.headers['content-disposition']).toBeUndefined();
      expect(r.headers['accept-ranges']).toBeUndefined();
      expect(r.headers['cache-control']).toBe('no-store');
    });

    it.each(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])('%s → 405 with Allow: GET, HEAD', async (method) => {
      const r = await httpRequest(mirror.url + link, { method });
      expect(r.status).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
      expect(errorCode(r)).toBe('METHOD_NOT_ALLOWED');
    });

    it('malformed digests → 400 DIGEST_INVALID', async () => {
      for (const digest of [
        sha.slice(1),
        `${sha}0`,
        'g'.repeat(64),
        '..',
        '%2e%2e',
        `${sha.slice(0, 62)}%2F`,
        `${sha.slice(0, 63)}%00`,
      ]) {
        const r = await httpRequest(mirror.url + `/d/${digest}/pkg.pvmp`);
        expect(r.status, digest).toBe(400);
        expect(errorCode(r), digest).toBe('DIGEST_INVALID');
      }
    });

    it('traversal and unsafe names never reach a file: 400 or 404 JSON', async () => {
      // A file just outside the blob store that a traversal would try to reach.
      await fs.writeFile(path.join(mirror.dir, 'secret.txt'), 'top secret');
      const hostile = [
        '/d/../x',
        '/d/../../etc/passwd',
        `/d/${sha}/..`,
        `/d/${sha}/.`,
        `/d/${sha}/%2e%2e`,
        `/d/${sha}/%2E%2E`,
        `/d/${sha}/%2e`,
        `/d/${sha}/../../secret.txt`,
        `/d/${sha}/..%2F..%2Fsecret.txt`,
        `/d/${sha}/..%2f..%2f..%2f..%2fetc%2fpasswd`,
        `/d/${sha}/a%2Fb.pvmp`,
        `/d/${sha}/..\\..\\secret.txt`,
        `/d/${sha}/a%5Cb.pvmp`,
        `/d/${sha}/pkg.pvmp%00.txt`,
        `/d/${sha}/%00`,
        `/d/${sha}/a%0d%0aSet-Cookie:%20x=1`,
        `/d/${sha}/a%7Fb`,
        `/d/${sha}/a%C2%85b`,
        `/d/${sha}/${'a'.repeat(256)}`,
        `/d/${sha}/${'%C3%A9'.repeat(256)}`,
        `/d/${sha}/%E0%A4%A`,
        `/d/${sha}/%`,
        `/d/${sha}/%C0%AE%C0%AE`,
        `/d/${sha}/`,
        `/d/${sha}`,
        `/d/${sha}/x/`,
        `/d/${sha}/a/b.pvmp`,
        `/d//${sha}/pkg.pvmp`,
        '/d/',
        `/d/%2e%2e%2f%2e%2e%2fsecret.txt/x`,
        `/d/${sha}%2Fpkg.pvmp`,
      ];
      for (const p of hostile) {
        const r = await httpRequest(mirror.url + p);
        expect([400, 404], p).toContain(r.status);
        expect(errorCode(r), p).toMatch(/^(NOT_FOUND|DIGEST_INVALID|NAME_INVALID)$/);
        expect(r.bytes.includes('top secret'), p).toBe(false);
        expect(r.headers['content-disposition'], p).toBeUndefined();
      }
    });

    it('a name that does not end in .pvmp or .pvmp.sha256 is 404: a link never offers the package as another kind of file', async () => {
      const names = [
        'Invoice.exe',
        'x',
        'pkg',
        'pkg.pvmp.exe',
        'pkg.pvmpx',
        'pkg.pvm',
        'pkg.sha256',
        '.pvmp',
        '.pvmp.sha256',
        'pkg.pvmp.sha256.sha256',
        'pkg.pvmp%20',
        'pkg.pvmp.',
        'pkg.dmg',
        'index.html',
      ];
      for (const name of names) {
        for (const method of ['GET', 'HEAD']) {
          const r = await httpRequest(mirror.url + `/d/${sha}/${name}`, { method });
          expect(r.status, `${method} ${name}`).toBe(404);
          expect(r.headers['content-disposition'], name).toBeUndefined();
          expect(r.headers['content-length'], name).not.toBe(String(SIZE));
          if (method === 'GET') expect(errorCode(r), name).toBe('NOT_FOUND');
          expect(r.bytes.includes(data.subarray(0, 64)), name).toBe(false);
        }
      }
    });

    it('the .pvmp and .sha256 endings are matched in any letter case', async () => {
      const upper = await httpRequest(mirror.url + `/d/${sha}/PKG.PVMP`);
      expect(upper.status).toBe(200);
      expect(upper.headers['content-disposition']).toBe('attachment; filename="PKG.PVMP"');
      expect(upper.bytes.equals(data)).toBe(true);
      const checksum = await httpRequest(mirror.url + `/d/${sha}/PKG.PVMP.SHA256`);
      expect(checksum.status).toBe(200);
      expect(checksum.bytes.toString('utf8')).toBe(`${sha}  PKG.PVMP\n`);
    });

    it('specific codes for the typical mistakes', async () => {
      expect((await httpRequest(mirror.url + `/d/${sha}/..`)).status).toBe(400);
      expect(errorCode(await httpRequest(mirror.url + `/d/${sha}/a%2Fb`))).toBe('NAME_INVALID');
      expect(errorCode(await httpRequest(mirror.url + `/d/${sha}/%E0%A4%A`))).toBe('NAME_INVALID');
      expect(errorCode(await httpRequest(mirror.url + `/d/${sha}/${'a'.repeat(256)}`))).toBe('NAME_INVALID');
      const notFound = await httpRequest(mirror.url + `/d/${sha}`);
      expect(notFound.status).toBe(404);
      expect(errorCode(notFound)).toBe('NOT_FOUND');
    });

    it('a raw NUL or a request line the parser rejects never yields a file', async () => {
      const { port } = new URL(mirror.url);
      const raw = await rawExchange(
        mirror.url,
        `GET /d/${sha}/a\u0000b HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
      );
      expect(raw.toString('latin1')).toMatch(/^HTTP\/1\.1 400/);
      expect(raw.includes(data.subarray(0, 64))).toBe(false);
    });
  });

  describe('ranges', () => {
    it.each([
      ['bytes=0-0', 0, 0],
      ['bytes=0-99', 0, 99],
      ['bytes=1000-1999', 1000, 1999],
      [`bytes=${SIZE - 1}-${SIZE - 1}`, SIZE - 1, SIZE - 1],
      ['bytes=50000-', 50000, SIZE - 1],
      ['bytes=0-', 0, SIZE - 1],
      ['bytes=-1', SIZE - 1, SIZE - 1],
      ['bytes=-4096', SIZE - 4096, SIZE - 1],
      ['bytes=-1000000', 0, SIZE - 1],
      [`bytes=99990-${SIZE * 10}`, 99990, SIZE - 1],
      ['bytes=5-10,', 5, 10],
    ])('%s → 206 %i-%i', async (range, start, end) => {
      const r = await httpRequest(mirror.url + link, { headers: { Range: range } });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${SIZE}`);
      expect(r.headers['content-length']).toBe(String(end - start + 1));
      expect(r.headers['content-type']).toBe('application/octet-stream');
      expect(r.headers.etag).toBe(etag);
      expect(r.headers['accept-ranges']).toBe('bytes');
      expect(r.bytes.equals(data.subarray(start, end + 1))).toBe(true);
    });

    it('several ranges → multipart/byteranges with a correct part per range', async () => {
      const wanted: Array<[number, number]> = [
        [0, 9],
        [500, 599],
        [SIZE - 10, SIZE - 1],
        [40_000, 40_000],
        [100, 50_000],
      ];
      const r = await httpRequest(mirror.url + link, {
        headers: { Range: `bytes=0-9, 500-599,-10,40000-40000,100-50000` },
      });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBeUndefined();
      const type = r.headers['content-type'] ?? '';
      const boundary = /^multipart\/byteranges;\s*boundary=("?)([^";]+)\1$/.exec(type)?.[2];
      expect(boundary, type).toBeDefined();
      expect(r.headers['content-length']).toBe(String(r.bytes.length));
      const { parts, epilogue } = parseMultipart(r.bytes, boundary!);
      expect(epilogue.trim()).toBe('');
      expect(parts).toHaveLength(wanted.length);
      parts.forEach((part, i) => {
        const [start, end] = wanted[i]!;
        expect(part.headers['content-type']).toBe('application/octet-stream');
        expect(part.headers['content-range']).toBe(`bytes ${start}-${end}/${SIZE}`);
        expect(part.data.equals(data.subarray(start, end + 1)), `part ${i}`).toBe(true);
      });
    });

    it('a multi-range request where only one range is satisfiable still answers a correct 206', async () => {
      const r = await httpRequest(mirror.url + link, {
        headers: { Range: `bytes=${SIZE}-,10-19,${SIZE + 5}-${SIZE + 9}` },
      });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes 10-19/${SIZE}`);
      expect(r.bytes.equals(data.subarray(10, 20))).toBe(true);
    });

    it.each([
      `bytes=${SIZE}-`,
      `bytes=${SIZE}-${SIZE + 100}`,
      'bytes=-0',
      `bytes=${SIZE * 2}-,${SIZE}-`,
      'bytes=99999999999999999999-',
    ])('unsatisfiable %s → 416 with Content-Range: bytes */SIZE', async (range) => {
      const r = await httpRequest(mirror.url + link, {
        headers: { Range: range },
      });
      expect(r.status).toBe(416);
      expect(r.headers['content-range']).toBe(`bytes */${SIZE}`);
      expect(errorCode(r)).toBe('RANGE_NOT_SATISFIABLE');
    });

    it.each([
      'bytes=10-5',
      'bytes=abc',
      'bytes=',
      'items=0-10',
      'bytes=0-10,junk',
      '0-10',
      'bytes=1-2-3',
      'bytes 0-10',
    ])('syntactically invalid %j → ignored, 200 with everything', async (range) => {
      const r = await httpRequest(mirror.url + link, {
        headers: { Range: range },
      });
      expect(r.status).toBe(200);
      expect(r.headers['content-range']).toBeUndefined();
      expect(r.headers['content-length']).toBe(String(SIZE));
      expect(r.bytes.equals(data)).toBe(true);
    });

    it('more than 64 ranges → the whole 200', async () => {
      const specs = Array.from({ length: 65 }, (_, i) => `${i * 100}-${i * 100 + 9}`).join(',');
      const r = await httpRequest(mirror.url + link, {
        headers: { Range: `bytes=${specs}` },
      });
      expect(r.status).toBe(200);
      expect(r.bytes.equals(data)).toBe(true);
    });
  });

  describe('conditional requests', () => {
    const before = (): string => new Date(Date.parse(lastModified) - 60_000).toUTCString();
    const after = (): string => new Date(Date.parse(lastModified) + 60_000).toUTCString();

    it('If-Range with the matching ETag → 206', async () => {
      const r = await httpRequest(mirror.url + link, {
        headers: { Range: 'bytes=100-199', 'If-Range': etag },
      });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes 100-199/${SIZE}`);
      expect(r.bytes.equals(data.subarray(100, 200))).toBe(true);
    });

    it.each([
      ['another ETag', (): string => '"0000"'],
      ['the weak form of our ETag', (): string => `W/${etag}`],
      ['a later date', after],
      ['garbage', (): string => 'not-a-validator'],
    ])('If-Range with %s → 200 with everything', async (_label, value) => {
      const r = await httpRequest(mirror.url + link, {
        headers: { Range: 'bytes=100-199', 'If-Range': value() },
      });
      expect(r.status).toBe(200);
      expect(r.headers['content-range']).toBeUndefined();
      expect(r.bytes.equals(data)).toBe(true);
    });

    it('If-Range with the exact Last-Modified date → 206, an earlier date → 200', async () => {
      const exact = await httpRequest(mirror.url + link, {
        headers: { Range: 'bytes=-10', 'If-Range': lastModified },
      });
      expect(exact.status).toBe(206);
      expect(exact.bytes.equals(data.subarray(SIZE - 10))).toBe(true);
      const earlier = await httpRequest(mirror.url + link, {
        headers: { Range: 'bytes=-10', 'If-Range': before() },
      });
      expect(earlier.status).toBe(200);
      expect(earlier.bytes.length).toBe(SIZE);
    });

    it('If-None-Match matching (or *) → 304 without a body, keeping the validators', async () => {
      for (const value of [etag, `W/${etag}`, '*', `"other", ${etag}`]) {
        const r = await httpRequest(mirror.url + link, {
          headers: { 'If-None-Match': value },
        });
        expect(r.status, value).toBe(304);
        expect(r.bytes.length).toBe(0);
        expect(r.headers.etag).toBe(etag);
        expect(r.headers['last-modified']).toBe(lastModified);
        expect(r.headers['cache-control']).toMatch(/immutable/);
      }
      const miss = await httpRequest(mirror.url + link, {
        headers: { 'If-None-Match': '"other"' },
      });
      expect(miss.status).toBe(200);
      expect(miss.bytes.equals(data)).toBe(true);
    });

    it('If-Modified-Since at or after Last-Modified → 304, before → 200, unparseable → 200', async () => {
      expect(
        (
          await httpRequest(mirror.url + link, {
            headers: { 'If-Modified-Since': lastModified },
          })
        ).status,
      ).toBe(304);
      expect(
        (
          await httpRequest(mirror.url + link, {
            headers: { 'If-Modified-Since': after() },
          })
        ).status,
      ).toBe(304);
      const old = await httpRequest(mirror.url + link, {
        headers: { 'If-Modified-Since': before() },
      });
      expect(old.status).toBe(200);
      expect(old.bytes.equals(data)).toBe(true);
      expect(
        (
          await httpRequest(mirror.url + link, {
            headers: { 'If-Modified-Since': 'garbage' },
          })
        ).status,
      ).toBe(200);
    });

    it('If-None-Match takes precedence over If-Modified-Since', async () => {
      const r = await httpRequest(mirror.url + link, {
        headers: { 'If-None-Match': '"other"', 'If-Modified-Since': after() },
      });
      expect(r.status).toBe(200);
      expect(r.bytes.equals(data)).toBe(true);
      const m = await httpRequest(mirror.url + link, {
        headers: { 'If-None-Match': etag, 'If-Modified-Since': before() },
      });
      expect(m.status).toBe(304);
    });

    it('a 304 wins over a Range', async () => {
      const r = await httpRequest(mirror.url + link, {
        headers: { 'If-None-Match': etag, Range: 'bytes=0-9' },
      });
      expect(r.status).toBe(304);
    });

    it('If-Match mismatch (or weak) → 412; a match or * → 200', async () => {
      for (const value of ['"other"', `W/${etag}`]) {
        const r = await httpRequest(mirror.url + link, {
          headers: { 'If-Match': value },
        });
        expect(r.status, value).toBe(412);
        expect(errorCode(r)).toBe('PRECONDITION_FAILED');
        expect(r.bytes.includes(data.subarray(0, 32))).toBe(false);
      }
      for (const value of [etag, '*']) {
        const r = await httpRequest(mirror.url + link, {
          headers: { 'If-Match': value, Range: 'bytes=0-9' },
        });
        expect(r.status, value).toBe(206);
      }
    });

    it('If-Unmodified-Since before Last-Modified → 412, at it → 200', async () => {
      expect(
        (
          await httpRequest(mirror.url + link, {
            headers: { 'If-Unmodified-Since': before() },
          })
        ).status,
      ).toBe(412);
      expect(
        (
          await httpRequest(mirror.url + link, {
            headers: { 'If-Unmodified-Since': lastModified },
          })
        ).status,
      ).toBe(200);
    });
  });

  describe('zero-byte blob', () => {
    let empty: string;
    beforeAll(async () => {
      empty = await putBlob(mirror, Buffer.alloc(0), 'empty.pvmp');
    });

    it('GET → 200 with Content-Length 0', async () => {
      expect(empty).toBe(sha256Hex(Buffer.alloc(0)));
      const r = await httpRequest(mirror.url + `/d/${empty}/empty.pvmp`);
      expect(r.status).toBe(200);
      expect(r.headers['content-length']).toBe('0');
      expect(r.headers.etag).toBe(`"${empty}"`);
      expect(r.bytes.length).toBe(0);
      const head = await httpRequest(mirror.url + `/d/${empty}/empty.pvmp`, {
        method: 'HEAD',
      });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe('0');
    });

    it.each(['bytes=0-', 'bytes=0-0', 'bytes=-1', 'bytes=0-10,20-30'])('Range %s → 416 bytes */0', async (range) => {
      const r = await httpRequest(mirror.url + `/d/${empty}/empty.pvmp`, {
        headers: { Range: range },
      });
      expect(r.status).toBe(416);
      expect(r.headers['content-range']).toBe('bytes */0');
    });
  });

  describe('blobs that cannot be served', () => {
    it("state 'corrupt' in the database → 503 BLOB_UNAVAILABLE, for GET, HEAD and ranges", async () => {
      const bytes = testBytes(5000, 'corrupt');
      const digest = await putBlob(mirror, bytes, 'c.pvmp');
      await mirror.runtime.db.updateTable('blobs').set({ state: 'corrupt' }).where('sha256', '=', digest).execute();
      for (const [method, headers] of [
        ['GET', {}],
        ['HEAD', {}],
        ['GET', { Range: 'bytes=0-9' }],
      ] as const) {
        const r = await httpRequest(mirror.url + `/d/${digest}/c.pvmp`, {
          method,
          headers,
        });
        expect(r.status, `${method} ${JSON.stringify(headers)}`).toBe(503);
        if (method === 'GET') {
          expect(errorCode(r)).toBe('BLOB_UNAVAILABLE');
          expect(r.bytes.includes(bytes.subarray(0, 32))).toBe(false);
        }
        expect(r.headers['content-disposition']).toBeUndefined();
        expect(r.headers['cache-control']).toBe('no-store');
      }
      await mirror.runtime.db.updateTable('blobs').set({ state: 'missing' }).where('sha256', '=', digest).execute();
      expect((await httpRequest(mirror.url + `/d/${digest}/c.pvmp`)).status).toBe(503);
      // Once marked ok again (re-imported), it is served.
      await mirror.runtime.db.updateTable('blobs').set({ state: 'ok' }).where('sha256', '=', digest).execute();
      const ok = await httpRequest(mirror.url + `/d/${digest}/c.pvmp`);
      expect(ok.status).toBe(200);
      expect(ok.bytes.equals(bytes)).toBe(true);
    });

    it('a blob file deleted behind the database → 503, never a truncated 200 (GET, HEAD, ranges)', async () => {
      const bytes = testBytes(5000, 'deleted');
      const digest = (await putBlob(mirror, bytes, 'gone.pvmp')) as Sha256;
      await removeStored(mirror, digest);
      for (const [method, headers] of [
        ['GET', {}],
        ['HEAD', {}],
        ['GET', { Range: 'bytes=0-9' }],
        ['HEAD', { Range: 'bytes=0-9' }],
        ['GET', { Range: 'bytes=0-9,20-29' }],
      ] as const) {
        const r = await httpRequest(mirror.url + `/d/${digest}/gone.pvmp`, {
          method,
          headers,
        });
        expect(r.status, `${method} ${JSON.stringify(headers)}`).toBe(503);
        if (method === 'GET') expect(errorCode(r)).toBe('BLOB_UNAVAILABLE');
      }
    });

    it('a blob file of the wrong size (truncated on disk) → 503, not a short body', async () => {
      const bytes = testBytes(5000, 'truncated');
      const digest = (await putBlob(mirror, bytes, 't.pvmp')) as Sha256;
      await truncateStored(mirror, digest, 1234);
      for (const method of ['GET', 'HEAD']) {
        const r = await httpRequest(mirror.url + `/d/${digest}/t.pvmp`, { method });
        expect(r.status, method).toBe(503);
      }
    });
  });
});

describe('download links: streaming', () => {
  let mirror: TestMirror;
  beforeAll(async () => {
    // Every client here is 127.0.0.1 and some tests run 18 downloads at once: no per-client cap (download-caps.test.ts covers it).
    mirror = await startMirror({ maxDownloadsPerClient: 0 });
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it('resumes an interrupted download (curl -C - style) to the right digest', async () => {
    const size = 6 * MiB + 12345;
    const digest = await ingestStream(mirror, size, 'resume');
    const url = `${mirror.url}/d/${digest}/resume.pvmp`;
    const { hostname, port } = new URL(mirror.url);
    // First attempt: cut off after ~1.5 MiB, like a dropped Wi-Fi connection.
    const first = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let got = 0;
      const req = http.get(
        {
          host: hostname,
          port,
          path: `/d/${digest}/resume.pvmp`,
          agent: false,
        },
        (res) => {
          expect(res.statusCode).toBe(200);
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            got += c.length;
            if (got >= 1.5 * MiB) {
              req.destroy();
              resolve(Buffer.concat(chunks));
            }
          });
        },
      );
      req.on('error', (err) => (got >= 1.5 * MiB ? undefined : reject(err)));
    });
    expect(first.length).toBeGreaterThan(0);
    expect(first.length).toBeLessThan(size);
    const rest = await fetchBytes(url, {
      Range: `bytes=${first.length}-`,
      'If-Range': `"${digest}"`,
    });
    expect(rest.status).toBe(206);
    expect(rest.headers.get('content-range')).toBe(`bytes ${first.length}-${size - 1}/${size}`);
    expect(sha256Hex(Buffer.concat([first, rest.bytes]))).toBe(digest);
  });

  it('8 parallel ranged requests reassemble to the right digest; one multi-range request across read chunks is exact', async () => {
    const size = 8 * MiB + 7;
    const digest = await ingestStream(mirror, size, 'parallel-ranges');
    const url = `${mirror.url}/d/${digest}/p.pvmp`;
    const n = 8;
    const bounds = Array.from({ length: n + 1 }, (_, i) => Math.floor((size * i) / n));
    const pieces = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const start = bounds[i]!;
        const end = bounds[i + 1]! - 1;
        const r = await fetchBytes(url, { Range: `bytes=${start}-${end}` });
        expect(r.status).toBe(206);
        expect(r.headers.get('content-range')).toBe(`bytes ${start}-${end}/${size}`);
        expect(r.bytes.length).toBe(end - start + 1);
        return r.bytes;
      }),
    );
    expect(sha256Hex(Buffer.concat(pieces))).toBe(digest);

    // Several ranges, each spanning read chunks, in one multipart response.
    const whole = testBytes(size, 'parallel-ranges');
    const wanted: Array<[number, number]> = [
      [0, 1_500_000],
      [3 * MiB - 1, 5 * MiB + 1],
      [size - 3, size - 1],
    ];
    const r = await httpRequest(mirror.url + `/d/${digest}/p.pvmp`, {
      headers: { Range: `bytes=0-1500000,${3 * MiB - 1}-${5 * MiB + 1},-3` },
    });
    expect(r.status).toBe(206);
    expect(r.headers['content-length']).toBe(String(r.bytes.length));
    const boundary = /boundary=([^;]+)$/.exec(r.headers['content-type'] ?? '')?.[1] ?? '';
    const { parts } = parseMultipart(r.bytes, boundary);
    expect(parts.map((p) => p.headers['content-range'])).toEqual(wanted.map(([a, b]) => `bytes ${a}-${b}/${size}`));
    parts.forEach((p, i) =>
      expect(p.data.equals(whole.subarray(wanted[i]![0], wanted[i]![1] + 1)), `part ${i}`).toBe(true),
    );
  });

  it('many parallel full downloads of the same and different blobs are all intact', async () => {
    const digests = await Promise.all([0, 1, 2].map((i) => ingestStream(mirror, 3 * MiB + i * 1000, `many-${i}`)));
    const jobs = Array.from({ length: 18 }, (_, i) => digests[i % digests.length]!);
    const results = await Promise.all(
      jobs.map(async (digest) => {
        const res = await fetch(`${mirror.url}/d/${digest}/m.pvmp`);
        expect(res.status).toBe(200);
        const hash = createHash('sha256');
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) hash.update(chunk);
        return hash.digest('hex');
      }),
    );
    expect(results).toEqual(jobs);
  });

  it('clients that disconnect mid-download release their file handle; the server stays healthy', async () => {
    const size = 64 * MiB;
    const digest = await ingestStream(mirror, size, 'disconnect');
    // On S3 a response holds a ranged GET, not a descriptor, and the SDK pools its sockets: descriptors are counted on fs only.
    const file = onS3 ? null : realpathSync(mirror.runtime.store.layout.blobFile(digest));
    const { hostname, port } = new URL(mirror.url);
    const baseline = fdCount();
    if (file) expect(fdsOpenOn(file)).toBe(0);

    // Several clients, cut at different points, with and without ranges.
    const cuts = [
      { after: 1, range: undefined },
      { after: 64 * 1024, range: undefined },
      { after: 3 * MiB, range: undefined },
      { after: 100, range: `bytes=${32 * MiB}-` },
      { after: 2 * MiB, range: `bytes=0-100,${10 * MiB}-${40 * MiB}` },
    ];
    const requests = await Promise.all(
      cuts.map(
        (cut) =>
          new Promise<http.ClientRequest>((resolve, reject) => {
            let got = 0;
            const req = http.get(
              {
                host: hostname,
                port,
                path: `/d/${digest}/big.pvmp`,
                agent: false,
                headers: cut.range ? { Range: cut.range } : {},
              },
              (res) => {
                res.on('data', (c: Buffer) => {
                  got += c.length;
                  if (got >= cut.after) {
                    res.pause();
                    resolve(req);
                  }
                });
              },
            );
            req.on('error', reject);
          }),
      ),
    );
    // Mid-transfer: the responses hold the blob open (they share one handle through the open-file cache).
    if (file) {
      expect(fdsOpenOn(file)).toBeGreaterThanOrEqual(1);
      expect(fdsOpenOn(file)).toBeLessThanOrEqual(cuts.length);
    }
    for (const req of requests) {
      req.on('error', () => undefined);
      req.destroy();
    }
    if (file) await waitFor(() => fdsOpenOn(file) === 0 && fdCount() <= baseline);
    // Every cut download was accounted as finished (no leaked gauge).
    await waitFor(async () => ((await mirror.runtime.metrics.activeDownloads.get()).values[0]?.value ?? 0) === 0);

    // Still healthy: a full download of the same blob is intact.
    const res = await fetch(`${mirror.url}/d/${digest}/big.pvmp`);
    expect(res.status).toBe(200);
    const hash = createHash('sha256');
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) hash.update(chunk);
    expect(hash.digest('hex')).toBe(digest);
    expect((await fetch(`${mirror.url}/healthz`)).status).toBe(200);
  });

  it('pipelined requests on one connection get their whole answers, in order', async () => {
    const size = 3 * MiB + 12345;
    const digest = await ingestStream(mirror, size, 'pipelined');
    const expected = testBytes(size, 'pipelined');
    const { hostname, port } = new URL(mirror.url);
    const path1 = `/d/${digest}/one.pvmp`;
    const head = (extra: string) => `GET ${path1} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n${extra}\r\n`;
    // Three requests in one write: the second and third answers wait for the first to finish.
    const raw = await rawExchange(
      mirror.url,
      head('') + head(`Range: bytes=100-${2 * MiB}\r\n`) + head('Range: bytes=0-0,-2\r\nConnection: close\r\n'),
    );
    let at = 0;
    const next = (): { status: number; bytes: Buffer; headers: string } => {
      const end = raw.indexOf('\r\n\r\n', at);
      const headers = raw.subarray(at, end).toString('latin1');
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(headers)?.[1]);
      const body = raw.subarray(end + 4, end + 4 + length);
      at = end + 4 + length;
      return { status: Number(headers.slice(9, 12)), bytes: body, headers };
    };
    const first = next();
    expect(first.status).toBe(200);
    expect(first.bytes.equals(expected)).toBe(true);
    const second = next();
    expect(second.status).toBe(206);
    expect(second.bytes.equals(expected.subarray(100, 2 * MiB + 1))).toBe(true);
    const third = next();
    expect(third.status).toBe(206);
    expect(third.headers).toMatch(/multipart\/byteranges/);
    expect(at).toBe(raw.length);
  });

  it('a client that reads nothing does not make the server buffer the blob (backpressure)', async () => {
    const size = 256 * MiB;
    const digest = await ingestStream(mirror, size, 'backpressure');
    const { hostname, port } = new URL(mirror.url);
    const serverSockets: net.Socket[] = [];
    const onConnection = (s: net.Socket): void => void serverSockets.push(s);
    mirror.server.server.on('connection', onConnection);
    try {
      const memBefore = process.memoryUsage();
      const hash = createHash('sha256');
      let received = 0;
      let response: http.IncomingMessage | undefined;
      const done = new Promise<void>((resolve, reject) => {
        const req = http.get({ host: hostname, port, path: `/d/${digest}/big.pvmp`, agent: false }, (res) => {
          // Deliberately not reading: node:http stops reading the socket once its small buffer is full.
          response = res;
          res.on('end', resolve);
          res.on('error', reject);
        });
        req.on('error', reject);
      });
      await waitFor(() => response !== undefined && serverSockets.length === 1);
      const socket = serverSockets[0]!;
      // Let the server fill every buffer it can; the written count must plateau far below the blob size.
      let last = -1;
      await waitFor(
        () => {
          const now = socket.bytesWritten;
          const settled = now === last && now > 0;
          last = now;
          return settled;
        },
        { timeoutMs: 10_000 },
      ).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 500));
      const memDuring = process.memoryUsage();
      expect(socket.bytesWritten).toBeGreaterThan(0);
      expect(socket.bytesWritten).toBeLessThan(48 * MiB);
      expect(socket.writableLength).toBeLessThan(8 * MiB);
      expect(memDuring.rss - memBefore.rss).toBeLessThan(64 * MiB);
      expect(memDuring.arrayBuffers - memBefore.arrayBuffers).toBeLessThan(64 * MiB);

      // Then the client reads after all, and gets every byte.
      response!.on('data', (c: Buffer) => {
        hash.update(c);
        received += c.length;
      });
      await done;
      expect(received).toBe(size);
      expect(hash.digest('hex')).toBe(digest);
    } finally {
      mirror.server.server.off('connection', onConnection);
      await (await mirror.runtime.store.detach(digest))?.discard();
    }
  });
});

describe('download links: bandwidth limit', () => {
  let mirror: TestMirror;
  const rate = 1 * MiB;
  beforeAll(async () => {
    mirror = await startMirror({ maxBytesPerSec: rate });
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it('caps the total rate across two parallel downloads', async () => {
    const a = testBytes(1 * MiB, 'limit-a');
    const b = testBytes(1 * MiB, 'limit-b');
    const [da, db] = await Promise.all([putBlob(mirror, a, 'a.pvmp'), putBlob(mirror, b, 'b.pvmp')]);
    const started = performance.now();
    const [ra, rb] = await Promise.all([
      fetchBytes(`${mirror.url}/d/${da}/a.pvmp`),
      fetchBytes(`${mirror.url}/d/${db}/b.pvmp`),
    ]);
    const elapsedMs = performance.now() - started;
    expect(ra.bytes.equals(a)).toBe(true);
    expect(rb.bytes.equals(b)).toBe(true);
    // 2 MiB at 1 MiB/s is 2 s; allow for the limiter's short burst allowance and timer slack.
    expect(elapsedMs).toBeGreaterThanOrEqual(1400);
  });
});
