/**
 * The portal model's rules as the schema itself enforces them (migrations
 * 0002 and 0006), straight on the real SQLite file: the services check first,
 * but a concurrent writer or a future code path must still hit these walls.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Migration } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { constraintViolation, type ConstraintKind } from '../../server/db/errors.js';
import * as m0001 from '../../server/db/migrations/0001-blobs.js';
import * as m0002 from '../../server/db/migrations/0002-portal-model.js';
import * as m0003 from '../../server/db/migrations/0003-activity.js';
import * as m0004 from '../../server/db/migrations/0004-ingested-at.js';
import { openDatabase, type Db } from '../../server/db/open.js';
import type { Database } from '../../server/db/schema.js';
import { systemClock } from '../../server/services/deps.js';
import { getImage } from '../../server/services/images.js';
import { anyNumber, containing, matching } from '../helpers/api.js';
import { makeTempDir, putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

async function violation(op: Promise<unknown>): Promise<{ kind: ConstraintKind; detail: string } | 'no error'> {
  try {
    await op;
    return 'no error';
  } catch (err) {
    const v = constraintViolation(err);
    if (!v) throw err;
    return v;
  }
}

describe('portal model schema', () => {
  let mirror: TestMirror;
  let db: Db;
  let blobA: string;
  let blobB: string;
  const now = Date.now();

  const insertImage = (
    values: Partial<{
      name: string;
      arm64_enabled: 0 | 1;
      arm64_sha256: string | null;
      x86_64_enabled: 0 | 1;
      x86_64_sha256: string | null;
    }>,
  ) =>
    db
      .insertInto('images')
      .values({
        name: values.name ?? `image-${Math.random()}`,
        description: '',
        arm64_enabled: values.arm64_enabled ?? 0,
        arm64_sha256: values.arm64_sha256 ?? null,
        x86_64_enabled: values.x86_64_enabled ?? 0,
        x86_64_sha256: values.x86_64_sha256 ?? null,
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();

  const insertGroup = (
    values: Partial<{ name: string; license_key: string | null; is_primary: 0 | 1; image_id: number | null }>,
  ) =>
    db
      .insertInto('groups')
      .values({
        name: values.name ?? `group-${Math.random()}`,
        license_key: values.license_key ?? null,
        is_primary: values.is_primary ?? 0,
        image_id: values.image_id ?? null,
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();

  beforeAll(async () => {
    mirror = await startMirror();
    db = mirror.runtime.db;
    blobA = await putBlob(mirror, testBytes(4096, 'model-a'), 'a.pvmp');
    blobB = await putBlob(mirror, testBytes(4096, 'model-b'), 'b.pvmp');
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it('keeps image names unique', async () => {
    await insertImage({ name: 'Windows 11' });
    expect(await violation(insertImage({ name: 'Windows 11' }))).toMatchObject({
      kind: 'unique',
      detail: containing('images.name'),
    });
    // A different name is fine: the rule is uniqueness, not a broken insert.
    await expect(insertImage({ name: 'Windows 11 ARM' })).resolves.toMatchObject({ id: anyNumber() });
  });

  it('keeps group names and license keys unique, but allows many groups without a key', async () => {
    await insertGroup({ name: 'Sales', license_key: 'KEY-1' });
    // An exact duplicate breaks both the plain unique name and (since migration 0007) the index on lower(name);
    // SQLite names the index, PostgreSQL the constraint it checks first.
    expect(await violation(insertGroup({ name: 'Sales' }))).toMatchObject({
      kind: 'unique',
      detail: matching(/groups_name_nocase|groups\.name/),
    });
    expect(await violation(insertGroup({ name: 'SALES' }))).toMatchObject({
      kind: 'unique',
      detail: containing('groups_name_nocase'),
    });
    expect(await violation(insertGroup({ name: 'Marketing', license_key: 'KEY-1' }))).toMatchObject({
      kind: 'unique',
      detail: containing('groups.license_key'),
    });
    await insertGroup({ name: 'No key 1', license_key: null });
    await insertGroup({ name: 'No key 2', license_key: null });
    const keyless = await db.selectFrom('groups').select('id').where('license_key', 'is', null).execute();
    expect(keyless.length).toBeGreaterThanOrEqual(2);
  });

  it('lets only one group hold the primary license key (partial unique index)', async () => {
    const first = await insertGroup({ name: 'HQ', is_primary: 1 });
    expect(await violation(insertGroup({ name: 'Branch', is_primary: 1 }))).toMatchObject({
      kind: 'unique',
      detail: containing('is_primary'),
    });
    // Moving the flag onto another existing group is refused as well…
    const branch = await insertGroup({ name: 'Branch', is_primary: 0 });
    expect(
      await violation(db.updateTable('groups').set({ is_primary: 1 }).where('id', '=', branch.id).execute()),
    ).toMatchObject({ kind: 'unique' });
    // …while any number of non-primary groups coexist, and the flag can move once released.
    await insertGroup({ name: 'Branch 2', is_primary: 0 });
    await db.updateTable('groups').set({ is_primary: 0 }).where('id', '=', first.id).execute();
    await db.updateTable('groups').set({ is_primary: 1 }).where('id', '=', branch.id).execute();
    const primaries = await db.selectFrom('groups').select('name').where('is_primary', '=', 1).execute();
    expect(primaries).toEqual([{ name: 'Branch' }]);
    // Only 0 and 1 are booleans.
    expect(await violation(insertGroup({ name: 'Odd', is_primary: 2 as 1 }))).toMatchObject({ kind: 'check' });
  });

  it('refuses an enabled architecture without a package (CHECK)', async () => {
    expect(await violation(insertImage({ name: 'no arm blob', arm64_enabled: 1 }))).toMatchObject({
      kind: 'check',
      detail: containing('images_arm64_enabled_has_blob'),
    });
    expect(await violation(insertImage({ name: 'no x86 blob', x86_64_enabled: 1 }))).toMatchObject({
      kind: 'check',
      detail: containing('images_x86_64_enabled_has_blob'),
    });
    // Disabled with a package, or enabled with one, is fine; clearing the package of an enabled arch is not.
    const ok = await insertImage({ name: 'enabled arm', arm64_enabled: 1, arm64_sha256: blobA, x86_64_sha256: blobB });
    expect(
      await violation(db.updateTable('images').set({ arm64_sha256: null }).where('id', '=', ok.id).execute()),
    ).toMatchObject({ kind: 'check' });
    expect(
      await violation(
        db
          .updateTable('images')
          .set({ arm64_enabled: 2 as 1 })
          .where('id', '=', ok.id)
          .execute(),
      ),
    ).toMatchObject({ kind: 'check' });
    const row = await db.selectFrom('images').selectAll().where('id', '=', ok.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ arm64_enabled: 1, arm64_sha256: blobA, x86_64_enabled: 0, x86_64_sha256: blobB });
  });

  it('points images only at stored blobs, and a used blob row cannot be deleted', async () => {
    const unknown = 'f'.repeat(64);
    expect(await violation(insertImage({ name: 'ghost', arm64_enabled: 1, arm64_sha256: unknown }))).toMatchObject({
      kind: 'foreign_key',
    });
    const used = await putBlob(mirror, testBytes(2048, 'model-used'), 'used.pvmp');
    const image = await insertImage({ name: 'uses a blob', x86_64_enabled: 1, x86_64_sha256: used });
    expect(await violation(db.deleteFrom('blobs').where('sha256', '=', used).execute())).toMatchObject({
      kind: 'foreign_key',
    });
    expect(await db.selectFrom('blobs').select('sha256').where('sha256', '=', used).executeTakeFirst()).toEqual({
      sha256: used,
    });
    // Once no image refers to it, the row goes.
    await db.deleteFrom('images').where('id', '=', image.id).execute();
    const deleted = await db.deleteFrom('blobs').where('sha256', '=', used).executeTakeFirst();
    expect(deleted.numDeletedRows).toBe(1n);
  });

  it('sets a group’s image to null when the image row is deleted (ON DELETE SET NULL)', async () => {
    const image = await insertImage({ name: 'to be deleted', arm64_enabled: 1, arm64_sha256: blobA });
    const other = await insertImage({ name: 'stays' });
    const g1 = await insertGroup({ name: 'loses image', image_id: image.id });
    const g2 = await insertGroup({ name: 'keeps image', image_id: other.id });
    expect(await violation(insertGroup({ name: 'bad image', image_id: 999_999 }))).toMatchObject({
      kind: 'foreign_key',
    });
    await db.deleteFrom('images').where('id', '=', image.id).execute();
    const rows = await db
      .selectFrom('groups')
      .select(['id', 'image_id'])
      .where('id', 'in', [g1.id, g2.id])
      .orderBy('id')
      .execute();
    expect(rows).toEqual([
      { id: g1.id, image_id: null },
      { id: g2.id, image_id: other.id },
    ]);
  });

  it('ends a user’s sessions when the user row goes (ON DELETE CASCADE)', async () => {
    const user = await db
      .insertInto('users')
      .values({ username: 'temp', password_hash: 'x', created_at: now, password_changed_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('sessions')
      .values({
        token_hash: 'a'.repeat(64),
        user_id: user.id,
        csrf_token: 'c',
        created_at: now,
        expires_at: now + 1000,
      })
      .execute();
    expect(
      await violation(
        db
          .insertInto('sessions')
          .values({ token_hash: 'b'.repeat(64), user_id: 999_999, csrf_token: 'c', created_at: now, expires_at: now })
          .execute(),
      ),
    ).toMatchObject({
      kind: 'foreign_key',
    });
    await db.deleteFrom('users').where('id', '=', user.id).execute();
    expect(await db.selectFrom('sessions').select('token_hash').where('user_id', '=', user.id).execute()).toEqual([]);
  });

  it('keeps one portal record and one link check per image, and drops both with the image (ON DELETE CASCADE)', async () => {
    const image = await insertImage({ name: 'with records', arm64_enabled: 1, arm64_sha256: blobA });
    const record = {
      image_id: image.id,
      public_url: null,
      arm64_enabled: 1 as const,
      arm64_sha256: blobA,
      x86_64_enabled: 0 as const,
      x86_64_sha256: null,
      confirmed_at: now,
      confirmed_by: 'test',
    };
    await db.insertInto('portal_confirmed').values(record).execute();
    expect(await violation(db.insertInto('portal_confirmed').values(record).execute())).toMatchObject({
      kind: 'unique',
    });
    expect(
      await violation(
        db
          .insertInto('portal_confirmed')
          .values({ ...record, image_id: 999_999 })
          .execute(),
      ),
    ).toMatchObject({ kind: 'foreign_key' });
    const other = await insertImage({ name: 'flag check' });
    expect(
      await violation(
        db
          .insertInto('portal_confirmed')
          .values({ ...record, image_id: other.id, arm64_enabled: 2 as 1 })
          .execute(),
      ),
    ).toMatchObject({ kind: 'check' });
    await db.insertInto('link_checks').values({ image_id: image.id, checked_at: now, report: '{}' }).execute();
    await db.deleteFrom('images').where('id', '=', image.id).execute();
    expect(
      await db.selectFrom('portal_confirmed').select('image_id').where('image_id', '=', image.id).execute(),
    ).toEqual([]);
    expect(await db.selectFrom('link_checks').select('image_id').where('image_id', '=', image.id).execute()).toEqual(
      [],
    );
  });

  it('records usage only of stored packages, and forgets it with the package row (ON DELETE CASCADE)', async () => {
    expect(
      await violation(
        db
          .insertInto('blob_usage')
          .values({ sha256: 'e'.repeat(64) })
          .execute(),
      ),
    ).toMatchObject({ kind: 'foreign_key' });
    const gone = await putBlob(mirror, testBytes(1024, 'model-usage'), 'usage.pvmp');
    await db.insertInto('blob_usage').values({ sha256: gone, retired_at: now, released_at: now }).execute();
    await db.deleteFrom('blobs').where('sha256', '=', gone).execute();
    // A later upload of the same content starts with no retirement history.
    expect(await db.selectFrom('blob_usage').select('sha256').where('sha256', '=', gone).execute()).toEqual([]);
  });

  it('keeps one value per setting key', async () => {
    await db
      .insertInto('settings')
      .values({ key: 'model-test', value: 'a', updated_at: now, updated_by: 'test' })
      .execute();
    expect(
      await violation(
        db
          .insertInto('settings')
          .values({ key: 'model-test', value: 'b', updated_at: now, updated_by: 'test' })
          .execute(),
      ),
    ).toMatchObject({
      kind: 'unique',
    });
  });
});

describe('migration 0006 on a database from before it', () => {
  it('takes the images’ current values as what the portal holds (nothing pending after the upgrade) and records their packages as used', async () => {
    const dir = await makeTempDir();
    const file = path.join(dir, 'goldmirror.db');
    const old = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SQLite(file) }) });
    const before: Record<string, Migration> = {
      '0001-blobs': m0001,
      '0002-portal-model': m0002,
      '0003-activity': m0003,
      '0004-ingested-at': m0004,
    };
    const migrated = await new Migrator({
      db: old as Kysely<unknown>,
      provider: { getMigrations: () => Promise.resolve(before) },
    }).migrateToLatest();
    expect(migrated.error).toBeUndefined();
    const sha = 'a'.repeat(64);
    await old
      .insertInto('blobs')
      .values({ sha256: sha, size: 1, name: 'a.pvmp', created_at: 1, state: 'ok', verified_at: 1 })
      .execute();
    await old
      .insertInto('images')
      .values({
        name: 'Before',
        description: '',
        arm64_enabled: 1,
        arm64_sha256: sha,
        x86_64_enabled: 0,
        x86_64_sha256: null,
        created_at: 1,
        updated_at: 1,
      })
      .execute();
    await old.destroy();

    const db = await openDatabase({ file });
    try {
      const record = await db.selectFrom('portal_confirmed').selectAll().executeTakeFirstOrThrow();
      expect(record).toMatchObject({
        public_url: null,
        arm64_enabled: 1,
        arm64_sha256: sha,
        x86_64_enabled: 0,
        changed_at: null,
        confirmed_by: 'system:upgrade',
      });
      expect(await db.selectFrom('blob_usage').selectAll().execute()).toEqual([
        { sha256: sha, retired_at: null, released_at: null },
      ]);
      // The address in force is adopted on first use, without showing a change.
      const view = await getImage({ db, clock: systemClock }, record.image_id, 'http://mirror.lan:8080');
      expect(view.portalChange).toBeNull();
      expect((await db.selectFrom('portal_confirmed').select('public_url').executeTakeFirstOrThrow()).public_url).toBe(
        'http://mirror.lan:8080',
      );
      expect(
        (
          await getImage({ db, clock: systemClock }, record.image_id, 'http://other.lan:8080')
        ).portalChange?.changes.map((c) => c.field),
      ).toEqual(['downloadUrl']);
    } finally {
      await db.destroy();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
