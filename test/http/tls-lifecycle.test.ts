import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storedFiles } from '../helpers/blobs.js';
import { bootstrapTestAdmin, call, mustSignIn } from '../helpers/api.js';
import {
  freePort,
  makeTempDir,
  putBlob,
  selfSignedCert,
  sha256Hex,
  startMirror,
  testBytes,
  type TestMirror,
} from '../helpers/env.js';
import { waitFor } from '../helpers/wait.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(url: string, options: https.RequestOptions = {}): Promise<Answer> {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, { ...options, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.method === 'POST' ? '' : undefined);
  });
}

describe('TLS', () => {
  let dir: string;
  let cert: Buffer;
  let mirror: TestMirror;
  let plainPort: number;

  beforeAll(async () => {
    dir = await makeTempDir('goldmirror-tls-');
    const { certFile, keyFile } = selfSignedCert(dir);
    cert = fs.readFileSync(certFile);
    plainPort = await freePort();
    mirror = await startMirror({ tlsCert: certFile, tlsKey: keyFile, httpPort: plainPort });
    await bootstrapTestAdmin(mirror);
  });
  afterAll(async () => {
    await mirror.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves links and pages over HTTPS directly', async () => {
    expect(mirror.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const data = testBytes(300_000, 'tls');
    const sha = await putBlob(mirror, data, 'tls.pvmp');
    const res = await get(`${mirror.url}/d/${sha}/tls.pvmp`, { ca: cert });
    expect(res.status).toBe(200);
    expect(sha256Hex(res.body)).toBe(sha);
    expect((await get(`${mirror.url}/healthz`, { ca: cert })).status).toBe(200);
  });

  it('keeps plain-HTTP download links working beside TLS and sends everything else to HTTPS', async () => {
    const data = testBytes(100_000, 'plain');
    const sha = await putBlob(mirror, data, 'plain.pvmp');
    const link = await get(`http://127.0.0.1:${plainPort}/d/${sha}/plain.pvmp`);
    expect(link.status).toBe(200);
    expect(sha256Hex(link.body)).toBe(sha);
    expect((await get(`http://127.0.0.1:${plainPort}/healthz`)).status).toBe(200);
    const admin = await get(`http://127.0.0.1:${plainPort}/admin/login?next=%2Fadmin`);
    expect(admin.status).toBe(308);
    expect(admin.headers.location).toBe(`https://127.0.0.1:${new URL(mirror.url).port}/admin/login?next=%2Fadmin`);
    const api = await get(`http://127.0.0.1:${plainPort}/api/v1/images`);
    expect(api.status).toBe(308);
    expect(api.body.length).toBe(0);
  });

  it('marks the session cookie Secure under TLS', async () => {
    // fetch() takes no CA option, so node:https with the test's own self-signed certificate.
    const agentOptions = { ca: cert };
    const res = await new Promise<Answer>((resolve, reject) => {
      const body = JSON.stringify({ username: 'admin', password: 'correct horse battery' });
      const req = https.request(
        `${mirror.url}/api/v1/session`,
        {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
          agent: false,
          ...agentOptions,
        },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks) }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(res.status).toBe(200);
    const cookie = (res.headers['set-cookie'] ?? []).find((c) => c.startsWith('gm_session='));
    expect(cookie).toMatch(/; Secure/);
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
  });
});

describe('graceful shutdown', () => {
  it('lets a running download finish, refuses new connections, then stops', async () => {
    const mirror = await startMirror();
    try {
      const data = testBytes(48 << 20, 'shutdown');
      const sha = await putBlob(mirror, data, 'big.pvmp');
      const hash = (await import('node:crypto')).createHash('sha256');
      let received = 0;
      let resume!: () => void;
      const started = new Promise<void>((r) => (resume = r));
      const done = new Promise<number>((resolve, reject) => {
        http
          .get(`${mirror.url}/d/${sha}/big.pvmp`, { agent: false }, (res) => {
            res.on('data', (chunk: Buffer) => {
              hash.update(chunk);
              received += chunk.length;
              if (received > 0) resume();
              // A slowish client: pause a little now and then.
              if (received % (8 << 20) < chunk.length) {
                res.pause();
                setTimeout(() => res.resume(), 20);
              }
            });
            res.on('end', () => resolve(res.statusCode ?? 0));
            res.on('error', reject);
          })
          .on('error', reject);
      });
      await started;
      const closing = mirror.server.close(20_000);
      // New connections are refused while the running download goes on.
      await expect(fetch(`${mirror.url}/healthz`)).rejects.toThrow();
      expect(await done).toBe(200);
      expect(received).toBe(data.length);
      expect(hash.digest('hex')).toBe(sha);
      await closing;
    } finally {
      await mirror.runtime.close();
      fs.rmSync(mirror.dir, { recursive: true, force: true });
    }
  });

  it('cuts a stalled download once the shutdown timeout passes', async () => {
    const mirror = await startMirror();
    try {
      const size = 64 << 20;
      const sha = await putBlob(mirror, testBytes(size, 'stalled'), 'stalled.pvmp');
      const response = new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.get(`${mirror.url}/d/${sha}/stalled.pvmp`, { agent: false }, (res) => {
          res.pause(); // a client that stops reading
          resolve(res);
        });
        req.on('error', reject);
      });
      const res = await response;
      await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      await mirror.server.close(500);
      const elapsed = performance.now() - t0;
      expect(elapsed).toBeGreaterThanOrEqual(400);
      expect(elapsed).toBeLessThan(5_000);
      // The server lets go of the download (no leaked gauge) right after...
      const active = async (): Promise<number> =>
        (await mirror.runtime.metrics.activeDownloads.get()).values[0]?.value ?? 0;
      await waitFor(async () => (await active()) === 0, { timeoutMs: 2_000 }).catch(() => undefined);
      expect(await active()).toBe(0);
      // ...and the client, reading what had been buffered, sees a cut transfer.
      let received = 0;
      await new Promise<void>((resolve) => {
        res.on('data', (c: Buffer) => (received += c.length));
        res.on('error', () => resolve());
        res.on('end', () => resolve());
        res.on('close', () => resolve());
        res.resume();
      });
      expect(received).toBeLessThan(size);
    } finally {
      await mirror.runtime.close();
      fs.rmSync(mirror.dir, { recursive: true, force: true });
    }
  });
});

