import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, bootstrapTestAdmin, call, mustSignIn, type Session } from '../helpers/api.js';
import { startMirror, type TestMirror } from '../helpers/env.js';

function post(
  url: string,
  body: string,
  localAddress: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        localAddress,
        agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('sessions and sign-in throttling', () => {
  let mirror: TestMirror;
  beforeAll(async () => {
    mirror = await startMirror();
    await bootstrapTestAdmin(mirror);
  });
  afterAll(async () => {
    await mirror.close();
  });

  it('sends the cookie again when a session is renewed', async () => {
    const session = await mustSignIn(mirror.url);
    const fresh = await fetch(`${mirror.url}/api/v1/session`, { headers: { Cookie: session.cookie } });
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get('set-cookie')).toBeNull();
    // Near its end, the next request renews it, and the browser must hear of it.
    await mirror.runtime.db
      .updateTable('sessions')
      .set({ expires_at: Date.now() + 60_000 })
      .execute();
    const renewed = await fetch(`${mirror.url}/api/v1/session`, { headers: { Cookie: session.cookie } });
    expect(renewed.status).toBe(200);
    const cookie = renewed.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^gm_session=[^;]+; .*HttpOnly/);
    const expires = Date.parse(/Expires=([^;]+)/.exec(cookie)?.[1] ?? '');
    expect(expires).toBeGreaterThan(Date.now() + 6 * 3600_000);
  });

  it('locks out the address that keeps failing, not the admin everywhere', async () => {
    const url = `${mirror.url}/api/v1/session`;
    const wrong = JSON.stringify({ username: 'admin', password: 'not the password' });
    const right = JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD });
    let last = 0;
    for (let i = 0; i < 6; i += 1) last = (await post(url, wrong, '127.0.0.3')).status;
    expect(last).toBe(429);
    expect((await post(url, right, '127.0.0.3')).status).toBe(429);
    // The real admin, from another machine, still gets in.
    expect((await post(url, right, '127.0.0.4')).status).toBe(200);
  });
});

describe('a renewed session re-sends its cookie, with the sign-in flags, on every admin route', () => {
  let mirror: TestMirror;
  let session: Session;
  beforeAll(async () => {
    // Served over plain HTTP, but the public URL is https (a TLS proxy in front): cookies must be Secure.
    mirror = await startMirror({ publicUrl: 'https://mirror.test' });
    await bootstrapTestAdmin(mirror);
    session = await mustSignIn(mirror.url);
  });
  afterAll(async () => {
    await mirror.close();
  });

  /** Moves the session near its end, so the next request renews it. */
  const nearEnd = () =>
    mirror.runtime.db
      .updateTable('sessions')
      .set({ expires_at: Date.now() + 60_000 })
      .execute();

  /** The renewed cookie of an answer: same token, Secure, HttpOnly, SameSite=Strict, Path=/, a fresh expiry. */
  function expectRenewedCookie(route: string, headers: Headers): void {
    const cookies = headers.getSetCookie().filter((c) => c.startsWith('gm_session='));
    expect({ route, count: cookies.length }).toEqual({ route, count: 1 });
    const attrs = cookies[0]!.split(';').map((a) => a.trim());
    expect({ route, value: attrs[0] }).toEqual({ route, value: session.cookie });
    const flags = attrs.slice(1).map((a) => a.toLowerCase());
    expect({
      route,
      flags: ['secure', 'httponly', 'samesite=strict', 'path=/'].filter((f) => flags.includes(f)),
    }).toEqual({
      route,
      flags: ['secure', 'httponly', 'samesite=strict', 'path=/'],
    });
    const expires = Date.parse(attrs.find((a) => a.toLowerCase().startsWith('expires='))!.slice('expires='.length));
    expect(expires).toBeGreaterThan(Date.now() + 6 * 3600_000);
  }

  it('signs in with a Secure cookie', () => {
    expect(session.setCookie.toLowerCase()).toContain('; secure');
  });

  it('on /metrics, tus uploads (create, HEAD, PATCH), bundle imports, API and pages', async () => {
    const tusHeaders = { 'tus-resumable': '1.0.0' };
    const requests: Array<[string, () => Promise<{ status: number; headers: Headers }>]> = [
      ['GET /metrics', () => call(mirror.url, 'GET', '/metrics', { session })],
      ['GET /api/v1/images', () => call(mirror.url, 'GET', '/api/v1/images', { session })],
      ['GET /admin', () => call(mirror.url, 'GET', '/admin', { session })],
    ];
    for (const [route, send] of requests) {
      await nearEnd();
      const res = await send();
      expect({ route, status: res.status }).toEqual({ route, status: 200 });
      expectRenewedCookie(route, res.headers);
    }

    // tus: the upload server answers with a Response of its own.
    await nearEnd();
    const created = await call(mirror.url, 'POST', '/api/v1/uploads', {
      session,
      headers: {
        ...tusHeaders,
        'upload-length': '5',
        'upload-metadata': `filename ${Buffer.from('renew.pvmp').toString('base64')}`,
      },
    });
    expect(created.status, created.text).toBe(201);
    expectRenewedCookie('POST /api/v1/uploads', created.headers);
    const location = new URL(created.headers.get('location')!, mirror.url).pathname;
    await nearEnd();
    const head = await call(mirror.url, 'HEAD', location, { session, headers: tusHeaders });
    expect(head.status).toBe(200);
    expectRenewedCookie(`HEAD ${location}`, head.headers);
    await nearEnd();
    const patch = await call(mirror.url, 'PATCH', location, {
      session,
      raw: Buffer.from('hello'),
      contentType: 'application/offset+octet-stream',
      headers: { ...tusHeaders, 'upload-offset': '0' },
    });
    expect(patch.status).toBe(204);
    expectRenewedCookie(`PATCH ${location}`, patch.headers);

    // A bundle import (a streamed body), as a dry run of this mirror's own export.
    const bundle = Buffer.from(
      await (
        await fetch(`${mirror.url}/api/v1/export?blobs=false`, { headers: { cookie: session.cookie } })
      ).arrayBuffer(),
    );
    await nearEnd();
    const imported = await call(mirror.url, 'POST', '/api/v1/import?dryRun=true', {
      session,
      raw: bundle,
      contentType: 'application/x-tar',
    });
    expect(imported.status, imported.text).toBe(200);
    expectRenewedCookie('POST /api/v1/import', imported.headers);

    // An error answer renews too (the session was valid; only the request was bad).
    await nearEnd();
    const bad = await call(mirror.url, 'POST', '/api/v1/import', {
      session,
      raw: Buffer.from('not a tar'),
      contentType: 'application/x-tar',
    });
    expect(bad.status).toBe(400);
    expectRenewedCookie('POST /api/v1/import (refused)', bad.headers);
  });

  it('does not undo a sign-out by renewing the cookie it clears', async () => {
    const other = await mustSignIn(mirror.url);
    await nearEnd();
    const res = await call(mirror.url, 'DELETE', '/api/v1/session', { session: other });
    expect(res.status).toBe(204);
    const cookies = res.headers.getSetCookie().filter((c) => c.startsWith('gm_session='));
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatch(/^gm_session=;.*Max-Age=0/i);
  });
});
