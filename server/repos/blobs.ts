import type { Sha256 } from '../../storage/digest.js';
import type { Db } from '../db/open.js';
import type { BlobArch, BlobRow, BlobState } from '../db/schema.js';

export function findBlob(db: Db, sha256: Sha256): Promise<BlobRow | undefined> {
  return db.selectFrom('blobs').selectAll().where('sha256', '=', sha256).executeTakeFirst();
}

export function listBlobs(db: Db): Promise<BlobRow[]> {
  return db.selectFrom('blobs').selectAll().orderBy('created_at', 'desc').orderBy('sha256').execute();
}

/**
 * Records a committed blob. A digest seen before keeps its first ingest time
 * (so Last-Modified and ETags stay stable) but is marked ok again: the file
 * was just rewritten from verified content. A known architecture replaces
 * the recorded one; `unknown` (or none) never erases what was said before.
 */
export async function recordIngestedBlob(
  db: Db,
  blob: { sha256: Sha256; size: number; name: string; nowMs: number; arch?: BlobArch | undefined },
): Promise<BlobRow> {
  const known = blob.arch !== undefined && blob.arch !== 'unknown' ? { arch: blob.arch } : {};
  await db
    .insertInto('blobs')
    .values({ sha256: blob.sha256, size: blob.size, name: blob.name, created_at: blob.nowMs, ingested_at: blob.nowMs, state: 'ok', verified_at: blob.nowMs, ...known })
    .onConflict((oc) =>
      oc.column('sha256').doUpdateSet({ size: blob.size, name: blob.name, state: 'ok', state_detail: null, verified_at: blob.nowMs, ingested_at: blob.nowMs, ...known }),
    )
    .execute();
  const row = await findBlob(db, blob.sha256);
  if (!row) throw new Error(`blob ${blob.sha256} vanished right after it was recorded`);
  return row;
}

export async function setBlobState(
  db: Db,
  sha256: Sha256,
  state: BlobState,
  change: { verifiedAtMs: number | null; detail?: string | null },
): Promise<void> {
  await db
    .updateTable('blobs')
    .set({ state, verified_at: change.verifiedAtMs, state_detail: change.detail ?? null })
    .where('sha256', '=', sha256)
    .execute();
}

export async function setBlobArch(db: Db, sha256: Sha256, arch: BlobArch): Promise<boolean> {
  const result = await db.updateTable('blobs').set({ arch }).where('sha256', '=', sha256).executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function deleteBlobRow(db: Db, sha256: Sha256): Promise<boolean> {
  const result = await db.deleteFrom('blobs').where('sha256', '=', sha256).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
