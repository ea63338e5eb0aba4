/** The `link_checks` table: the last link check of each image, as JSON text. */
import type { Db } from '../open.js';

export async function saveLinkCheckRow(
  db: Db,
  row: { image_id: number; checked_at: number; report: string },
): Promise<void> {
  await db
    .insertInto('link_checks')
    .values(row)
    .onConflict((oc) => oc.column('image_id').doUpdateSet({ checked_at: row.checked_at, report: row.report }))
    .execute();
}

export async function linkCheckReportOf(db: Db, imageId: number): Promise<string | null> {
  return (
    (await db.selectFrom('link_checks').select('report').where('image_id', '=', imageId).executeTakeFirst())?.report ??
    null
  );
}
