import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, bootstrapTestAdmin, mustSignIn } from '../helpers/api.js';
import { startMirror, type TestMirror } from '../helpers/env.js';

function post(url: string, body: string, localAddress: string): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', localAddress, agent: false, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } },
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
    await mirror.runtime.db.updateTable('sessions').set({ expires_at: Date.now() + 60_000 }).execute();
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
