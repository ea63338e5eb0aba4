/**
 * Protective headers on every admin page and API answer (and not on /d/
 * links), pages that run under the CSP (no inline script, handlers or style
 * attributes), and CSRF tokens that never travel in a URL.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrfMatches } from '../../server/http/auth.js';
import type { GroupView } from '../../server/services/groups.js';
import type { ImageView } from '../../server/services/images.js';
import { bootstrapTestAdmin, call, consolePages, issueToken, mustSignIn, type Session } from '../helpers/api.js';
import { putBlob, sha256Hex, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

/** Headers every answer of the app must carry, whatever made it. */
function expectProtected(what: string, headers: Headers): void {
  const csp = headers.get('content-security-policy') ?? '';
  const directives = Object.fromEntries(
    csp
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .map(([name = '', ...values]) => [name, values]),
  );
  expect({ what, csp: directives }).toMatchObject({
    what,
    csp: {
      'default-src': ["'none'"],
      'script-src': ["'self'"],
      'frame-ancestors': ["'none'"],
      'form-action': ["'self'"],
      'base-uri': ["'none'"],
    },
  });
  expect({ what, unsafe: /unsafe-(inline|eval|hashes)/.test(csp) }).toEqual({ what, unsafe: false });
  expect({
    what,
    frame: headers.get('x-frame-options'),
    referrer: headers.get('referrer-policy'),
    sniff: headers.get('x-content-type-options'),
  }).toEqual({ what, frame: 'DENY', referrer: 'same-origin', sniff: 'nosniff' });
}

