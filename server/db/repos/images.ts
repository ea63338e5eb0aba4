/** The `images` table: golden images with, per architecture, an enable flag and a package digest. */
import type { Db } from '../open.js';
import { rowsById } from './rows-by-id.js';
import type { ImageRow } from '../schema.js';
import { inByteOrder } from '../dialect.js';

const rows = rowsById('images');
export const { get: getImageById, insert: insertImage } = rows;
export const { update: updateImageRow, delete: deleteImageRow } = rows;

export function findImageByName(db: Db, name: string): Promise<ImageRow | undefined> {
  return db.selectFrom('images').selectAll().where('name', '=', name).executeTakeFirst();
}

/** All images by name. */
export function listImageRows(db: Db): Promise<ImageRow[]> {
  return db.selectFrom('images').selectAll().orderBy(inByteOrder(db, 'name')).execute();
}

/** Id and name of every image (unordered), or of the given ids. */
export function listImageNames(db: Db, ids?: readonly number[]): Promise<Array<{ id: number; name: string }>> {
  if (ids !== undefined && ids.length === 0) return Promise.resolve([]);
  let query = db.selectFrom('images').select(['id', 'name']);
  if (ids !== undefined) query = query.where('id', 'in', ids);
  return query.execute();
}

export async function imageNameById(db: Db, id: number): Promise<string | null> {
  return (await db.selectFrom('images').select('name').where('id', '=', id).executeTakeFirst())?.name ?? null;
}

/** True when another image (not `exceptId`) has this exact name. */
export async function imageNameTaken(db: Db, name: string, exceptId: number | null): Promise<boolean> {
  let query = db.selectFrom('images').select('id').where('name', '=', name);
  if (exceptId !== null) query = query.where('id', '!=', exceptId);
  return (await query.executeTakeFirst()) !== undefined;
}

/** Every digest some image points at (enabled or not). */
export async function imageDigests(db: Db): Promise<Set<string>> {
  const rows = await db.selectFrom('images').select(['arm64_sha256', 'x86_64_sha256']).execute();
  return new Set(rows.flatMap((r) => [r.arm64_sha256, r.x86_64_sha256]).filter((d): d is string => d !== null));
}

export type ImageDigests = Pick<ImageRow, 'id' | 'name' | 'arm64_sha256' | 'x86_64_sha256'>;

/** Images using any of `digests` in either slot; every image when `digests` is null. Ordered by name when asked. */
export function imagesUsing(
  db: Db,
  digests: readonly string[] | null,
  options: { byName?: boolean } = {},
): Promise<ImageDigests[]> {
  if (digests !== null && digests.length === 0) return Promise.resolve([]);
  let query = db.selectFrom('images').select(['id', 'name', 'arm64_sha256', 'x86_64_sha256']);
  if (digests !== null)
    query = query.where((eb) => eb.or([eb('arm64_sha256', 'in', digests), eb('x86_64_sha256', 'in', digests)]));
  if (options.byName) query = query.orderBy(inByteOrder(db, 'name'));
  return query.execute();
}
