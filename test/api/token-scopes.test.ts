/**
 * API token scopes over real servers: created with a scope (API and web
 * page), listed with scope and last use, enforced with 403 TOKEN_SCOPE, a
 * `sync` token enough for `goldmirror sync`, and tokens from before scopes
 * existed migrated as `admin`. (The route-table walk in auth.test.ts checks
 * every route against every scope.)
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncFrom } from '../../server/bundles/sync.js';
import { openDatabase } from '../../server/db/open.js';
import { migrationProvider } from '../../server/db/migrations/index.js';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken, type ApiTokenView } from '../../server/services/auth.js';
import { createImage } from '../../server/services/images.js';
import { anyString, bootstrapTestAdmin, call, expectError, mustSignIn, type Session } from '../helpers/api.js';
import { makeTempDir, putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

describe('API token scopes', () => {
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

  it('POST /api/v1/tokens takes a scope (admin when left out); a bad scope is refused with the choices', async () => {
    const read = await call<{ name: string; scope: string; token: string }>(m.url, 'POST', '/api/v1/tokens', {
      session,
      json: { name: 'dashboard', scope: 'read' },
    });
    expect(read.status, read.text).toBe(201);
    expect(read.body).toEqual({ name: 'dashboard', scope: 'read', token: anyString() });
    const plain = await call<{ scope: string }>(m.url, 'POST', '/api/v1/tokens', {
      session,
      json: { name: 'legacy-script' },
    });
    expect(plain.body.scope).toBe('admin');

    const bad = expectError(
      await call(m.url, 'POST', '/api/v1/tokens', { session, json: { name: 'nope', scope: 'write' } }),
      400,
      'VALIDATION_FAILED',
    );
    expect(bad.message).toMatch(/token scope: must be one of admin, read, sync/);
    expectError(
      await call(m.url, 'POST', '/api/v1/tokens', { session, json: { name: 'nope', scope: 'read', extra: 1 } }),
      400,
      'VALIDATION_FAILED',
    );
    expect(
      (await call<ApiTokenView[]>(m.url, 'GET', '/api/v1/tokens', { session })).body.map((t) => t.name),
    ).not.toContain('nope');

    // A read token reads, and is told which scope a change needs.
    expect((await call(m.url, 'GET', '/api/v1/images', { token: read.body.token })).status).toBe(200);
    expect((await call(m.url, 'GET', '/metrics', { token: read.body.token })).status).toBe(200);
    const refused = expectError(
      await call(m.url, 'POST', '/api/v1/groups', { token: read.body.token, json: { name: 'by reader' } }),
      403,
      'TOKEN_SCOPE',
    );
    expect(refused.message).toBe('the API token "dashboard" has scope "read"; POST /api/v1/groups needs scope "admin"');
    expect((await call<unknown[]>(m.url, 'GET', '/api/v1/groups', { session })).body).toEqual([]);
    // Nor can a read token mint itself a stronger one.
    expectError(
      await call(m.url, 'POST', '/api/v1/tokens', {
        token: read.body.token,
        json: { name: 'escalate', scope: 'admin' },
      }),
      403,
      'TOKEN_SCOPE',
    );
  });

  it('records and shows each token’s scope and last use (API and web page)', async () => {
    const { token } = await createApiToken(m.runtime, cliActor, 'metrics-scraper', 'read');
    const before = (await call<ApiTokenView[]>(m.url, 'GET', '/api/v1/tokens', { session })).body.find(
      (t) => t.name === 'metrics-scraper',
    );
    expect(before).toEqual({ name: 'metrics-scraper', scope: 'read', createdAt: anyString(), lastUsedAt: null });
    const usedAt = Date.now();
    expect((await call(m.url, 'GET', '/metrics', { token })).status).toBe(200);
    const after = (await call<ApiTokenView[]>(m.url, 'GET', '/api/v1/tokens', { session })).body.find(
      (t) => t.name === 'metrics-scraper',
    );
    expect(Date.parse(after!.lastUsedAt!)).toBeGreaterThanOrEqual(usedAt - 1000);
    // A refused request is a use too: it shows someone holds the token.
    const { token: syncOnly } = await createApiToken(m.runtime, cliActor, 'branch-x', 'sync');
    expectError(await call(m.url, 'GET', '/api/v1/images', { token: syncOnly }), 403, 'TOKEN_SCOPE');
    expect(
      (await call<ApiTokenView[]>(m.url, 'GET', '/api/v1/tokens', { session })).body.find((t) => t.name === 'branch-x')
        ?.lastUsedAt,
    ).not.toBeNull();

    const page = await call(m.url, 'GET', '/admin/tokens', { session });
    expect(page.status).toBe(200);
    const row =
      /<tr><td class="mono">metrics-scraper<\/td><td>read<\/td><td class="hide-narrow">([^<]+)<\/td><td>([^<]+)<\/td>/.exec(
        page.text,
      );
    expect(row?.[2]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    expect(page.text).toMatch(/<td class="mono">branch-x<\/td><td>sync<\/td>/);
  });

  it('creates and revokes tokens through the web page; the new token appears once, in the answer, never in a URL', async () => {
    const form = (fields: Record<string, string>) =>
      new URLSearchParams({ _csrf: session.csrfToken, ...fields }).toString();
    const created = await call(m.url, 'POST', '/admin/tokens', {
      session,
      raw: form({ name: 'ci-reader', scope: 'read' }),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBeNull();
    expect(created.headers.get('cache-control')).toBe('no-store');
    const value = /id="token-value" class="copy-value"[^>]*>(gm_[A-Za-z0-9_-]+)</.exec(created.text)?.[1];
    expect(value).toBeDefined();
    expect((await call(m.url, 'GET', '/api/v1/images', { token: value })).status).toBe(200);
    expectError(await call(m.url, 'DELETE', '/api/v1/images/1', { token: value }), 403, 'TOKEN_SCOPE');
    // Shown once: the list page afterwards has the name and scope, not the token.
    const list = await call(m.url, 'GET', '/admin/tokens', { session });
    expect(list.text).toContain('ci-reader');
    expect(list.text).not.toContain(value);

    const invalid = await call(m.url, 'POST', '/admin/tokens', {
      session,
      raw: form({ name: 'bad name!', scope: 'read' }),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(invalid.status).toBe(400);
    expect(invalid.text).toContain('must be 1-64 letters, digits, dot, dash or underscore');
    const noScope = await call(m.url, 'POST', '/admin/tokens', {
      session,
      raw: form({ name: 'no-scope' }),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(noScope.status).toBe(400);
    expect(noScope.text).toContain('must be one of admin, read, sync');

    const revoked = await call(m.url, 'POST', '/admin/tokens/ci-reader/revoke', {
      session,
      raw: form({}),
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(revoked.status).toBe(303);
    expect(revoked.headers.get('location')).toBe('/admin/tokens?done=token-revoked');
    expectError(await call(m.url, 'GET', '/api/v1/images', { token: value }), 401, 'UNAUTHORIZED');
  });
});

describe('a sync-scoped token', () => {
  it('is all `goldmirror sync` needs from its upstream, and nothing more', async () => {
    const hq = await startMirror();
    const branch = await startMirror();
    try {
      const sha = await putBlob(hq, testBytes(100_000, 'scoped-sync'), 'Win11.pvmp');
      await createImage(
        hq.runtime,
        cliActor,
        { name: 'Windows 11', arm64: { enabled: true, sha256: sha } },
        'http://x',
      );
      const { token } = await createApiToken(hq.runtime, cliActor, 'branch-office', 'sync');

      const report = await syncFrom(branch.runtime.ingestDeps, { from: hq.url, token, actor: cliActor });
      expect(report.fetched).toEqual([sha]);
      expect(await branch.runtime.db.selectFrom('images').select('name').execute()).toEqual([{ name: 'Windows 11' }]);

      // The same token reads nothing else and changes nothing.
      for (const [method, route] of [
        ['GET', '/api/v1/images'],
        ['GET', '/api/v1/export'],
        ['GET', '/metrics'],
        ['DELETE', '/api/v1/images/1'],
      ] as const) {
        const res = await call(hq.url, method, route, { token });
        expect({ route, ...expectError(res, 403, 'TOKEN_SCOPE') }).toMatchObject({ route, tokenScope: 'sync' });
      }
    } finally {
      await hq.close();
      await branch.close();
    }
  });
});

describe('migration 0005-token-scopes', () => {
  it('keeps tokens made before scopes existed as admin, and the database refuses unknown scopes', async () => {
    const dir = await makeTempDir();
    const file = path.join(dir, 'old.db');
    try {
      // A database as the previous release left it, with one token.
      // The tables as of 0004: api_tokens without a scope column.
      const old = new Kysely<{
        api_tokens: { name: string; token_hash: string; created_at: number; last_used_at: number | null };
      }>({ dialect: new SqliteDialect({ database: new SQLite(file) }) });
      const { error } = await new Migrator({ db: old, provider: migrationProvider }).migrateTo('0004-ingested-at');
      expect(error).toBeUndefined();
      await old
        .insertInto('api_tokens')
        .values({ name: 'old-ci', token_hash: 'a'.repeat(64), created_at: 1, last_used_at: null })
        .execute();
      await old.destroy();

      const db = await openDatabase({ file });
      try {
        expect(await db.selectFrom('api_tokens').select(['name', 'scope']).execute()).toEqual([
          { name: 'old-ci', scope: 'admin' },
        ]);
        await expect(
          db
            .insertInto('api_tokens')
            .values({
              name: 'bad',
              token_hash: 'b'.repeat(64),
              created_at: 1,
              last_used_at: null,
              scope: 'write' as 'admin',
            })
            .execute(),
        ).rejects.toThrow(/CHECK constraint failed/);
      } finally {
        await db.destroy();
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
