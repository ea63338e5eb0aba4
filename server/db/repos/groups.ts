/** The `groups` table: user groups (sublicenses), each with at most one golden image. */
import { foldedColumn, foldedValue, inByteOrder } from '../dialect.js';
import type { Db } from '../open.js';
import { rowsById } from './rows-by-id.js';
import type { GroupRow } from '../schema.js';

const rows = rowsById('groups');
export const { get: getGroupById, insert: insertGroup } = rows;
export const { update: updateGroupRow, delete: deleteGroupRow } = rows;

export function findGroupByExactName(db: Db, name: string): Promise<GroupRow | undefined> {
  return db.selectFrom('groups').selectAll().where('name', '=', name).executeTakeFirst();
}

/** The group whose name equals `name` regardless of case, compared exactly as the unique index does. */
export function findGroupByFoldedName(
  db: Db,
  name: string,
  exceptId: number | null = null,
): Promise<GroupRow | undefined> {
  let query = db.selectFrom('groups').selectAll().where(foldedColumn(db, 'name'), '=', foldedValue(db, name));
  if (exceptId !== null) query = query.where('id', '!=', exceptId);
  return query.executeTakeFirst();
}

/** Another group (not `exceptId`) holding this license key. */
export function findGroupWithLicenseKey(
  db: Db,
  licenseKey: string,
  exceptId: number | null,
): Promise<GroupRow | undefined> {
  let query = db.selectFrom('groups').selectAll().where('license_key', '=', licenseKey);
  if (exceptId !== null) query = query.where('id', '!=', exceptId);
  return query.executeTakeFirst();
}

/** The group (other than `exceptId`) holding the primary license key. */
export function findPrimaryGroup(db: Db, exceptId: number | null): Promise<GroupRow | undefined> {
  let query = db.selectFrom('groups').selectAll().where('is_primary', '=', 1);
  if (exceptId !== null) query = query.where('id', '!=', exceptId);
  return query.executeTakeFirst();
}

/** Every group, by name when asked (else in storage order). */
export function listGroupRows(db: Db, options: { byName?: boolean } = {}): Promise<GroupRow[]> {
  const query = db.selectFrom('groups').selectAll();
  return (options.byName ? query.orderBy(inByteOrder(db, 'name')) : query).execute();
}

/** Groups of the given images, by name. */
export function listGroupsOfImages(db: Db, imageIds: readonly number[]): Promise<GroupRow[]> {
  if (imageIds.length === 0) return Promise.resolve([]);
  return db
    .selectFrom('groups')
    .selectAll()
    .where('image_id', 'in', imageIds)
    .orderBy(inByteOrder(db, 'name'))
    .execute();
}

export function listGroupNames(db: Db, ids: readonly number[]): Promise<Array<{ id: number; name: string }>> {
  if (ids.length === 0) return Promise.resolve([]);
  return db.selectFrom('groups').select(['id', 'name']).where('id', 'in', ids).execute();
}

/** Every group with its image's name, by group name (the CSV export). */
export function listGroupsWithImageName(
  db: Db,
): Promise<Array<{ name: string; licenseKey: string | null; primary: 0 | 1; image: string | null }>> {
  return db
    .selectFrom('groups')
    .leftJoin('images', 'images.id', 'groups.image_id')
    .select([
      'groups.name as name',
      'groups.license_key as licenseKey',
      'groups.is_primary as primary',
      'images.name as image',
    ])
    .orderBy(inByteOrder(db, 'groups.name'))
    .execute();
}

/** Takes an image away from every group that has it. */
export async function clearImageFromGroups(db: Db, imageId: number, updatedAt: number): Promise<void> {
  await db
    .updateTable('groups')
    .set({ image_id: null, updated_at: updatedAt })
    .where('image_id', '=', imageId)
    .execute();
}
