/** The `download_stats` table: finished downloads per package, added to (never overwritten) by every node. */
import { sql, type Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { DownloadStatsTable } from '../schema.js';

export type DownloadStatsRow = Selectable<DownloadStatsTable>;

/** Adds a batch of finished downloads to a package's counters. */
export async function addDownloadStats(
  db: Db,
  sha256: string,
  add: { downloads: number; bytes: number; lastAt: number },
): Promise<void> {
  await db
    .insertInto('download_stats')
    .values({ sha256, downloads: add.downloads, bytes_sent: add.bytes, last_download_at: add.lastAt })
    .onConflict((oc) =>
      oc.column('sha256').doUpdateSet({
        downloads: sql`download_stats.downloads + ${add.downloads}`,
        bytes_sent: sql`download_stats.bytes_sent + ${add.bytes}`,
        last_download_at: add.lastAt,
      }),
    )
    .execute();
}

export function downloadStatsOf(db: Db, digests: readonly string[]): Promise<DownloadStatsRow[]> {
  if (digests.length === 0) return Promise.resolve([]);
  return db.selectFrom('download_stats').selectAll().where('sha256', 'in', digests).execute();
}

/** The packages downloaded last, newest first. */
export function recentlyDownloaded(db: Db, limit: number): Promise<DownloadStatsRow[]> {
  return db
    .selectFrom('download_stats')
    .selectAll()
    .where('last_download_at', 'is not', null)
    .orderBy('last_download_at', 'desc')
    .limit(limit)
    .execute();
}

export async function deleteDownloadStats(db: Db, sha256: string): Promise<void> {
  await db.deleteFrom('download_stats').where('sha256', '=', sha256).execute();
}
