/**
 * The last link check of each image, kept in the database so the admin page
 * can show it on a plain GET after the check's POST redirects (and reload it
 * safely), on whichever node answers.
 */
import type { Db } from '../db/open.js';
import type { LinkCheckReport } from './link-check.js';

export async function saveLinkCheck(db: Db, imageId: number, report: LinkCheckReport): Promise<void> {
  const row = { image_id: imageId, checked_at: Date.parse(report.checkedAt), report: JSON.stringify(report) };
  await db
    .insertInto('link_checks')
    .values(row)
    .onConflict((oc) => oc.column('image_id').doUpdateSet({ checked_at: row.checked_at, report: row.report }))
    .execute();
}

/** The image's last check, or null when none ran (or it is unreadable). */
export async function lastLinkCheck(db: Db, imageId: number): Promise<LinkCheckReport | null> {
  const row = await db.selectFrom('link_checks').select('report').where('image_id', '=', imageId).executeTakeFirst();
  if (!row) return null;
  try {
    return JSON.parse(row.report) as LinkCheckReport;
  } catch {
    return null;
  }
}
