/** The `audit_log` table: who changed what, appended in the same transaction as the change. */
import type { Db } from '../open.js';
import type { AuditRow } from '../schema.js';
import { inByteOrder } from '../dialect.js';

export async function insertAuditRow(db: Db, row: Omit<AuditRow, 'id'>): Promise<void> {
  await db.insertInto('audit_log').values(row).execute();
}

export interface AuditFilter {
  limit: number;
  beforeId?: number | undefined;
  actor?: string | undefined;
  /** Actions starting with this text. */
  actionPrefix?: string | undefined;
  /** Exactly this action. */
  action?: string | undefined;
  /** Leave out actions starting with this text. */
  excludePrefix?: string | undefined;
}

/** The newest rows matching the filter, newest first. */
export function listAuditRows(db: Db, filter: AuditFilter): Promise<AuditRow[]> {
  let q = db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(filter.limit);
  if (filter.beforeId !== undefined) q = q.where('id', '<', filter.beforeId);
  if (filter.actor) q = q.where('actor', '=', filter.actor);
  if (filter.actionPrefix !== undefined) q = q.where('action', 'like', `${filter.actionPrefix}%`);
  else if (filter.action) q = q.where('action', '=', filter.action);
  if (filter.excludePrefix !== undefined) q = q.where('action', 'not like', `${filter.excludePrefix}%`);
  return q.execute();
}

/** Distinct actors, alphabetically, at most `limit`. */
export async function listAuditActors(db: Db, limit: number): Promise<string[]> {
  return (
    await db
      .selectFrom('audit_log')
      .select('actor')
      .groupBy('actor')
      .orderBy(inByteOrder(db, 'actor'))
      .limit(limit)
      .execute()
  ).map((r) => r.actor);
}
