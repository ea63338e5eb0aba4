/** The `upload_locks` table: which request of which process may touch a tus upload (one statement per step). */
import type { Db } from '../open.js';

/**
 * Takes the lock of `uploadId` for `holder` when it is free or its last holder let it expire; true when taken.
 * One INSERT … ON CONFLICT DO UPDATE … WHERE, so two processes racing for it cannot both win.
 */
export async function takeUploadLock(
  db: Db,
  lock: { uploadId: string; holder: string; now: number; expiresAt: number },
): Promise<boolean> {
  const row = await db
    .insertInto('upload_locks')
    .values({ upload_id: lock.uploadId, holder: lock.holder, expires_at: lock.expiresAt, release_requested: 0 })
    .onConflict((oc) =>
      oc
        .column('upload_id')
        .doUpdateSet({ holder: lock.holder, expires_at: lock.expiresAt, release_requested: 0 })
        .where('upload_locks.expires_at', '<=', lock.now),
    )
    .returning('holder')
    .executeTakeFirst();
  return row?.holder === lock.holder;
}

/** Asks the current holder (anyone but `waiter`) to end its request and release the lock. */
export async function askUploadLockRelease(db: Db, uploadId: string, waiter: string): Promise<void> {
  await db
    .updateTable('upload_locks')
    .set({ release_requested: 1 })
    .where('upload_id', '=', uploadId)
    .where('holder', '!=', waiter)
    .where('release_requested', '=', 0)
    .execute();
}

/**
 * Moves the expiry of a lock `holder` still holds; undefined when it holds it no more (taken over
 * after expiring, or released), else whether another request asked for it.
 */
export async function renewUploadLock(
  db: Db,
  uploadId: string,
  holder: string,
  expiresAt: number,
): Promise<{ releaseRequested: boolean } | undefined> {
  const row = await db
    .updateTable('upload_locks')
    .set({ expires_at: expiresAt })
    .where('upload_id', '=', uploadId)
    .where('holder', '=', holder)
    .returning('release_requested')
    .executeTakeFirst();
  return row && { releaseRequested: Number(row.release_requested) === 1 };
}

export async function dropUploadLock(db: Db, uploadId: string, holder: string): Promise<void> {
  await db.deleteFrom('upload_locks').where('upload_id', '=', uploadId).where('holder', '=', holder).execute();
}

export async function uploadLockHeld(db: Db, uploadId: string, now: number): Promise<boolean> {
  const row = await db
    .selectFrom('upload_locks')
    .select('upload_id')
    .where('upload_id', '=', uploadId)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return row !== undefined;
}

/** Uploads whose lock is held (not expired) at `now`. */
export async function heldUploadLocks(db: Db, now: number): Promise<Set<string>> {
  const rows = await db.selectFrom('upload_locks').select('upload_id').where('expires_at', '>', now).execute();
  return new Set(rows.map((r) => r.upload_id));
}

/** Removes locks that expired before `before` (their holders died; nobody took them over). */
export async function dropExpiredUploadLocks(db: Db, before: number): Promise<void> {
  await db.deleteFrom('upload_locks').where('expires_at', '<', before).execute();
}
