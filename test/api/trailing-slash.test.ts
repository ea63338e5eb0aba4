/** Trailing slashes redirect to the path without them (301 for GET/HEAD, 308 otherwise) instead of a bare JSON 404. */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroupView } from '../../server/services/groups.js';
import { call, issueToken } from '../helpers/api.js';
import { startMirror, type TestMirror } from '../helpers/env.js';

/** Sends a request line as given (fetch would normalise "/\\x" and "//x"); returns status and Location. */
function raw(base: string, target: string): Promise<{ status: number; location: string | null }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () =>
      socket.end(`GET ${target} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`),
    );
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('end', () =>
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]),
        location: /\r\nlocation: ([^\r]*)/i.exec(text)?.[1] ?? null,
      }),
    );
    socket.on('error', reject);
  });
}

describe('trailing slashes', () => {
  let m: TestMirror;
  let token: string;
  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'slash');
  });
  afterAll(async () => {
    await m.close();
  });

  it('sends pages with a trailing slash to the page without it, signed in or not, keeping the query', async () => {
    for (const [from, to] of [
      ['/admin/', '/admin'],
      ['/admin/images/', '/admin/images'],
      ['/admin/groups//', '/admin/groups'],
      ['/admin/downloads/?arch=arm64', '/admin/downloads?arch=arm64'],
    ]) {
      const res = await call(m.url, 'GET', from!);
      expect({ from, status: res.status, location: res.headers.get('location') }).toEqual({
        from,
        status: 301,
        location: to,
      });
    }
    expect((await call(m.url, 'HEAD', '/admin/history/')).status).toBe(301);
    // Followed by a browser: /admin/ ends on the sign-in page, not on a JSON 404.
    const followed = await fetch(`${m.url}/admin/`);
    expect(followed.status).toBe(200);
    expect(new URL(followed.url).pathname).toBe('/admin/login');
    expect(followed.headers.get('content-type')).toMatch(/^text\/html/);
  });

  it('redirects API paths too: 301 for GET, 308 (method and body kept) for the others', async () => {
    const list = await call(m.url, 'GET', '/api/v1/groups/', { token });
    expect({ status: list.status, location: list.headers.get('location') }).toEqual({
      status: 301,
      location: '/api/v1/groups',
    });
    const post = await call(m.url, 'POST', '/api/v1/groups/', { token, json: { name: 'Via 308' } });
    expect({ status: post.status, location: post.headers.get('location') }).toEqual({
      status: 308,
      location: '/api/v1/groups',
    });
    // A client that follows the 308 repeats the POST with its body.
    const followed = await fetch(`${m.url}/api/v1/groups/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Via 308' }),
    });
    expect(followed.status).toBe(201);
    expect(((await followed.json()) as GroupView).name).toBe('Via 308');
  });

  it('never redirects to another host, and leaves paths without a trailing slash alone', async () => {
    expect(await raw(m.url, '//evil.example/')).toEqual({ status: 404, location: null });
    expect((await raw(m.url, '/\\evil.example/')).location ?? '').not.toMatch(/^\/[/\\]/);
    expect(await raw(m.url, '/')).toEqual({ status: 302, location: '/admin' });
    const unknown = await call(m.url, 'GET', '/api/v1/nothing', { token });
    expect(unknown.status).toBe(404);
    expect((await call(m.url, 'GET', '/healthz')).status).toBe(200);
  });
});
