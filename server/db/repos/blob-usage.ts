/** The `blob_usage` table: when the last image stopped using a package (retired) and the portal did (released). */
import type { Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { BlobUsageTable } from '../schema.js';

export type BlobUsageRow = Selectable<BlobUsageTable>;

export function listBlobUsage(db: Db): Promise<BlobUsageRow[]> {
  return db.selectFrom('blob_usage').selectAll().execute();
}

export async function insertBlobUsageIfMissing(db: Db, sha256: string): Promise<void> {
  await db
    .insertInto('blob_usage')
    .values({ sha256 })
    .onConflict((oc) => oc.column('sha256').doNothing())
    .execute();
}

export async function setBlobUsage(
  db: Db,
  sha256: string,
  times: { retiredAt: number | null; releasedAt: number | null },
): Promise<void> {
  await db
    .updateTable('blob_usage')
    .set({ retired_at: times.retiredAt, released_at: times.releasedAt })
    .where('sha256', '=', sha256)
    .execute();
}

export interface RetiredBlobRow {
  sha256: string;
  retiredAt: number;
  releasedAt: number | null;
  lastDownloadAt: number | null;
  lastActiveAt: number | null;
}

/** Retired packages (all, or only `sha256`) with their last finished download and last transfer heartbeat. */
export async function listRetiredBlobs(db: Db, sha256?: string): Promise<RetiredBlobRow[]> {
  let query = db
    .selectFrom('blob_usage')
    .leftJoin('download_stats', 'download_stats.sha256', 'blob_usage.sha256')
    .leftJoin('blob_activity', 'blob_activity.sha256', 'blob_usage.sha256')
    .select([
      'blob_usage.sha256',
      'blob_usage.retired_at',
      'blob_usage.released_at',
      'download_stats.last_download_at',
      'blob_activity.last_active_at',
    ])
    .where('blob_usage.retired_at', 'is not', null);
  if (sha256 !== undefined) query = query.where('blob_usage.sha256', '=', sha256);
  const rows = await query.execute();
  const num = (v: number | null | undefined) => (v === null || v === undefined ? null : Number(v));
  return rows.map((r) => ({
    sha256: r.sha256,
    retiredAt: Number(r.retired_at),
    releasedAt: num(r.released_at),
    lastDownloadAt: num(r.last_download_at),
    lastActiveAt: num(r.last_active_at),
  }));
}
