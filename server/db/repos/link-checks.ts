/** The `link_checks` table: the last link check of each image, as JSON text. */
import type { Db } from '../open.js';
import { upsertRow } from './upsert.js';

export async function saveLinkCheckRow(
  db: Db,
  row: { image_id: number; checked_at: number; report: string },
): Promise<void> {
  const { image_id, checked_at, report } = row;
  await upsertRow(db, 'link_checks', 'image_id', { image_id, checked_at, report });
}

export async function linkCheckReportOf(db: Db, imageId: number): Promise<string | null> {
  return (
    (await db.selectFrom('link_checks').select('report').where('image_id', '=', imageId).executeTakeFirst())?.report ??
    null
  );
}
