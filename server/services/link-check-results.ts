/**
 * The last link check of each image, kept in the database so the admin page
 * can show it on a plain GET after the check's POST redirects (and reload it
 * safely), on whichever node answers.
 */
import { linkCheckReportOf, saveLinkCheckRow } from '../db/repos/link-checks.js';
import type { ServiceDeps } from './deps.js';
import type { LinkCheckReport } from './link-check.js';

export async function saveLinkCheck(
  deps: Pick<ServiceDeps, 'db'>,
  imageId: number,
  report: LinkCheckReport,
): Promise<void> {
  await saveLinkCheckRow(deps.db, {
    image_id: imageId,
    checked_at: Date.parse(report.checkedAt),
    report: JSON.stringify(report),
  });
}

/** The image's last check, or null when none ran (or it is unreadable). */
export async function lastLinkCheck(deps: Pick<ServiceDeps, 'db'>, imageId: number): Promise<LinkCheckReport | null> {
  const report = await linkCheckReportOf(deps.db, imageId);
  if (report === null) return null;
  try {
    return JSON.parse(report) as LinkCheckReport;
  } catch {
    return null;
  }
}
