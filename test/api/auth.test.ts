/**
 * Admin authentication over a real server: every non-public route needs
 * credentials, session cookies need CSRF tokens on unsafe methods, bearer
 * tokens can be revoked, sign-in is throttled, and the first admin is made
 * the way `goldmirror serve` makes it. scrypt is slow on purpose (~100 ms a
 * hash), so sign-ins are counted: each one here is needed by its test.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, PUBLIC_PATHS } from '../../server/app.js';
import { createUploadServer } from '../../server/http/uploads.js';
import { PUBLIC_API_ROUTES } from '../../server/routes/api.js';
import type { AuditEntry } from '../../server/services/audit.js';
import { bootstrapAdmin, createApiToken, INITIAL_PASSWORD_FILE } from '../../server/services/auth.js';
import type { GroupView } from '../../server/services/groups.js';
import type { ImageView } from '../../server/services/images.js';
import {
  ADMIN_PASSWORD,
  anyString,
  bootstrapTestAdmin,
  call,
  errorOf,
  expectError,
  issueToken,
  matching,
  mustSignIn,
  signIn,
  type ApiResult,
  type Session,
} from '../helpers/api.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

describe('authentication', () => {
  let m: TestMirror;
  let sessionA: Session;
  let sessionB: Session;
  let token: string;
  let readToken: string;
  let syncToken: string;

  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
    sessionA = await mustSignIn(m.url);
    sessionB = await mustSignIn(m.url);
    token = await issueToken(m, 'auth-test');
    readToken = (await createApiToken(m.runtime, { kind: 'system', name: 'test-setup' }, 'walk-read', 'read')).token;
    syncToken = (await createApiToken(m.runtime, { kind: 'system', name: 'test-setup' }, 'walk-sync', 'sync')).token;
  });
  afterAll(async () => {
    await m?.close();
  });

  it('refuses every route except /healthz, /d/ links and the public ones without valid credentials', async () => {
    // Only its route table is read; the requests below go to the running server.
    const { ingestDeps, store, log } = m.runtime;
    const app = createApp({
      ...m.runtime,
      uploads: await createUploadServer({ ingestDeps, store, log, baseUrl: async () => null }),
    });
    const entries = [
      ...new Map(app.routes.map((r) => [`${r.method} ${r.path}`, { method: r.method, path: r.path }])).values(),
    ];
    const isPublic = (method: string, routePath: string): boolean =>
      routePath.startsWith('/d/') ||
      PUBLIC_PATHS.has(routePath) ||
      PUBLIC_PATHS.has(`${method} ${routePath}`) ||
      PUBLIC_API_ROUTES.has(`${method} ${routePath}`);
    const candidates = entries.filter((e) => !isPublic(e.method, e.path));
    // The walk must see the real route table, not an empty or partial one.
    const keys = entries.map((e) => `${e.method} ${e.path}`);
    expect(keys).toContain('GET /healthz');
    expect(keys).toContain('POST /api/v1/session');
    for (const known of [
      'GET /metrics',
      'GET /api/v1/images',
      'DELETE /api/v1/images/:id',
      'POST /api/v1/images/:id/check',
      'PATCH /api/v1/groups/:id',
      'DELETE /api/v1/tokens/:name',
      'DELETE /api/v1/blobs/:sha256',
      'POST /api/v1/gc',
      'GET /api/v1/audit',
    ]) {
      expect(keys).toContain(known);
    }
    expect(candidates.length).toBeGreaterThanOrEqual(25);

    // Real sample entities, so that with credentials each request reaches its handler.
    const sha = await putBlob(m, testBytes(2048, 'auth-walk'), 'walk.pvmp');
    const image = await call<ImageView>(m.url, 'POST', '/api/v1/images', {
      token,
      json: { name: 'Walk image', arm64: { enabled: true, sha256: sha } },
    });
    const group = await call<GroupView>(m.url, 'POST', '/api/v1/groups', { token, json: { name: 'Walk group' } });
    await issueToken(m, 'walk-sample');
    const sample = (routePath: string): string =>
      routePath
        .replace(/:(\w+)(\{[^}]*\})?/g, (_, name: string) => {
          if (name === 'id') return String(routePath.includes('/groups/') ? group.body.id : image.body.id);
          if (name === 'sha256') return sha;
          if (name === 'name') return 'walk-sample';
          if (name === 'version') return '26.3.3-57507';
          throw new Error(`no sample value for :${name} in ${routePath}; add one to this test`);
        })
        .replace(/\*/g, 'sample');
    const routeNotFound = (res: ApiResult): boolean =>
      res.status === 404 && /^no route for/.test(errorOf(res)?.message ?? '');

    const refusals: Record<string, Record<string, string>> = {
      'no credentials': {},
      'unknown bearer token': { authorization: `Bearer gm_${'A'.repeat(43)}` },
      'not a bearer token': { authorization: `Basic ${Buffer.from('admin:x').toString('base64')}` },
      'unknown session cookie': { cookie: 'gm_session=forged' },
    };
    const checked: string[] = [];
    const scopeChecks: Record<string, number> = {};
    for (const entry of candidates) {
      // `all()` routes and `use()` middleware both show up as ALL: try two methods.
      for (const method of entry.method === 'ALL' ? ['GET', 'POST'] : [entry.method]) {
        const key = `${method} ${entry.path}`;
        const url = sample(entry.path);
        const body = method === 'GET' || method === 'HEAD' ? {} : { json: {} };
        const results = await Promise.all(
          Object.entries(refusals).map(
            async ([why, headers]) => [why, await call(m.url, method, url, { ...body, headers })] as const,
          ),
        );
        if (entry.method === 'ALL' && routeNotFound(await call(m.url, method, url, { ...body, token }))) {
          // A use() pattern with no handler of its own (e.g. /* or /api/v1/*): nothing answers
          // there even signed in; without credentials it must still not answer anything else.
          for (const [why, res] of results)
            expect({ key, why, refused: [401, 303, 404].includes(res.status) }).toEqual({ key, why, refused: true });
          continue;
        }
        for (const [why, res] of results) {
          // The console's pages send a browser to the sign-in page (a bad bearer token gets a 401
          // error page); everything else answers 401 JSON.
          const page = entry.path.startsWith('/admin');
          const toSignIn = res.status === 303 && (res.headers.get('location') ?? '').split('?')[0] === '/admin/login';
          const unauthorized = res.status === 401 && (page || errorOf(res)?.code === 'UNAUTHORIZED');
          const refused = unauthorized || (page && toSignIn);
          expect({ route: key, why, status: res.status, refused }).toEqual({
            route: key,
            why,
            status: res.status,
            refused: true,
          });
        }
        const allowed = await call(m.url, method, url, { ...body, token });
        expect({ route: key, status: allowed.status }).not.toEqual({ route: key, status: 401 });
        // (Signing out redirects to the sign-in page too, but never with ?next= as a refusal does.)
        expect(allowed.headers.get('location') ?? '', key).not.toMatch(/^\/admin\/login\?next=/);
        expect(routeNotFound(allowed), key).toBe(false);

        // Token scopes (written out here, not taken from the code): read = GET/HEAD of the API and
        // /metrics; sync = only the export manifest that `goldmirror sync` reads and a replica's
        // heartbeat; admin = everything.
        const reading = method === 'GET' || method === 'HEAD';
        const readAllowed = reading && (entry.path.startsWith('/api/v1/') || entry.path === '/metrics');
        const heartbeat = method === 'POST' && entry.path === '/api/v1/replicas/heartbeat';
        const syncAllowed = (reading && entry.path === '/api/v1/export/manifest') || heartbeat;
        for (const [scope, scoped, mayPass] of [
          // A read token may not send a heartbeat (it would make a replica), though read otherwise includes sync.
          ['read', readToken, readAllowed],
          ['sync', syncToken, syncAllowed],
        ] as const) {
          const res = await call(m.url, method, url, { ...body, token: scoped });
          const needed = readAllowed ? 'read' : heartbeat ? 'sync' : 'admin';
          if (mayPass) {
            expect({ route: key, scope, status: res.status }).not.toEqual({ route: key, scope, status: 401 });
            expect({ route: key, scope, status: res.status }).not.toEqual({ route: key, scope, status: 403 });
          } else if (entry.path.startsWith('/admin')) {
            // The console's error page, in HTML, with the same words.
            expect({
              route: key,
              scope,
              status: res.status,
              says: res.text.includes(`needs scope &quot;${needed}&quot;`),
            }).toEqual({ route: key, scope, status: 403, says: true });
          } else {
            const error = expectError(res, 403, 'TOKEN_SCOPE');
            expect({ route: key, scope, message: error.message }).toEqual({
              route: key,
              scope,
              message: matching(new RegExp(`has scope "${scope}"; .* needs scope "${needed}"`)),
            });
            expect(error).toMatchObject({ tokenScope: scope, requiredScope: needed });
          }
          scopeChecks[`${scope} ${mayPass ? 'allowed' : 'refused'}`] =
            (scopeChecks[`${scope} ${mayPass ? 'allowed' : 'refused'}`] ?? 0) + 1;
        }
        checked.push(key);
      }
    }
    expect(checked.length).toBeGreaterThanOrEqual(25);
    // Both outcomes were seen for both scopes (sync is allowed exactly two routes).
    expect(scopeChecks['read allowed']).toBeGreaterThanOrEqual(10);
    expect(scopeChecks['read refused']).toBeGreaterThanOrEqual(10);
    expect(scopeChecks['sync allowed']).toBe(2);
    expect(scopeChecks['sync refused']).toBeGreaterThanOrEqual(20);
    // And the public ones really are public.
    expect((await fetch(`${m.url}/healthz`)).status).toBe(200);
  });

  it('sign-in sets an HttpOnly, SameSite=Strict session cookie and returns the CSRF token', async () => {
    const before = Date.now();
    const { res, session } = await signIn(m.url);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ username: 'admin', csrfToken: anyString(), expiresAt: anyString() });
    const expires = Date.parse(res.body.expiresAt);
    expect(expires - before).toBeGreaterThan(11 * 3600_000);
    expect(expires - before).toBeLessThanOrEqual(12 * 3600_000 + 5_000);
    const attrs = session!.setCookie.split(';').map((a) => a.trim().toLowerCase());
    expect(attrs[0]).toMatch(/^gm_session=[a-z0-9_-]{40,}$/);
    expect(attrs).toContain('httponly');
    expect(attrs).toContain('samesite=strict');
    expect(attrs).toContain('path=/');
    expect(attrs.some((a) => a.startsWith('expires='))).toBe(true);
    expect(attrs).not.toContain('secure'); // plain http: a Secure cookie would never come back
    expect(session!.cookie).not.toContain(res.body.csrfToken);

    const who = await call(m.url, 'GET', '/api/v1/session', { session: session! });
    expect(who.body).toEqual({ actor: 'user:admin', username: 'admin', csrfToken: res.body.csrfToken });

    // Wrong credentials: 401, no cookie.
    for (const attempt of [
      { username: 'admin', password: 'wrong password' },
      { username: 'nobody', password: ADMIN_PASSWORD },
    ]) {
      const bad = await call(m.url, 'POST', '/api/v1/session', { json: attempt });
      expectError(bad, 401, 'UNAUTHORIZED');
      expect(bad.headers.getSetCookie()).toEqual([]);
    }
    expectError(
      await call(m.url, 'POST', '/api/v1/session', { json: { username: 'admin' } }),
      400,
      'VALIDATION_FAILED',
    );
    expectError(
      await call(m.url, 'POST', '/api/v1/session', {
        raw: 'username=admin',
        contentType: 'application/x-www-form-urlencoded',
      }),
      400,
      'BAD_REQUEST',
    );
  });

  it('marks the cookie Secure when the public URL is https', async () => {
    const secure = await startMirror({ publicUrl: 'https://mirror.test' });
    try {
      await bootstrapTestAdmin(secure);
      const session = await mustSignIn(secure.url);
      expect(session.setCookie.split(';').map((a) => a.trim().toLowerCase())).toContain('secure');
    } finally {
      await secure.close();
    }
  });

  it('refuses cookie-authenticated POST/PATCH/DELETE without the right X-CSRF-Token (403)', async () => {
    const groupsNow = async () =>
      (await call<GroupView[]>(m.url, 'GET', '/api/v1/groups', { session: sessionA })).body.map((g) => g.name);
    // Safe methods need no CSRF token.
    expect((await call(m.url, 'GET', '/api/v1/groups', { session: sessionA, csrf: null })).status).toBe(200);

    const wrongs: Array<[string, string | null]> = [
      ['missing', null],
      ['wrong', 'not-the-token'],
      ['another session’s', sessionB.csrfToken],
      ['empty', ''],
    ];
    for (const [why, csrf] of wrongs) {
      const res = await call(m.url, 'POST', '/api/v1/groups', {
        session: sessionA,
        csrf,
        json: { name: `csrf ${why}` },
      });
      expect(errorOf(res)?.code, why).toBe('FORBIDDEN');
      expectError(res, 403, 'FORBIDDEN');
    }
    expect((await groupsNow()).filter((n) => n.startsWith('csrf'))).toEqual([]);

    const created = await call<GroupView>(m.url, 'POST', '/api/v1/groups', {
      session: sessionA,
      json: { name: 'csrf ok' },
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id;

    expectError(
      await call(m.url, 'PATCH', `/api/v1/groups/${id}`, {
        session: sessionA,
        csrf: null,
        json: { name: 'csrf renamed' },
      }),
      403,
      'FORBIDDEN',
    );
    expectError(
      await call(m.url, 'PATCH', `/api/v1/groups/${id}`, {
        session: sessionA,
        csrf: sessionB.csrfToken,
        json: { name: 'csrf renamed' },
      }),
      403,
      'FORBIDDEN',
    );
    expect((await call<GroupView>(m.url, 'GET', `/api/v1/groups/${id}`, { session: sessionA })).body.name).toBe(
      'csrf ok',
    );
    const patched = await call<GroupView>(m.url, 'PATCH', `/api/v1/groups/${id}`, {
      session: sessionA,
      json: { name: 'csrf renamed' },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.name).toBe('csrf renamed');

    expectError(
      await call(m.url, 'DELETE', `/api/v1/groups/${id}`, { session: sessionA, csrf: null }),
      403,
      'FORBIDDEN',
    );
    expect((await call(m.url, 'GET', `/api/v1/groups/${id}`, { session: sessionA })).status).toBe(200);
    expect((await call(m.url, 'DELETE', `/api/v1/groups/${id}`, { session: sessionA })).status).toBe(200);
    expect((await call(m.url, 'GET', `/api/v1/groups/${id}`, { session: sessionA })).status).toBe(404);

    // Signing out is an unsafe method too: without the token the session survives.
    expectError(await call(m.url, 'DELETE', '/api/v1/session', { session: sessionA, csrf: null }), 403, 'FORBIDDEN');
    expect((await call(m.url, 'GET', '/api/v1/session', { session: sessionA })).status).toBe(200);

    // The audit log names the signed-in user.
    const audit = (await call<AuditEntry[]>(m.url, 'GET', '/api/v1/audit?limit=10', { session: sessionA })).body;
    expect(audit.find((e) => e.action === 'group.create' && e.target === `group:${id}`)).toMatchObject({
      actor: 'user:admin',
      details: { name: 'csrf ok' },
    });
    expect(audit.find((e) => e.action === 'group.update' && e.target === `group:${id}`)).toMatchObject({
      actor: 'user:admin',
    });
  });

  it('accepts bearer tokens without CSRF, and refuses them once revoked', async () => {
    const ci = await call<{ name: string; token: string }>(m.url, 'POST', '/api/v1/tokens', {
      session: sessionA,
      json: { name: 'deploy-bot' },
    });
    expect(ci.status, ci.text).toBe(201);
    const bot = ci.body.token;
    const created = await call<GroupView>(m.url, 'POST', '/api/v1/groups', {
      token: bot,
      json: { name: 'made by bot' },
    });
    expect(created.status, created.text).toBe(201);
    const audit = (await call<AuditEntry[]>(m.url, 'GET', '/api/v1/audit?limit=3', { token: bot })).body;
    expect(audit.find((e) => e.action === 'group.create')).toMatchObject({
      actor: 'token:deploy-bot',
      target: `group:${created.body.id}`,
    });
    expect(audit.find((e) => e.action === 'token.create')).toMatchObject({
      actor: 'user:admin',
      target: 'token:deploy-bot',
    });
    // Lower-case scheme works too; a bad token is refused even next to a valid cookie.
    expect((await call(m.url, 'GET', '/api/v1/session', { headers: { authorization: `bearer ${bot}` } })).status).toBe(
      200,
    );
    expectError(
      await call(m.url, 'GET', '/api/v1/session', { session: sessionA, headers: { authorization: 'Bearer gm_wrong' } }),
      401,
      'UNAUTHORIZED',
    );

    expect((await call(m.url, 'DELETE', '/api/v1/tokens/deploy-bot', { session: sessionA })).status).toBe(204);
    expectError(await call(m.url, 'GET', '/api/v1/groups', { token: bot }), 401, 'UNAUTHORIZED');
    expectError(
      await call(m.url, 'POST', '/api/v1/groups', { token: bot, json: { name: 'after revoke' } }),
      401,
      'UNAUTHORIZED',
    );
    const audit2 = (await call<AuditEntry[]>(m.url, 'GET', '/api/v1/audit?limit=1', { session: sessionA })).body;
    expect(audit2[0]).toMatchObject({ actor: 'user:admin', action: 'token.revoke', target: 'token:deploy-bot' });
  });

  it('signs out: the cookie is cleared and the session ends on the server', async () => {
    const session = await mustSignIn(m.url);
    const res = await call(m.url, 'DELETE', '/api/v1/session', { session });
    expect(res.status).toBe(204);
    const cleared = res.headers.getSetCookie().find((c) => c.startsWith('gm_session='));
    expect(cleared).toMatch(/^gm_session=;.*Max-Age=0/i);
    expectError(await call(m.url, 'GET', '/api/v1/session', { session }), 401, 'UNAUTHORIZED');
    // Other sessions are untouched.
    expect((await call(m.url, 'GET', '/api/v1/session', { session: sessionB })).status).toBe(200);
  });
});

describe('password change', () => {
  let m: TestMirror;
  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
  });
  afterAll(async () => {
    await m?.close();
  });

  it('ends every other session of the user and replaces the password', async () => {
    const mine = await mustSignIn(m.url);
    const other = await mustSignIn(m.url);
    const newPassword = 'a much better passphrase';

    const wrong = await call(m.url, 'POST', '/api/v1/session/password', {
      session: mine,
      json: { currentPassword: 'not it at all', newPassword },
    });
    expect(expectError(wrong, 400, 'VALIDATION_FAILED').fields).toEqual([
      { field: 'currentPassword', message: 'wrong password' },
    ]);
    expectError(
      await call(m.url, 'POST', '/api/v1/session/password', {
        session: mine,
        json: { currentPassword: ADMIN_PASSWORD, newPassword: 'short' },
      }),
      400,
      'VALIDATION_FAILED',
    );
    expectError(
      await call(m.url, 'POST', '/api/v1/session/password', {
        session: mine,
        csrf: null,
        json: { currentPassword: ADMIN_PASSWORD, newPassword },
      }),
      403,
      'FORBIDDEN',
    );
    // None of that ended anything.
    expect((await call(m.url, 'GET', '/api/v1/session', { session: other })).status).toBe(200);

    const changed = await call(m.url, 'POST', '/api/v1/session/password', {
      session: mine,
      json: { currentPassword: ADMIN_PASSWORD, newPassword },
    });
    expect(changed.status, changed.text).toBe(204);
    expect((await call(m.url, 'GET', '/api/v1/session', { session: mine })).status).toBe(200);
    expectError(await call(m.url, 'GET', '/api/v1/session', { session: other }), 401, 'UNAUTHORIZED');
    expect((await signIn(m.url, ADMIN_PASSWORD)).res.status).toBe(401);
    expect((await signIn(m.url, newPassword)).res.status).toBe(200);
    const audit = (await call<AuditEntry[]>(m.url, 'GET', '/api/v1/audit?limit=5', { session: mine })).body;
    expect(audit.find((e) => e.action === 'user.password_change')).toMatchObject({
      actor: 'user:admin',
      target: 'user:admin',
    });
  });
});

