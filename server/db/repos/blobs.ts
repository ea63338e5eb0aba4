/** The `blobs` table: one row per stored package. */
import { sql } from 'kysely';
import type { Sha256 } from '../../../storage/digest.js';
import type { Db } from '../open.js';
import type { BlobArch, BlobKind, BlobRow, BlobState } from '../schema.js';

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
  blob: {
    sha256: Sha256;
    size: number;
    name: string;
    nowMs: number;
    arch?: BlobArch | undefined;
    kind?: BlobKind | undefined;
  },
): Promise<BlobRow> {
  const known = blob.arch !== undefined && blob.arch !== 'unknown' ? { arch: blob.arch } : {};
  const kind = blob.kind ?? 'package';
  await db
    .insertInto('blobs')
    .values({
      sha256: blob.sha256,
      size: blob.size,
      name: blob.name,
      created_at: blob.nowMs,
      ingested_at: blob.nowMs,
      state: 'ok',
      verified_at: blob.nowMs,
      kind,
      ...known,
    })
    .onConflict((oc) =>
      oc.column('sha256').doUpdateSet((eb) => ({
        size: blob.size,
        // The same bytes arriving as the other kind never rename (or retype) what is stored; the caller sees its kind.
        name: eb.case().when('blobs.kind', '=', kind).then(blob.name).else(eb.ref('blobs.name')).end(),
        state: 'ok',
        state_detail: null,
        verified_at: blob.nowMs,
        ingested_at: blob.nowMs,
        ...known,
      })),
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

export async function blobExists(db: Db, sha256: string): Promise<boolean> {
  return (await db.selectFrom('blobs').select('sha256').where('sha256', '=', sha256).executeTakeFirst()) !== undefined;
}

/** The rows of the given digests (any order); none for an empty list. */
export async function findBlobsByDigests(db: Db, digests: readonly string[]): Promise<BlobRow[]> {
  if (digests.length === 0) return [];
  return db.selectFrom('blobs').selectAll().where('sha256', 'in', digests).orderBy('sha256').execute();
}

/** Digest → link name of the given digests that are stored. */
export async function blobNames(db: Db, digests: readonly string[]): Promise<Map<string, string>> {
  if (digests.length === 0) return new Map();
  const rows = await db.selectFrom('blobs').select(['sha256', 'name']).where('sha256', 'in', digests).execute();
  return new Map(rows.map((r) => [r.sha256, r.name]));
}

/** Which of the given digests have a row. */
export async function storedDigests(db: Db, digests: readonly string[]): Promise<string[]> {
  if (digests.length === 0) return [];
  return (await db.selectFrom('blobs').select('sha256').where('sha256', 'in', digests).execute()).map((r) => r.sha256);
}

/** Every digest, least recently verified first (never verified first of all). */
export async function listDigestsByVerifiedAt(db: Db): Promise<string[]> {
  return (
    await db
      .selectFrom('blobs')
      .select('sha256')
      .orderBy('verified_at', (ob) => ob.asc().nullsFirst())
      .execute()
  ).map((r) => r.sha256);
}

/**
 * Blobs in state ok not verified since `verifiedBefore` (or never), least
 * recently verified first: the coarse candidates of the verify schedule.
 */
export function listVerifyCandidates(
  db: Db,
  verifiedBefore: number,
  limit: number,
): Promise<Array<Pick<BlobRow, 'sha256' | 'verified_at' | 'created_at'>>> {
  return (
    db
      .selectFrom('blobs')
      .select(['sha256', 'verified_at', 'created_at'])
      .where('state', '=', 'ok')
      .where((eb) => eb.or([eb('verified_at', 'is', null), eb('verified_at', '<=', verifiedBefore)]))
      // Spelled out: SQLite sorts NULLs first by default, PostgreSQL last.
      .orderBy('verified_at', (ob) => ob.asc().nullsFirst())
      .limit(limit)
      .execute()
  );
}

export async function countBlobsNotOk(db: Db): Promise<number> {
  const row = await db
    .selectFrom('blobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('state', '!=', 'ok')
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export async function totalBlobBytes(db: Db): Promise<number> {
  const row = await db
    .selectFrom('blobs')
    .select(sql<number>`coalesce(sum(size), 0)`.as('bytes'))
    .executeTakeFirst();
  return Number(row?.bytes ?? 0);
}

/** How many blobs are in each state. */
export async function countBlobsByState(db: Db): Promise<Record<BlobState, number>> {
  const rows = await db
    .selectFrom('blobs')
    .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy('state')
    .execute();
  const counts = { ok: 0, corrupt: 0, missing: 0 };
  for (const row of rows) counts[row.state] = Number(row.n);
  return counts;
}

export function listBlobsNotOk(
  db: Db,
): Promise<Array<Pick<BlobRow, 'sha256' | 'state' | 'state_detail' | 'verified_at'>>> {
  return db
    .selectFrom('blobs')
    .select(['sha256', 'state', 'state_detail', 'verified_at'])
    .where('state', '!=', 'ok')
    .execute();
}

/** Every row, by digest. */
export function listBlobsByDigest(db: Db): Promise<BlobRow[]> {
  return db.selectFrom('blobs').selectAll().orderBy('sha256').execute();
}

/** Marks a stored blob as a package or an update file, with the name its generated links use. */
export async function setBlobKind(db: Db, sha256: Sha256, kind: BlobKind, name: string): Promise<void> {
  await db.updateTable('blobs').set({ kind, name }).where('sha256', '=', sha256).execute();
}