describe('protective headers', () => {
  let m: TestMirror;
  let session: Session;
  let token: string;
  let sha: string;
  let image: ImageView;
  let group: GroupView;
  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
    session = await mustSignIn(m.url);
    token = await issueToken(m, 'headers');
    sha = await putBlob(m, testBytes(70_000, 'headers'), 'Headers.pvmp');
    image = (
      await call<ImageView>(m.url, 'POST', '/api/v1/images', {
        token,
        json: { name: 'Headers', arm64: { enabled: true, sha256: sha } },
      })
    ).body;
    group = (
      await call<GroupView>(m.url, 'POST', '/api/v1/groups', {
        token,
        json: { name: 'Headers group', imageId: image.id },
      })
    ).body;
  });
  afterAll(async () => {
    await m?.close();
  });

  const pages = (): string[] => [
    ...consolePages({ imageId: image.id, groupId: group.id, sha256: sha }),
    '/admin/no-such-page',
  ];

  it('on every admin page, API answer, error, redirect, /metrics and /healthz; no-store on all but the script files', async () => {
    const answers: Array<[string, Headers]> = [];
    for (const page of pages()) answers.push([`GET ${page}`, (await call(m.url, 'GET', page, { session })).headers]);
    const api: Array<[string, string, Parameters<typeof call>[3]]> = [
      ['GET', '/admin/login', {}],
      ['GET', '/admin', {}], // 303 to sign-in
      ['GET', '/', {}],
      ['GET', '/api/v1/images', { token }],
      ['GET', '/api/v1/tokens', { token }],
      ['GET', '/api/v1/images', {}], // 401
      ['GET', '/api/v1/nothing', { token }], // 404
      ['POST', '/api/v1/groups', { token, json: { name: '' } }], // 400
      ['POST', '/api/v1/session', { json: { username: 'admin', password: 'wrong password' } }], // 401
      ['GET', '/metrics', { token }],
      ['GET', '/healthz', {}],
      ['GET', '/api/v1/health', { token }],
      ['OPTIONS', '/api/v1/uploads', { session, headers: { 'tus-resumable': '1.0.0' } }], // tus answers itself
      ['POST', '/api/v1/uploads', { session, headers: { 'tus-resumable': '1.0.0', 'upload-length': '10' } }],
      ['GET', '/api/v1/export?blobs=false', { token }],
    ];
    for (const [method, path, options] of api) {
      const res = await call(m.url, method, path, options);
      answers.push([`${method} ${path} → ${res.status}`, res.headers]);
    }
    expect(answers.length).toBeGreaterThanOrEqual(29);
    for (const [what, headers] of answers) {
      expectProtected(what, headers);
      // The same goes for the request id, which tus answers used to lose.
      expect({ what, requestId: /^[0-9a-f-]{36}$/.test(headers.get('x-request-id') ?? '') }).toEqual({
        what,
        requestId: true,
      });
      expect({ what, cache: headers.get('cache-control') }).toEqual({ what, cache: 'no-store' });
    }
    // The fixed script files may be cached a little (they carry no data), and are protected too.
    const script = await call(m.url, 'GET', '/admin/assets/upload.js', { session });
    expect(script.status).toBe(200);
    expectProtected('GET /admin/assets/upload.js', script.headers);
    expect(script.headers.get('cache-control')).toBe('private, max-age=300');
  });

  it('the style-src hash is exactly the page’s one inline stylesheet; pages carry no inline script, handlers or style attributes', async () => {
    // (An unknown /admin path answers the app's JSON 404, so it has no page to look at.)
    for (const page of [...pages().filter((p) => p !== '/admin/no-such-page'), '/admin/login']) {
      const res = await call(m.url, 'GET', page, page === '/admin/login' ? {} : { session });
      const html = res.text;
      const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((s) => s[1]!);
      expect({ page, styles: styles.length }).toEqual({ page, styles: 1 });
      const hash = `'sha256-${createHash('sha256').update(styles[0]!).digest('base64')}'`;
      expect({
        page,
        styleSrc: /style-src ([^;]+)/.exec(res.headers.get('content-security-policy') ?? '')?.[1],
      }).toEqual({ page, styleSrc: hash });
      // `>` selectors arrive as CSS, not as escaped HTML.
      expect({ page, escaped: styles[0]!.includes('&gt;') }).toEqual({ page, escaped: false });
      const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
      for (const [, attrs, body] of scripts)
        expect({ page, attrs, body }).toEqual({ page, attrs: matchingSrc(attrs!), body: '' });
      expect({ page, handlers: html.match(/\son[a-z]+\s*=/gi) ?? [] }).toEqual({ page, handlers: [] });
      expect({ page, styleAttrs: html.match(/\sstyle\s*=/gi) ?? [] }).toEqual({ page, styleAttrs: [] });
      expect({ page, jsUrls: /javascript:/i.test(html) }).toEqual({ page, jsUrls: false });
    }
  });

  it('not on /d/ links, which keep their own caching headers', async () => {
    for (const method of ['GET', 'HEAD']) {
      const res = await fetch(`${m.url}/d/${sha}/Headers.pvmp`, { method });
      expect(res.status).toBe(200);
      if (method === 'GET') expect(sha256Hex(Buffer.from(await res.arrayBuffer()))).toBe(sha);
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(res.headers.get('content-security-policy')).toBeNull();
      expect(res.headers.get('x-frame-options')).toBeNull();
    }
  });
});

/** A script element may only name a file of this origin's /admin/assets. */
function matchingSrc(attrs: string): string {
  return /^ src="\/admin\/assets\/[a-z.-]+\.js" defer=""$/.test(attrs) ? attrs : `(not a same-origin asset) ${attrs}`;
}

