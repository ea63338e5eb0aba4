/** The `sites`, `replicas`, `replica_blobs` and `mirror_identity` tables (migration 0011). */
import { randomUUID } from 'node:crypto';
import type { Insertable, Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { ReplicaCheckState, ReplicasTable, SitesTable } from '../schema.js';

export type SiteRow = Selectable<SitesTable>;
export type ReplicaRow = Selectable<ReplicasTable>;

/** This mirror's id: made once, by whichever process asks first (the insert of a second one changes nothing). */
export async function getMirrorId(db: Db): Promise<string> {
  const existing = await db.selectFrom('mirror_identity').select('id').where('key', '=', 'self').executeTakeFirst();
  if (existing) return existing.id;
  await db
    .insertInto('mirror_identity')
    .values({ key: 'self', id: randomUUID(), created_at: Date.now() })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  const row = await db.selectFrom('mirror_identity').select('id').where('key', '=', 'self').executeTakeFirstOrThrow();
  return row.id;
}

export function listSiteRows(db: Db): Promise<SiteRow[]> {
  return db.selectFrom('sites').selectAll().orderBy('name').execute();
}

export function getSiteRow(db: Db, name: string): Promise<SiteRow | undefined> {
  return db.selectFrom('sites').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function insertSiteRow(db: Db, row: Insertable<SitesTable>): Promise<void> {
  await db.insertInto('sites').values(row).execute();
}

export async function updateSiteRow(
  db: Db,
  name: string,
  changes: Partial<Pick<SiteRow, 'networks' | 'redirects' | 'updated_at'>>,
): Promise<void> {
  await db.updateTable('sites').set(changes).where('name', '=', name).execute();
}

export async function deleteSiteRow(db: Db, name: string): Promise<boolean> {
  const result = await db.deleteFrom('sites').where('name', '=', name).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export function listReplicaRows(db: Db): Promise<ReplicaRow[]> {
  return db.selectFrom('replicas').selectAll().orderBy('site').orderBy('public_url').execute();
}

export function getReplicaRow(db: Db, id: number): Promise<ReplicaRow | undefined> {
  return db.selectFrom('replicas').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findReplicaByUrl(db: Db, publicUrl: string): Promise<ReplicaRow | undefined> {
  return db.selectFrom('replicas').selectAll().where('public_url', '=', publicUrl).executeTakeFirst();
}

/** What a heartbeat says about a replica; the admin's switches, weight and the probe's verdict stay. */
export interface ReplicaReport {
  publicUrl: string;
  site: string;
  version: string;
  mirrorId: string;
  tokenName: string;
  heartbeatMs: number;
  syncedAt: number | null;
  now: number;
}

/** Inserts or refreshes the replica a heartbeat describes (one statement, keyed by its public URL); returns its id. */
export async function upsertReplica(db: Db, report: ReplicaReport): Promise<number> {
  const row = await db
    .insertInto('replicas')
    .values({
      public_url: report.publicUrl,
      site: report.site,
      version: report.version,
      mirror_id: report.mirrorId,
      token_name: report.tokenName,
      heartbeat_ms: report.heartbeatMs,
      first_seen_at: report.now,
      last_heartbeat_at: report.now,
      last_sync_at: report.syncedAt,
    })
    .onConflict((oc) =>
      oc.column('public_url').doUpdateSet((eb) => ({
        site: eb.ref('excluded.site'),
        version: eb.ref('excluded.version'),
        mirror_id: eb.ref('excluded.mirror_id'),
        token_name: eb.ref('excluded.token_name'),
        heartbeat_ms: eb.ref('excluded.heartbeat_ms'),
        // Another token speaking for this URL: it must pass a check again before any Mac goes there.
        check_state: eb
          .case()
          .when('replicas.token_name', '!=', eb.ref('excluded.token_name'))
          .then(eb.val<ReplicaCheckState>('pending'))
          .else(eb.ref('replicas.check_state'))
          .end(),
        last_heartbeat_at: eb.ref('excluded.last_heartbeat_at'),
        last_sync_at: eb.fn.coalesce('excluded.last_sync_at', 'replicas.last_sync_at'),
      })),
    )
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/**
 * Makes the replica's claimed packages exactly `digests`: new ones are added, dropped ones removed, and the
 * `bad` mark of one it still claims stays (only a passing probe clears it).
 */
export async function replaceReplicaBlobs(db: Db, replicaId: number, digests: readonly string[]): Promise<void> {
  const held = new Set(
    (await db.selectFrom('replica_blobs').select('sha256').where('replica_id', '=', replicaId).execute()).map(
      (r) => r.sha256,
    ),
  );
  const wanted = new Set(digests);
  const dropped = [...held].filter((d) => !wanted.has(d));
  const added = [...wanted].filter((d) => !held.has(d));
  for (let i = 0; i < dropped.length; i += 500) {
    await db
      .deleteFrom('replica_blobs')
      .where('replica_id', '=', replicaId)
      .where('sha256', 'in', dropped.slice(i, i + 500))
      .execute();
  }
  for (let i = 0; i < added.length; i += 500) {
    await db
      .insertInto('replica_blobs')
      .values(added.slice(i, i + 500).map((sha256) => ({ replica_id: replicaId, sha256 })))
      .onConflict((oc) => oc.doNothing())
      .execute();
  }
}

export interface ReplicaClaim {
  replica_id: number;
  sha256: string;
  bad: 0 | 1;
}

export function listReplicaClaims(db: Db, replicaId?: number): Promise<ReplicaClaim[]> {
  let query = db.selectFrom('replica_blobs').select(['replica_id', 'sha256', 'bad']);
  if (replicaId !== undefined) query = query.where('replica_id', '=', replicaId);
  return query.orderBy('replica_id').orderBy('sha256').execute();
}

export async function markReplicaBlob(db: Db, replicaId: number, sha256: string, bad: boolean): Promise<void> {
  await db
    .updateTable('replica_blobs')
    .set({ bad: bad ? 1 : 0 })
    .where('replica_id', '=', replicaId)
    .where('sha256', '=', sha256)
    .execute();
}

export async function updateReplicaRow(
  db: Db,
  id: number,
  changes: Partial<Pick<ReplicaRow, 'enabled' | 'weight' | 'check_state' | 'check_detail' | 'checked_at' | 'checks'>>,
): Promise<void> {
  await db.updateTable('replicas').set(changes).where('id', '=', id).execute();
}

export async function deleteReplicaRow(db: Db, id: number): Promise<boolean> {
  await db.deleteFrom('replica_blobs').where('replica_id', '=', id).execute();
  const result = await db.deleteFrom('replicas').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}
