/**
 * Group names are unique regardless of case (migration 0007): the API's 409,
 * the schema's own unique index on lower(name), the CLI's lookups, and the
 * migration of existing groups that differ only in case.
 */
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Migration } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { constraintViolation } from '../../server/db/errors.js';
import * as m0001 from '../../server/db/migrations/0001-blobs.js';
import * as m0002 from '../../server/db/migrations/0002-portal-model.js';
import * as m0003 from '../../server/db/migrations/0003-activity.js';
import * as m0004 from '../../server/db/migrations/0004-ingested-at.js';
import { openDatabase } from '../../server/db/open.js';
import type { Database } from '../../server/db/schema.js';
import type { GroupView } from '../../server/services/groups.js';
import { createGroup, findGroupRef } from '../../server/services/groups.js';
import { cliActor } from '../../server/services/audit.js';
import { exportBundle } from '../../server/bundles/export.js';
import { buildManifest } from '../../server/services/bundle-manifest.js';
import { importBundle } from '../../server/bundles/import.js';
import { call, expectError, issueToken } from '../helpers/api.js';
import { makeTempDir, startMirror, type TestMirror } from '../helpers/env.js';

describe('group names are unique regardless of case', () => {
  let m: TestMirror;
  let token: string;
  const api = <T = unknown>(method: string, p: string, json?: unknown) =>
    call<T>(m.url, method, `/api/v1${p}`, { token, json });

  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'nocase');
  });
  afterAll(async () => {
    await m.close();
  });

  it('answers 409 NAME_TAKEN for another spelling of a taken name, on create and on rename, with the same wording', async () => {
    const sales = await api<GroupView>('POST', '/groups', { name: 'Sales' });
    expect(sales.status).toBe(201);
    const other = await api<GroupView>('POST', '/groups', { name: 'Design' });

    const exact = expectError(await api('POST', '/groups', { name: 'Sales' }), 409, 'NAME_TAKEN');
    expect(exact.message).toBe('a group named "Sales" already exists');
    for (const spelling of ['SALES', 'sales', ' sAlEs ']) {
      const e = expectError(await api('POST', '/groups', { name: spelling }), 409, 'NAME_TAKEN');
      expect(e.message).toBe('a group named "Sales" already exists (group names are compared regardless of case)');
    }
    const rename = expectError(await api('PATCH', `/groups/${other.body.id}`, { name: 'sales' }), 409, 'NAME_TAKEN');
    expect(rename.message).toContain('a group named "Sales" already exists');

    // A group may change the case of its own name.
    const recased = await api<GroupView>('PATCH', `/groups/${sales.body.id}`, { name: 'SALES' });
    expect({ status: recased.status, name: recased.body.name }).toEqual({ status: 200, name: 'SALES' });
    const names = (await api<GroupView[]>('GET', '/groups')).body.map((g) => g.name);
    expect(names).toEqual(['Design', 'SALES']);
  });

  it('is enforced by the schema itself: a direct insert that differs only in case is a unique violation', async () => {
    const now = Date.now();
    const insert = (name: string) =>
      m.runtime.db
        .insertInto('groups')
        .values({ name, license_key: null, is_primary: 0, image_id: null, created_at: now, updated_at: now })
        .execute();
    await insert('Schema Check');
    let caught: unknown = null;
    try {
      await insert('SCHEMA check');
    } catch (err) {
      caught = err;
    }
    expect(constraintViolation(caught)).toMatchObject({
      kind: 'unique',
      detail: expect.stringContaining('groups_name_nocase') as string,
    });
    // ASCII case only, as SQLite's lower() (and PostgreSQL's lower(name COLLATE "C")) fold it.
    await insert('Équipe');
    await insert('équipe');
  });

  it('finds a group by any spelling of its name for the CLI', async () => {
    const row = await findGroupRef(m.runtime, 'design');
    expect(row.name).toBe('Design');
  });
});

