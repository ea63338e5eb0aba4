/** The `download_log` table: one row per download body served, written in batches. */
import { sql } from 'kysely';
import type { Db } from '../open.js';
import type { DownloadLogRow, NewDownloadLogRow } from '../schema.js';
import { inByteOrder } from '../dialect.js';

/** Rows per INSERT statement. */
const ROWS_PER_INSERT = 200;

export async function insertDownloadLogRows(db: Db, rows: readonly NewDownloadLogRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    await db
      .insertInto('download_log')
      .values(rows.slice(i, i + ROWS_PER_INSERT))
      .execute();
  }
}

export interface DownloadLogQuery {
  limit: number;
  imageId?: number | undefined;
  arch?: string | undefined;
  client?: string | undefined;
  result?: DownloadLogRow['result'] | undefined;
  beforeId?: number | undefined;
}

/** The newest rows matching the query, newest first. */
export function listDownloadLogRows(db: Db, q: DownloadLogQuery): Promise<DownloadLogRow[]> {
  let query = db.selectFrom('download_log').selectAll().orderBy('id', 'desc').limit(q.limit);
  if (q.imageId !== undefined) query = query.where('image_id', '=', q.imageId);
  if (q.arch !== undefined) query = query.where('arch', '=', q.arch);
  if (q.client) query = query.where('client', '=', q.client);
  if (q.result !== undefined) query = query.where('result', '=', q.result);
  if (q.beforeId !== undefined) query = query.where('id', '<', q.beforeId);
  return query.execute();
}

/** Each image id in the log with a name it was logged under. */
export async function loggedImages(db: Db): Promise<Array<{ id: number; name: string }>> {
  const rows = await db
    .selectFrom('download_log')
    .select(['image_id', sql<string>`max(image_name)`.as('name')])
    .where('image_id', 'is not', null)
    .groupBy('image_id')
    .execute();
  return rows.map((r) => ({ id: r.image_id!, name: r.name }));
}

export async function loggedClients(db: Db, limit: number): Promise<string[]> {
  return (
    await db
      .selectFrom('download_log')
      .select('client')
      .groupBy('client')
      .orderBy(inByteOrder(db, 'client'))
      .limit(limit)
      .execute()
  ).map((c) => c.client);
}

/**
 * Sums per time bucket of `bucketMs` (bucket = finished_at / bucketMs) since
 * `from`: bytes sent, or with `finishedDownloadsOnly` the count of bodies
 * that carried the file's last byte.
 */
export async function bucketTotals(
  db: Db,
  bucketMs: number,
  from: number,
  what: 'bytes' | 'finishedDownloads',
): Promise<Map<number, number>> {
  // Integer division with a literal divisor (a bound JS number would be a REAL here): the same buckets on SQLite and PostgreSQL.
  const bucket = sql<number>`finished_at / ${sql.lit(bucketMs)}`;
  let query = db
    .selectFrom('download_log')
    .select([
      bucket.as('bucket'),
      (what === 'bytes' ? sql<number>`sum(bytes_sent)` : sql<number>`count(*)`).as('total'),
    ])
    .where('finished_at', '>=', from)
    .groupBy(bucket);
  if (what === 'finishedDownloads') query = query.where('covers_end', '=', 1);
  const rows = await query.execute();
  return new Map(rows.map((r) => [Number(r.bucket), Number(r.total)]));
}

/** Downloads and bytes of one (site, served_by) pair since a moment. */
export interface OriginTotals {
  site: string | null;
  servedBy: string | null;
  downloads: number;
  bytes: number;
}

/**
 * Per client site and serving replica, the rows that finished since `from`:
 * bodies that carried the file's last byte, and the bytes delivered (a 302
 * sent none itself, so the bytes it handed over, planned, count instead).
 */
export async function originTotals(db: Db, from: number): Promise<OriginTotals[]> {
  const rows = await db
    .selectFrom('download_log')
    .select([
      'site',
      'served_by',
      sql<number>`sum(case when covers_end = 1 then 1 else 0 end)`.as('downloads'),
      sql<number>`sum(case when status = 302 then bytes_planned else bytes_sent end)`.as('bytes'),
    ])
    .where('finished_at', '>=', from)
    .groupBy(['site', 'served_by'])
    .execute();
  return rows.map((r) => ({
    site: r.site,
    servedBy: r.served_by,
    downloads: Number(r.downloads),
    bytes: Number(r.bytes),
  }));
}

/** Deletes up to `batchRows` of the oldest rows that finished before `cutoff`; returns how many. */
export async function deleteDownloadLogBefore(db: Db, cutoff: number, batchRows: number): Promise<number> {
  const batch = db
    .selectFrom('download_log')
    .select('id')
    .where('finished_at', '<', cutoff)
    .orderBy('id')
    .limit(batchRows);
  return Number((await db.deleteFrom('download_log').where('id', 'in', batch).executeTakeFirst()).numDeletedRows);
}