describe('CSRF tokens', () => {
  let m: TestMirror;
  let session: Session;
  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
    session = await mustSignIn(m.url);
  });
  afterAll(async () => {
    await m?.close();
  });

  it('never appear in a URL of any page, and the upload form carries its token as the first field', async () => {
    const token = session.csrfToken;
    for (const page of [
      '/admin',
      '/admin/upload',
      '/admin/images',
      '/admin/images/new',
      '/admin/groups',
      '/admin/blobs',
      '/admin/account',
      '/admin/tokens',
    ]) {
      const html = (await call(m.url, 'GET', page, { session })).text;
      expect(html).toContain(`name="_csrf" value="${token}"`);
      const urls = [...html.matchAll(/\s(?:href|action|src|formaction)="([^"]*)"/g)].map((u) => u[1]!);
      expect(urls.length).toBeGreaterThan(3);
      for (const url of urls)
        expect({ page, url, leaks: url.includes(token) || /[?&]_csrf=/.test(url) }).toEqual({
          page,
          url,
          leaks: false,
        });
    }
    const upload = (await call(m.url, 'GET', '/admin/upload', { session })).text;
    const form = /<form id="upload-form"[^>]*>([\s\S]*?)<\/form>/.exec(upload);
    expect(form?.[0]).toMatch(/^<form id="upload-form" method="post" action="\/admin\/upload" /);
    expect(/<input[^>]*>/.exec(form![1]!)?.[0]).toBe(`<input type="hidden" name="_csrf" value="${token}"/>`);
  });

  it('the no-JavaScript upload reads its CSRF token from the form before any file, and refuses a missing, wrong or URL-borne one', async () => {
    const data = testBytes(50_000, 'csrf-upload');
    const send = (csrf: string | null, query = '') => {
      const form = new FormData();
      if (csrf !== null) form.append('_csrf', csrf);
      form.append('package', new Blob([data]), 'csrf.pvmp');
      return fetch(`${m.url}/admin/upload${query}`, {
        method: 'POST',
        body: form,
        headers: { cookie: session.cookie },
        redirect: 'manual',
      });
    };
    for (const [why, res] of [
      ['missing', await send(null)],
      ['wrong', await send('x'.repeat(session.csrfToken.length))],
      ['shorter', await send(session.csrfToken.slice(1))],
      ['in the URL only (the old form)', await send(null, `?_csrf=${encodeURIComponent(session.csrfToken)}`)],
    ] as const) {
      expect({ why, status: res.status }).toEqual({ why, status: 403 });
      expect(await res.text()).toContain('CSRF token');
    }
    expect(await m.runtime.db.selectFrom('blobs').select('sha256').execute()).toEqual([]);

    const ok = await send(session.csrfToken);
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe(`/admin/blobs/${sha256Hex(data)}?done=blob-uploaded-unchecked`);
    expect(await m.runtime.db.selectFrom('blobs').select('sha256').execute()).toEqual([{ sha256: sha256Hex(data) }]);

    // An admin API token needs no CSRF token (a browser never sends one on its own).
    const apiToken = await issueToken(m, 'uploader');
    const byToken = new FormData();
    byToken.append('package', new Blob([testBytes(1000, 'token-upload')]), 'token.pvmp');
    const res = await fetch(`${m.url}/admin/upload`, {
      method: 'POST',
      body: byToken,
      headers: { authorization: `Bearer ${apiToken}` },
      redirect: 'manual',
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(
      `/admin/blobs/${sha256Hex(testBytes(1000, 'token-upload'))}?done=blob-uploaded-unchecked`,
    );
  });

  it('redirects after form posts never carry the token', async () => {
    const post = (path: string, fields: Record<string, string>) =>
      call(m.url, 'POST', path, {
        session,
        raw: new URLSearchParams({ _csrf: session.csrfToken, ...fields }).toString(),
        contentType: 'application/x-www-form-urlencoded',
      });
    const answers = [
      await post('/admin/groups', { name: 'Redirected' }),
      await post('/admin/verify', {}),
      await post('/admin/logout', {}),
    ];
    for (const res of answers) {
      expect(res.status).toBe(303);
      expect(res.headers.get('location') ?? '').not.toContain(session.csrfToken);
      expect(res.headers.get('location') ?? '').not.toContain('_csrf');
    }
  });

  it('are compared whole and exactly', () => {
    const expected = 'a'.repeat(43);
    expect(csrfMatches(expected, expected)).toBe(true);
    expect(csrfMatches(expected, `${'a'.repeat(42)}b`)).toBe(false);
    expect(csrfMatches(expected, 'a'.repeat(42))).toBe(false);
    expect(csrfMatches(expected, `${expected}a`)).toBe(false);
    expect(csrfMatches(expected, undefined)).toBe(false);
    expect(csrfMatches('', '')).toBe(false);
    // Multi-byte text of the same character length is not mistaken for the token.
    expect(csrfMatches(expected, 'é'.repeat(43))).toBe(false);
  });
});