describe('admin page: pull from a URL', () => {
  it('starts a download from another server, shows it, and stores the verified package', async () => {
    const upstream = await startMirror();
    const mirror = await startMirror();
    try {
      const data = testBytes(2 << 20, 'pull');
      const sha = await putBlob(upstream, data, 'pull.pvmp');
      await bootstrapTestAdmin(mirror);
      const session = await mustSignIn(mirror.url);
      const form = new URLSearchParams({
        _csrf: session.csrfToken,
        url: `${upstream.url}/d/${sha}/pull.pvmp`,
        sha256: sha,
        checksumUrl: '',
      });
      const started = await fetch(`${mirror.url}/admin/fetch`, {
        method: 'POST',
        headers: { Cookie: session.cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: form,
        redirect: 'manual',
      });
      expect(started.status).toBe(303);
      expect(started.headers.get('location')).toBe('/admin/upload?done=fetch-started#pull');
      const [job] = await mirror.runtime.transfers.list();
      expect(job?.url).toBe(`${upstream.url}/d/${sha}/pull.pvmp`);
      expect((await mirror.runtime.transfers.wait(job!.id))?.state).toBe('done');
      const page = await (await fetch(`${mirror.url}/admin/upload`, { headers: { Cookie: session.cookie } })).text();
      expect(page).toContain(`href="/admin/blobs/${sha}"`);
      const res = await fetch(`${mirror.url}/d/${sha}/pull.pvmp`);
      expect(sha256Hex(Buffer.from(await res.arrayBuffer()))).toBe(sha);

      // A bad URL is refused on the page, in words.
      const bad = await fetch(`${mirror.url}/admin/fetch`, {
        method: 'POST',
        headers: { Cookie: session.cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: session.csrfToken, url: 'ftp://x/y.pvmp', sha256: '', checksumUrl: '' }),
      });
      expect(bad.status).toBe(400);
      expect(await bad.text()).toContain('enter the http:// or https:// URL of the package');
      // And the form needs the CSRF token like every other.
      const forged = await call(mirror.url, 'POST', '/admin/fetch', { headers: { Cookie: session.cookie } });
      expect(forged.status).toBe(403);
    } finally {
      await upstream.close();
      await mirror.close();
    }
  });
});

describe('admin forms: hostile bodies', () => {
  it('refuses an oversized sign-in form before reading it, and stays up', async () => {
    const mirror = await startMirror();
    try {
      const before = process.memoryUsage().rss;
      const huge = 'password=' + 'x'.repeat(8 * 1024 * 1024);
      const res = await fetch(`${mirror.url}/admin/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: huge,
      });
      expect(res.status).toBe(413);
      expect(await res.text()).toContain('at most 64 KiB');
      expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
      expect((await fetch(`${mirror.url}/healthz`)).status).toBe(200);
    } finally {
      await mirror.close();
    }
  });

  it('a no-JavaScript upload cut off mid-body frees its temp file and stores nothing', async () => {
    const mirror = await startMirror();
    try {
      await bootstrapTestAdmin(mirror);
      const session = await mustSignIn(mirror.url);
      const boundary = 'gmboundary';
      const { hostname, port } = new URL(mirror.url);
      const socket = net.connect(Number(port), hostname);
      await new Promise((r) => socket.once('connect', r));
      // The CSRF token travels as the form's first field (never in the URL).
      const head =
        `--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${session.csrfToken}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="package"; filename="cut.pvmp"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n';
      socket.write(
        `POST /admin/upload HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
          `Cookie: ${session.cookie}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
          `Content-Length: ${head.length + 64 * 1024 * 1024}\r\n\r\n${head}`,
      );
      socket.write(testBytes(40 << 20, 'cut'));
      // A temp file on fs; on S3 the marker of the multipart upload its first part (32 MiB, size unknown) started.
      const tmpEntries = async () => Object.keys(await storedFiles(mirror, 'tmp'));
      let partial: string[] = [];
      for (let i = 0; i < 200 && partial.length === 0; i += 1) {
        partial = await tmpEntries();
        if (partial.length === 0) await new Promise((r) => setTimeout(r, 10));
      }
      expect(partial).toHaveLength(1);
      socket.destroy();
      let left = partial;
      for (let i = 0; i < 200 && left.length > 0; i += 1) {
        await new Promise((r) => setTimeout(r, 25));
        left = await tmpEntries();
      }
      expect(left).toEqual([]);
      expect(await mirror.runtime.db.selectFrom('blobs').selectAll().execute()).toEqual([]);
    } finally {
      await mirror.close();
    }
  });
});
