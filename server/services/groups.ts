/**
 * User groups (sublicenses) and the primary license key. Each group has at
 * most one golden image; like the portal, a group that already has one must
 * be cleared (imageId: null) before it can get another.
 */
import { z } from 'zod';
import type { Db } from '../db/open.js';
import type { GroupRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { recordAudit, type Actor } from './audit.js';
import type { ServiceDeps } from './images.js';
import { displayName, findByNameOrId, guardConstraints, parseInput } from './validation.js';

const licenseKey = z
  .string({ error: 'must be a string or null' })
  .trim()
  .min(1, 'must not be empty (use null for none)')
  .max(200, 'must be at most 200 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
  .nullable();

/** The API's rules for each group field; bundle manifests (server/bundles/manifest.ts) are held to the same ones. */
export const groupFields = {
  name: displayName(100),
  licenseKey,
  primary: z.boolean({ error: 'must be true or false' }),
  imageId: z.number({ error: 'must be an image id or null' }).int().positive().nullable(),
};

const createSchema = z
  .object({ ...groupFields, licenseKey: licenseKey.optional(), primary: groupFields.primary.optional(), imageId: groupFields.imageId.optional() })
  .strict();
const patchSchema = z.object(groupFields).partial().strict();

export interface GroupView {
  id: number;
  name: string;
  licenseKey: string | null;
  primary: boolean;
  image: { id: number; name: string } | null;
  imageId: number | null;
  createdAt: string;
  updatedAt: string;
}

export async function listGroups(deps: ServiceDeps): Promise<GroupView[]> {
  return toViews(deps.db, await deps.db.selectFrom('groups').selectAll().orderBy('name').execute());
}

export async function getGroup(deps: ServiceDeps, id: number): Promise<GroupView> {
  const [view] = await toViews(deps.db, [await requireGroup(deps.db, id)]);
  return view!;
}

export function findGroupRef(deps: ServiceDeps, ref: string): Promise<GroupRow> {
  return findByNameOrId(deps.db, 'groups', ref, 'group');
}

export async function createGroup(deps: ServiceDeps, actor: Actor, input: unknown): Promise<GroupView> {
  const data = parseInput(createSchema, input, 'group');
  const now = (deps.now ?? Date.now)();
  const id = await deps.db.transaction().execute(async (trx) => {
    await assertRules(trx, null, { name: data.name, licenseKey: data.licenseKey ?? null, primary: data.primary ?? false, imageId: data.imageId ?? null });
    const row = await guard(() =>
      trx
        .insertInto('groups')
        .values({
          name: data.name,
          license_key: data.licenseKey ?? null,
          is_primary: data.primary ? 1 : 0,
          image_id: data.imageId ?? null,
          created_at: now,
          updated_at: now,
        })
        .returning('id')
        .executeTakeFirstOrThrow(),
    );
    await recordAudit(trx, { actor, action: 'group.create', target: `group:${row.id}`, at: now, details: { ...data } });
    return row.id;
  });
  return getGroup(deps, id);
}

export async function updateGroup(deps: ServiceDeps, actor: Actor, id: number, patch: unknown): Promise<GroupView> {
  const data = parseInput(patchSchema, patch, 'group');
  const now = (deps.now ?? Date.now)();
  await deps.db.transaction().execute(async (trx) => {
    const current = await requireGroup(trx, id);
    const next = {
      name: data.name ?? current.name,
      licenseKey: data.licenseKey === undefined ? current.license_key : data.licenseKey,
      primary: data.primary === undefined ? current.is_primary === 1 : data.primary,
      imageId: data.imageId === undefined ? current.image_id : data.imageId,
    };
    if (current.image_id !== null && next.imageId !== null && next.imageId !== current.image_id) {
      const currentImage = await trx.selectFrom('images').select('name').where('id', '=', current.image_id).executeTakeFirst();
      throw new AppError(
        'GROUP_HAS_IMAGE',
        `group ${JSON.stringify(current.name)} already has the golden image ${JSON.stringify(currentImage?.name ?? current.image_id)}; ` +
          'a group can have only one, so remove that image from the group first',
        { groupId: id, imageId: current.image_id },
      );
    }
    await assertRules(trx, id, next);
    await guard(() =>
      trx
        .updateTable('groups')
        .set({ name: next.name, license_key: next.licenseKey, is_primary: next.primary ? 1 : 0, image_id: next.imageId, updated_at: now })
        .where('id', '=', id)
        .execute(),
    );
    await recordAudit(trx, { actor, action: 'group.update', target: `group:${id}`, at: now, details: { ...data } });
  });
  return getGroup(deps, id);
}

export async function deleteGroup(deps: ServiceDeps, actor: Actor, id: number): Promise<GroupView> {
  const view = await getGroup(deps, id);
  const now = (deps.now ?? Date.now)();
  await deps.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('groups').where('id', '=', id).execute();
    await recordAudit(trx, { actor, action: 'group.delete', target: `group:${id}`, at: now, details: { name: view.name } });
  });
  return view;
}

async function assertRules(
  db: Db,
  id: number | null,
  next: { name: string; licenseKey: string | null; primary: boolean; imageId: number | null },
): Promise<void> {
  const others = (q: ReturnType<typeof selectGroups>) => (id === null ? q : q.where('id', '!=', id));
  const selectGroups = () => db.selectFrom('groups').select(['id', 'name']);
  if (await others(selectGroups().where('name', '=', next.name)).executeTakeFirst()) {
    throw new AppError('NAME_TAKEN', `a group named ${JSON.stringify(next.name)} already exists`);
  }
  if (next.licenseKey !== null && (await others(selectGroups().where('license_key', '=', next.licenseKey)).executeTakeFirst())) {
    throw new AppError('LICENSE_KEY_TAKEN', 'another group already has that license key');
  }
  if (next.primary) {
    const holder = await others(selectGroups().where('is_primary', '=', 1)).executeTakeFirst();
    if (holder) {
      throw new AppError('PRIMARY_TAKEN', `the primary license key is already held by group ${JSON.stringify(holder.name)}; clear it there first`);
    }
  }
  if (next.imageId !== null && !(await db.selectFrom('images').select('id').where('id', '=', next.imageId).executeTakeFirst())) {
    throw new AppError('VALIDATION_FAILED', `no golden image with id ${next.imageId}`, { fields: [{ field: 'imageId', message: 'unknown image' }] });
  }
}

async function requireGroup(db: Db, id: number): Promise<GroupRow> {
  const row = await db.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new AppError('NOT_FOUND', `no group with id ${id}`);
  return row;
}

/** Which of the group's unique columns the violation names. */
function guard<T>(fn: () => Promise<T>): Promise<T> {
  return guardConstraints(fn, (detail) => {
    const what = detail.includes('is_primary') ? 'PRIMARY_TAKEN' : detail.includes('license_key') ? 'LICENSE_KEY_TAKEN' : 'NAME_TAKEN';
    return new AppError(what, 'another group already holds that value');
  });
}

async function toViews(db: Db, rows: GroupRow[]): Promise<GroupView[]> {
  const imageIds = [...new Set(rows.map((r) => r.image_id).filter((v): v is number => v !== null))];
  const images = imageIds.length ? await db.selectFrom('images').select(['id', 'name']).where('id', 'in', imageIds).execute() : [];
  const byId = new Map(images.map((i) => [i.id, i]));
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    licenseKey: r.license_key,
    primary: r.is_primary === 1,
    imageId: r.image_id,
    image: r.image_id !== null ? (byId.get(r.image_id) ?? null) : null,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
  }));
}