describe('sign-in throttling', () => {
  let m: TestMirror;
  beforeAll(async () => {
    m = await startMirror();
    await bootstrapTestAdmin(m);
  });
  afterAll(async () => {
    await m?.close();
  });

  /** Moves the lock into the past, as if its time had run out (the window of failures stays). */
  const expireLocks = () =>
    m.runtime.db
      .updateTable('login_failures')
      .set({ locked_until: Date.now() - 1 })
      .execute();

  it('answers 429 with Retry-After after repeated failures, even for the right password', async () => {
    for (let i = 1; i <= 5; i += 1) {
      expectError((await signIn(m.url, `wrong password ${i}`)).res, 401, 'UNAUTHORIZED');
    }
    const locked = (await signIn(m.url, ADMIN_PASSWORD)).res;
    expectError(locked, 429, 'TOO_MANY_REQUESTS');
    const retryAfter = Number(locked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(25);
    expect(retryAfter).toBeLessThanOrEqual(30);
    expect(locked.headers.getSetCookie()).toEqual([]);
    // The client address is locked too, whatever user name it tries.
    expectError((await signIn(m.url, ADMIN_PASSWORD, 'someone-else')).res, 429, 'TOO_MANY_REQUESTS');

    // When the lock runs out, the next failure locks for twice as long.
    await expireLocks();
    expectError((await signIn(m.url, 'wrong again')).res, 401, 'UNAUTHORIZED');
    const longer = (await signIn(m.url, ADMIN_PASSWORD)).res;
    expectError(longer, 429, 'TOO_MANY_REQUESTS');
    expect(Number(longer.headers.get('retry-after'))).toBeGreaterThan(55);
    expect(Number(longer.headers.get('retry-after'))).toBeLessThanOrEqual(60);

    // After that, the right password works and clears the record.
    await expireLocks();
    expect((await signIn(m.url, ADMIN_PASSWORD)).res.status).toBe(200);
    expect(await m.runtime.db.selectFrom('login_failures').selectAll().execute()).toEqual([]);
  });
});

describe('bootstrapAdmin (what `goldmirror serve` runs at start)', () => {
  it('first start without MIRROR_ADMIN_PASSWORD writes a generated password to a 0600 file', async () => {
    const m = await startMirror();
    try {
      const result = await bootstrapAdmin(m.runtime, m.dir, undefined);
      const file = path.join(m.dir, INITIAL_PASSWORD_FILE);
      expect(result).toEqual({
        created: true,
        generatedPassword: anyString(),
        passwordFile: file,
        passwordIgnored: false,
      });
      expect(result.generatedPassword!.length).toBeGreaterThanOrEqual(20);
      const stat = await fs.stat(file);
      expect((stat.mode & 0o777).toString(8)).toBe('600');
      expect(await fs.readFile(file, 'utf8')).toBe(`${result.generatedPassword}\n`);
      expect((await signIn(m.url, result.generatedPassword!)).res.status).toBe(200);

      // Later starts change nothing: no new password, the file keeps the first one.
      const unchanged = { created: false, generatedPassword: null, passwordFile: null, passwordIgnored: false };
      expect(await bootstrapAdmin(m.runtime, m.dir, undefined)).toEqual(unchanged);
      expect(await bootstrapAdmin(m.runtime, m.dir, '')).toEqual(unchanged);
      expect(await fs.readFile(file, 'utf8')).toBe(`${result.generatedPassword}\n`);
      expect(await m.runtime.db.selectFrom('users').select('username').execute()).toEqual([{ username: 'admin' }]);
      const audit = await m.runtime.db
        .selectFrom('audit_log')
        .select(['actor', 'action', 'target'])
        .where('action', '=', 'user.create')
        .execute();
      expect(audit).toEqual([{ actor: 'system:first-start', action: 'user.create', target: 'user:admin' }]);
    } finally {
      await m.close();
    }
  });

  it('MIRROR_ADMIN_PASSWORD creates the admin once and never overwrites it (a changed password survives restarts)', async () => {
    const m = await startMirror({ adminPassword: ADMIN_PASSWORD });
    try {
      expect(m.runtime.config.adminPassword).toBe(ADMIN_PASSWORD);
      expect(await bootstrapAdmin(m.runtime, m.dir, m.runtime.config.adminPassword)).toEqual({
        created: true,
        generatedPassword: null,
        passwordFile: null,
        passwordIgnored: false,
      });
      await expect(fs.access(path.join(m.dir, INITIAL_PASSWORD_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
      const session = await mustSignIn(m.url);

      // The admin changes the password on the page; other sessions end, this one stays.
      const other = await mustSignIn(m.url);
      const changedTo = 'changed on the page';
      expect(
        (
          await call(m.url, 'POST', '/api/v1/session/password', {
            session,
            json: { currentPassword: ADMIN_PASSWORD, newPassword: changedTo },
          })
        ).status,
      ).toBe(204);
      expectError(await call(m.url, 'GET', '/api/v1/session', { session: other }), 401, 'UNAUTHORIZED');

      // A restart with the same environment, or with another value, leaves that password and the session alone.
      for (const env of [ADMIN_PASSWORD, 'yet another admin password']) {
        expect(await bootstrapAdmin(m.runtime, m.dir, env)).toEqual({
          created: false,
          generatedPassword: null,
          passwordFile: null,
          passwordIgnored: true,
        });
      }
      expect((await call(m.url, 'GET', '/api/v1/session', { session })).status).toBe(200);
      expect((await signIn(m.url, ADMIN_PASSWORD)).res.status).toBe(401);
      expect((await signIn(m.url, changedTo)).res.status).toBe(200);
      expect(
        await m.runtime.db
          .selectFrom('audit_log')
          .select('action')
          .where('action', '=', 'user.password_reset')
          .execute(),
      ).toEqual([]);
      const created = await m.runtime.db
        .selectFrom('audit_log')
        .select(['actor', 'action'])
        .where('action', '=', 'user.create')
        .execute();
      expect(created).toEqual([{ actor: 'system:MIRROR_ADMIN_PASSWORD', action: 'user.create' }]);

      // A value too short to ever be used is still a configuration error.
      await expect(bootstrapAdmin(m.runtime, m.dir, 'too short')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    } finally {
      await m.close();
    }
  });
});
