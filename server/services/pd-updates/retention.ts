/**
 * Which update files garbage collection must keep: a published version's file always; the file of a version its
 * feed still lists (collecting it would only make the next sync fetch it again); the newest `keep` stored
 * versions; a version unpublished less than the grace period ago; and the other bytes of an open alert.
 */
import { listUpdateRows } from '../../db/repos/pd-updates.js';
import type { Db } from '../../db/open.js';

export type UpdateHold = 'published' | 'listed' | 'newest' | 'unpublished' | 'alert';

export async function updateFileHolds(
  db: Db,
  now: number,
  options: { graceMs: number; keep: number },
): Promise<Map<string, UpdateHold>> {
  const holds = new Map<string, UpdateHold>();
  let newest = 0;
  for (const row of await listUpdateRows(db)) {
    // The other bytes of an open alert wait for the admin to take or dismiss them.
    if (row.alert && row.alert_sha256 && !holds.has(row.alert_sha256)) holds.set(row.alert_sha256, 'alert');
    if (row.fetch_state !== 'stored' || !row.sha256) continue;
    newest += 1;
    const hold: UpdateHold | null =
      row.published === 1
        ? 'published'
        : row.listed === 1
          ? 'listed'
          : newest <= options.keep
            ? 'newest'
            : row.unpublished_at !== null && now - row.unpublished_at < options.graceMs
              ? 'unpublished'
              : null;
    if (hold && !holds.has(row.sha256)) holds.set(row.sha256, hold);
  }
  return holds;
}
