/** The `upload_finishes` table: who stores a complete upload, then what came of it. */
import type { Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { UploadFinishesTable } from '../schema.js';

export type UploadFinishRow = Selectable<UploadFinishesTable>;

/**
 * Claims storing `uploadId` for `holder` unless a live claim or a remembered outcome exists
 * (one statement: of two processes racing, one wins); true when claimed.
 */
export async function claimUploadFinish(
  db: Db,
  claim: { uploadId: string; holder: string; now: number; expiresAt: number },
): Promise<boolean> {
  const fresh = {
    state: 'finishing' as const,
    holder: claim.holder,
    expires_at: claim.expiresAt,
    sha256: null,
    size: null,
    url: null,
    error_code: null,
    error_message: null,
    updated_at: claim.now,
  };
  const row = await db
    .insertInto('upload_finishes')
    .values({ upload_id: claim.uploadId, ...fresh })
    .onConflict((oc) => oc.column('upload_id').doUpdateSet(fresh).where('upload_finishes.expires_at', '<=', claim.now))
    .returning('holder')
    .executeTakeFirst();
  return row?.holder === claim.holder;
}

/** Moves the expiry of a claim `holder` still holds; false when it holds it no more. */
export async function renewUploadFinish(db: Db, uploadId: string, holder: string, expiresAt: number): Promise<boolean> {
  const { numUpdatedRows } = await db
    .updateTable('upload_finishes')
    .set({ expires_at: expiresAt })
    .where('upload_id', '=', uploadId)
    .where('holder', '=', holder)
    .where('state', '=', 'finishing')
    .executeTakeFirst();
  return numUpdatedRows > 0n;
}

/** Records the outcome of the claim `holder` holds, remembered until `expiresAt`. */
export async function recordUploadFinish(
  db: Db,
  uploadId: string,
  holder: string,
  outcome: Pick<UploadFinishRow, 'state' | 'sha256' | 'size' | 'url' | 'error_code' | 'error_message'> & {
    now: number;
    expiresAt: number;
  },
): Promise<void> {
  const { now, expiresAt, ...columns } = outcome;
  // A stored package is the truth whoever holds the claim by now (it may have been taken over while this one
  // stored it), and no later failure may overwrite it.
  let update = db
    .updateTable('upload_finishes')
    .set({ ...columns, expires_at: expiresAt, updated_at: now })
    .where('upload_id', '=', uploadId)
    .where('state', '!=', 'stored');
  if (columns.state !== 'stored') update = update.where('holder', '=', holder);
  await update.execute();
}

export function getUploadFinish(db: Db, uploadId: string): Promise<UploadFinishRow | undefined> {
  return db.selectFrom('upload_finishes').selectAll().where('upload_id', '=', uploadId).executeTakeFirst();
}

/** Uploads being stored (a live claim) at `now`. */
export async function uploadsFinishing(db: Db, now: number): Promise<Set<string>> {
  const rows = await db
    .selectFrom('upload_finishes')
    .select('upload_id')
    .where('state', '=', 'finishing')
    .where('expires_at', '>', now)
    .execute();
  return new Set(rows.map((r) => r.upload_id));
}

/** Forgets outcomes and dead claims that expired before `before`. */
export async function dropExpiredUploadFinishes(db: Db, before: number): Promise<void> {
  await db.deleteFrom('upload_finishes').where('expires_at', '<', before).execute();
}
