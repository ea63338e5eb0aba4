/** The `blob_activity` table: a heartbeat per package while a transfer of it runs (on any node). */
import type { Db } from '../open.js';
import { upsertRow } from './upsert.js';

export async function saveHeartbeat(db: Db, sha256: string, at: number): Promise<void> {
  await upsertRow(db, 'blob_activity', 'sha256', { sha256, last_active_at: at });
}

/** Digests with a heartbeat after `since`. */
export async function activeSince(db: Db, since: number): Promise<Set<string>> {
  const rows = await db.selectFrom('blob_activity').select('sha256').where('last_active_at', '>', since).execute();
  return new Set(rows.map((r) => r.sha256));
}
