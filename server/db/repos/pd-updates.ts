/** The `pd_updates` and `pd_update_feeds` tables (migration 0012): Parallels Desktop versions and upstream feeds. */
import type { Insertable } from 'kysely';
import type { Db } from '../open.js';
import type { PdUpdateFeedRow, PdUpdateRow, PdUpdatesTable } from '../schema.js';
import { upsertRow } from './upsert.js';

/** PostgreSQL hands bigints back as text: every numeric column as a number. */
function normalize(row: PdUpdateRow): PdUpdateRow {
  const num = (v: number | null) => (v === null ? null : Number(v));
  return {
    ...row,
    major: Number(row.major),
    minor: Number(row.minor),
    sub_minor: Number(row.sub_minor),
    build: Number(row.build),
    size: num(row.size),
    fetched_at: num(row.fetched_at),
    published: Number(row.published) as 0 | 1,
    published_at: num(row.published_at),
    unpublished_at: num(row.unpublished_at),
    listed: Number(row.listed) as 0 | 1,
    alert_at: num(row.alert_at),
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
  };
}

/** Every version, newest first. */
export async function listUpdateRows(db: Db): Promise<PdUpdateRow[]> {
  const rows = await db
    .selectFrom('pd_updates')
    .selectAll()
    .orderBy('major', 'desc')
    .orderBy('minor', 'desc')
    .orderBy('sub_minor', 'desc')
    .orderBy('build', 'desc')
    .execute();
  return rows.map(normalize);
}

export async function getUpdateRow(db: Db, version: string): Promise<PdUpdateRow | undefined> {
  const row = await db.selectFrom('pd_updates').selectAll().where('version', '=', version).executeTakeFirst();
  return row && normalize(row);
}

export async function insertUpdateRow(db: Db, row: Insertable<PdUpdatesTable>): Promise<void> {
  await db.insertInto('pd_updates').values(row).execute();
}

export async function upsertUpdateRow(db: Db, row: Insertable<PdUpdatesTable>): Promise<void> {
  await upsertRow(db, 'pd_updates', 'version', row);
}

export async function updateUpdateRow(
  db: Db,
  version: string,
  changes: Partial<Omit<PdUpdateRow, 'version'>>,
): Promise<void> {
  await db.updateTable('pd_updates').set(changes).where('version', '=', version).execute();
}

/** Marks `versions` of `feedUrl` as listed and every other version of that feed as no longer listed. */
export async function setListedVersions(db: Db, feedUrl: string, versions: string[], now: number): Promise<void> {
  let unlist = db.updateTable('pd_updates').set({ listed: 0, updated_at: now }).where('feed_url', '=', feedUrl);
  if (versions.length > 0) unlist = unlist.where('version', 'not in', versions);
  await unlist.where('listed', '=', 1).execute();
  if (versions.length > 0)
    await db
      .updateTable('pd_updates')
      .set({ listed: 1 })
      .where('feed_url', '=', feedUrl)
      .where('version', 'in', versions)
      .execute();
}

/** Versions whose stored file is `sha256`. */
export async function updatesWithFile(db: Db, sha256: string): Promise<PdUpdateRow[]> {
  const rows = await db.selectFrom('pd_updates').selectAll().where('sha256', '=', sha256).execute();
  return rows.map(normalize);
}

export async function listFeedRows(db: Db): Promise<PdUpdateFeedRow[]> {
  const rows = await db.selectFrom('pd_update_feeds').selectAll().orderBy('url').execute();
  const num = (v: number | null) => (v === null ? null : Number(v));
  return rows.map((r) => ({ ...r, checked_at: num(r.checked_at), ok_at: num(r.ok_at) }));
}

/** A read of `url` that failed: its check time and error, keeping its last success and what that read skipped. */
export async function recordFeedFailure(db: Db, url: string, now: number, error: string): Promise<void> {
  await db
    .insertInto('pd_update_feeds')
    .values({ url, checked_at: now, ok_at: null, error, skipped: null })
    .onConflict((oc) => oc.column('url').doUpdateSet({ checked_at: now, error }))
    .execute();
}

export async function upsertFeedRow(db: Db, row: PdUpdateFeedRow): Promise<void> {
  await upsertRow(db, 'pd_update_feeds', 'url', row);
}

/** Versions by state for the metrics: available (stored, not published), published, and the fetch states. */
export async function countUpdates(db: Db): Promise<{ byState: Record<string, number>; alerts: number }> {
  const rows = await db.selectFrom('pd_updates').select(['fetch_state', 'published', 'alert']).execute();
  const byState: Record<string, number> = { available: 0, published: 0, waiting: 0, failed: 0, collected: 0 };
  let alerts = 0;
  for (const r of rows) {
    const state = Number(r.published) === 1 ? 'published' : r.fetch_state === 'stored' ? 'available' : r.fetch_state;
    byState[state] = (byState[state] ?? 0) + 1;
    if (r.alert) alerts += 1;
  }
  return { byState, alerts };
}

export async function markUpdateFilesCollected(db: Db, sha256: string, now: number): Promise<void> {
  await db
    .updateTable('pd_updates')
    .set({ fetch_state: 'collected', published: 0, updated_at: now })
    .where('sha256', '=', sha256)
    .where('fetch_state', '=', 'stored')
    .execute();
}

/** Versions of feeds no longer followed are no longer listed (their files become collectable like any other). */
export async function unlistOtherFeeds(db: Db, feeds: readonly string[], now: number): Promise<void> {
  let query = db.updateTable('pd_updates').set({ listed: 0, updated_at: now }).where('listed', '=', 1);
  if (feeds.length > 0) query = query.where('feed_url', 'not in', [...feeds]);
  await query.execute();
}
