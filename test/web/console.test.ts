/**
 * The admin console's frame in memory (app.request, hono's own style): every
 * signed-in page gets the user, the session's CSRF field in each form, the
 * fixed flash chosen by ?done= and the public-address banner from the
 * renderer, not from its route; the sign-in and error pages get the same
 * frame without them. HTML and validation only; streams stay on real sockets.
 */
import fs from 'node:fs/promises';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/log.js';
import { createApp } from '../../server/app.js';
import { createUploadServer } from '../../server/http/uploads.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import { bootstrapAdmin } from '../../server/services/auth.js';
import { ADMIN_PASSWORD } from '../helpers/api.js';
import { makeTempDir, testConfig } from '../helpers/env.js';

describe('admin console frame (in memory)', () => {
  let dir: string;
  let runtime: Runtime;
  let app: Hono;
  let cookie: string;
  let csrf: string;

  const page = async (path: string, init: RequestInit = {}) => {
    const res = await app.request(path, { redirect: 'manual', ...init, headers: { cookie, ...init.headers } });
    return { status: res.status, location: res.headers.get('location'), html: await res.text() };
  };
  const post = (path: string, fields: Record<string, string>) =>
    page(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });

  beforeAll(async () => {
    dir = await makeTempDir();
    runtime = await openRuntime(testConfig(dir), createLogger('silent'));
    const { ingestDeps, store, log } = runtime;
    app = createApp({
      ...runtime,
      uploads: await createUploadServer({ ingestDeps, store, log, baseUrl: async () => null }),
    });
    await bootstrapAdmin(runtime, dir, ADMIN_PASSWORD);
    const res = await app.request('/admin/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: 'admin', password: ADMIN_PASSWORD, next: '/admin/groups' }).toString(),
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/groups');
    cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    expect(cookie).toMatch(/^gm_session=.+/);
    const account = await app.request('/api/v1/session', { headers: { cookie } });
    csrf = ((await account.json()) as { csrfToken: string }).csrfToken;
    expect(csrf).toMatch(/\S{16,}/);
  });
  afterAll(async () => {
    await runtime?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('frames the sign-in page without navigation, CSRF field or banner, and re-shows a refused sign-in', async () => {
    const res = await app.request('/admin/login?next=/admin/images');
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(html).toMatch(/^<html lang="en">/);
    expect(html).toContain('<title>Sign in · goldmirror</title>');
    expect(html).toContain('<input type="hidden" name="next" value="/admin/images"/>');
    expect(html).not.toContain('aria-label="Main"');
    expect(html).not.toContain('name="_csrf"');
    expect(html).not.toContain('address-banner');

    const refused = await app.request('/admin/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=admin&password=wrong&next=//evil.example',
    });
    const again = await refused.text();
    expect(refused.status).toBe(401);
    expect(again).toContain('<p class="flash bad" role="alert">');
    // An unsafe next is replaced, not echoed.
    expect(again).toContain('name="next" value="/admin"');
  });

  it("puts the session's CSRF token in every form of a signed-in page, the logout form included", async () => {
    const { status, html } = await page('/admin/groups');
    expect(status).toBe(200);
    const forms = html.match(/<form method="post"[^>]*>/g) ?? [];
    const fields = html.match(/<input type="hidden" name="_csrf" value="([^"]*)"\/>/g) ?? [];
    expect(forms.length).toBeGreaterThanOrEqual(3);
    expect(fields).toHaveLength(forms.length);
    for (const f of fields) expect(f).toContain(`value="${csrf}"`);
    expect(html).toContain('<a href="/admin/account">admin</a>');
    expect(html).toContain('<a href="/admin/groups" aria-current="page">Groups</a>');
  });

  it('shows the fixed flash of a known ?done= key and nothing for any other text', async () => {
    expect((await page('/admin/images?done=image-saved')).html).toContain(
      '<p class="flash ok" role="status">Golden image saved.</p>',
    );
    const forged = await page('/admin/images?done=%3Cb%3Ehi%3C%2Fb%3E');
    expect(forged.html).not.toContain('class="flash ok"');
    expect(forged.html).not.toContain('<b>hi</b>');
    // Confirmation pages and forms never show one.
    expect((await page('/admin/images/new?done=image-saved')).html).not.toContain('class="flash ok"');
  });

  it('asks for the public address on every signed-in page until one is set', async () => {
    expect((await page('/admin/blobs')).html).toContain('<strong>Set the public address first.</strong>');
    const saved = await post('/admin/settings', {
      _csrf: csrf,
      publicUrl: 'http://mirror.example.lan:8080',
      action: 'save',
    });
    expect(saved.status).toBe(303);
    expect(saved.location).toBe('/admin/settings?done=settings-saved');
    const after = await page('/admin/blobs');
    expect(after.html).not.toContain('address-banner');
    const cleared = await post('/admin/settings', { _csrf: csrf, action: 'clear' });
    expect(cleared.location).toBe('/admin/settings?done=settings-cleared');
  });

  it('re-shows a refused form with its status, message and field error', async () => {
    const { status, html } = await post('/admin/groups', { _csrf: csrf, name: '' });
    expect(status).toBe(400);
    expect(html).toContain('<title>Groups · goldmirror</title>');
    expect(html).toContain('<p class="flash bad" role="alert">');
    expect(html).toMatch(/<p class="field-error" id="group-name-error">[^<]+<\/p>/);
  });

  it('answers a missing thing with the framed error page, and a form without its token with 403', async () => {
    const missing = await page('/admin/images/999');
    expect(missing.status).toBe(404);
    expect(missing.html).toContain('<title>Not found · goldmirror</title>');
    expect(missing.html).toContain('aria-label="Main"');
    expect(missing.html).toContain('<a href="/admin">Back to the dashboard</a>');

    const forged = await post('/admin/groups', { name: 'No token' });
    expect(forged.status).toBe(403);
    expect(forged.html).toContain('<title>Something went wrong · goldmirror</title>');
    expect((await page('/admin/groups')).html).not.toContain('No token');
  });

  it('sends a visitor without a session to sign in, keeping where they were going', async () => {
    const res = await app.request('/admin/history', { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/login?next=%2Fadmin%2Fhistory');
  });
});