describe('bundle import and case-only differences', () => {
  it('refuses a bundle whose group differs only in case from a group here (BUNDLE_CONFLICT), changing nothing', async () => {
    const a = await startMirror();
    const b = await startMirror();
    try {
      await createGroup(a.runtime, cliActor, { name: 'sales' });
      await createGroup(b.runtime, cliActor, { name: 'Sales', licenseKey: 'KEEP' });
      const manifest = await buildManifest(a.runtime, { images: [], includeBlobs: false });
      const before = await b.runtime.db.selectFrom('groups').selectAll().execute();
      await expect(
        importBundle(b.runtime.ingestDeps, exportBundle(a.runtime.store, manifest), { dryRun: false, actor: cliActor }),
      ).rejects.toMatchObject({
        code: 'BUNDLE_CONFLICT',
        message: expect.stringContaining('group "sales" differs only in case from group "Sales" here') as string,
      });
      expect(await b.runtime.db.selectFrom('groups').selectAll().execute()).toEqual(before);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('migration 0007 with groups that differ only in case', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir('goldmirror-migrate-');
  });

  it('keeps the oldest name, renames the others "(2)", "(3)" and records each rename in the audit log', async () => {
    const file = path.join(dir, 'old.db');
    // A database as the previous release left it (migrations 0001-0004).
    const old = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SQLite(file) }) });
    const upTo0004: Record<string, Migration> = {
      '0001-blobs': m0001,
      '0002-portal-model': m0002,
      '0003-activity': m0003,
      '0004-ingested-at': m0004,
    };
    const { error } = await new Migrator({
      db: old,
      provider: { getMigrations: () => Promise.resolve(upTo0004) },
    }).migrateToLatest();
    expect(error).toBeUndefined();
    const now = Date.now();
    const long = `${'L'.repeat(100)}`;
    for (const name of ['Sales', 'sales', 'Design', 'SALES', 'sales (2)', long, long.toLowerCase()]) {
      await old
        .insertInto('groups')
        .values({ name, license_key: null, is_primary: 0, image_id: null, created_at: now, updated_at: now })
        .execute();
    }
    await old.destroy();

    const db = await openDatabase({ file });
    try {
      const groups = await db.selectFrom('groups').select(['id', 'name']).orderBy('id').execute();
      expect(groups.map((g) => g.name)).toEqual([
        'Sales',
        'sales (3)',
        'Design',
        'SALES (4)',
        'sales (2)',
        long,
        `${'l'.repeat(96)} (2)`,
      ]);
      const renames = await db
        .selectFrom('audit_log')
        .selectAll()
        .where('action', '=', 'group.rename')
        .orderBy('id')
        .execute();
      expect(
        renames.map((r) => ({ actor: r.actor, target: r.target, details: JSON.parse(r.details) as unknown })),
      ).toEqual([
        {
          actor: 'system:migration-0007',
          target: `group:${groups[1]!.id}`,
          details: {
            from: 'sales',
            to: 'sales (3)',
            name: 'sales (3)',
            reason: 'group names are now unique regardless of case, and "Sales" already existed',
          },
        },
        {
          actor: 'system:migration-0007',
          target: `group:${groups[3]!.id}`,
          details: {
            from: 'SALES',
            to: 'SALES (4)',
            name: 'SALES (4)',
            reason: 'group names are now unique regardless of case, and "Sales" already existed',
          },
        },
        {
          actor: 'system:migration-0007',
          target: `group:${groups[6]!.id}`,
          details: {
            from: long.toLowerCase(),
            to: `${'l'.repeat(96)} (2)`,
            name: `${'l'.repeat(96)} (2)`,
            reason: `group names are now unique regardless of case, and "${long}" already existed`,
          },
        },
      ]);
      // And from now on the index holds.
      await expect(
        db
          .insertInto('groups')
          .values({
            name: 'design',
            license_key: null,
            is_primary: 0,
            image_id: null,
            created_at: now,
            updated_at: now,
          })
          .execute(),
      ).rejects.toThrow(/UNIQUE constraint failed/);
    } finally {
      await db.destroy();
    }
  });
});
