/** The `portal_confirmed` table: per image, the values last confirmed as entered in the Management Portal. */
import type { Insertable } from 'kysely';
import type { Db } from '../open.js';
import type { Flag, PortalConfirmedRow, PortalConfirmedTable } from '../schema.js';
import { inByteOrder } from '../dialect.js';

export type ConfirmedValues = Omit<Insertable<PortalConfirmedTable>, 'image_id' | 'changed_at'>;

/** Records the values as the image's baseline unless it has one already. */
export async function insertBaselineIfMissing(db: Db, imageId: number, values: ConfirmedValues): Promise<void> {
  await db
    .insertInto('portal_confirmed')
    .values({ image_id: imageId, ...values })
    .onConflict((oc) => oc.column('image_id').doNothing())
    .execute();
}

export function listConfirmed(db: Db, imageIds: readonly number[]): Promise<PortalConfirmedRow[]> {
  if (imageIds.length === 0) return Promise.resolve([]);
  return db.selectFrom('portal_confirmed').selectAll().where('image_id', 'in', imageIds).execute();
}

/** Gives records without a known address this one (only those of `imageIds` when given). */
export async function fillUnknownAddress(db: Db, publicUrl: string, imageIds?: readonly number[]): Promise<void> {
  let query = db.updateTable('portal_confirmed').set({ public_url: publicUrl }).where('public_url', 'is', null);
  if (imageIds !== undefined) query = query.where('image_id', 'in', imageIds.length ? imageIds : [-1]);
  await query.execute();
}

export async function setChangedAt(db: Db, imageId: number, changedAt: number | null): Promise<void> {
  await db.updateTable('portal_confirmed').set({ changed_at: changedAt }).where('image_id', '=', imageId).execute();
}

export async function replaceConfirmed(db: Db, imageId: number, values: ConfirmedValues): Promise<void> {
  await db
    .updateTable('portal_confirmed')
    .set({ ...values, changed_at: null })
    .where('image_id', '=', imageId)
    .execute();
}

/** A confirmed record next to its image's current values (prefixed `cur_`). */
export type ConfirmedWithCurrent = PortalConfirmedRow & {
  cur_arm64_enabled: Flag;
  cur_arm64_sha256: string | null;
  cur_x86_64_enabled: Flag;
  cur_x86_64_sha256: string | null;
};

/** Every record (or those of `imageIds`) with its image's current values. */
export function listConfirmedWithCurrent(db: Db, imageIds?: readonly number[]): Promise<ConfirmedWithCurrent[]> {
  let query = db
    .selectFrom('portal_confirmed')
    .innerJoin('images', 'images.id', 'portal_confirmed.image_id')
    .selectAll('portal_confirmed')
    .select([
      'images.arm64_enabled as cur_arm64_enabled',
      'images.arm64_sha256 as cur_arm64_sha256',
      'images.x86_64_enabled as cur_x86_64_enabled',
      'images.x86_64_sha256 as cur_x86_64_sha256',
    ]);
  if (imageIds !== undefined) query = query.where('portal_confirmed.image_id', 'in', imageIds.length ? imageIds : [-1]);
  return query.execute();
}

export type ConfirmedSlots = Pick<
  PortalConfirmedRow,
  'arm64_enabled' | 'arm64_sha256' | 'x86_64_enabled' | 'x86_64_sha256'
>;

/** The confirmed slots of every image, with the image's id and name, by image name. */
export function listConfirmedSlots(db: Db): Promise<Array<ConfirmedSlots & { imageId: number; imageName: string }>> {
  return db
    .selectFrom('portal_confirmed')
    .innerJoin('images', 'images.id', 'portal_confirmed.image_id')
    .select([
      'images.id as imageId',
      'images.name as imageName',
      'portal_confirmed.arm64_enabled',
      'portal_confirmed.arm64_sha256',
      'portal_confirmed.x86_64_enabled',
      'portal_confirmed.x86_64_sha256',
    ])
    .orderBy(inByteOrder(db, 'images.name'))
    .execute();
}
