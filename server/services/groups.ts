/**
 * User groups (sublicenses) and the primary license key. Each group has at
 * most one golden image; like the portal, a group that already has one must
 * be cleared (imageId: null) before it can get another. Names are unique
 * regardless of (ASCII) case: the unique index on lower(name) enforces it.
 */
import { z } from 'zod';
import type { Db } from '../db/open.js';
import {
  deleteGroupRow,
  findGroupByExactName,
  findGroupByFoldedName,
  findGroupWithLicenseKey,
  findPrimaryGroup,
  getGroupById,
  insertGroup,
  listGroupRows,
  updateGroupRow,
} from '../db/repos/groups.js';
import { imageNameById, listImageNames } from '../db/repos/images.js';
import type { GroupRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { recordAudit, type Actor } from './audit.js';
import type { DbDeps } from './deps.js';
import { displayName, guardConstraints, parseInput } from './validation.js';

export const groupName = displayName(100);

export const licenseKey = z
  .string({ error: 'must be a string or null' })
  .trim()
  .min(1, 'must not be empty (use null for none)')
  .max(200, 'must be at most 200 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
  .nullable();

/** The API's rules for each group field; bundle manifests (server/bundles/manifest.ts) are held to the same ones. */
export const groupFields = {
  name: groupName,
  licenseKey,
  primary: z.boolean({ error: 'must be true or false' }),
  imageId: z.number({ error: 'must be an image id or null' }).int().positive().nullable(),
};

export const createSchema = z
  .object({
    ...groupFields,
    licenseKey: licenseKey.optional(),
    primary: groupFields.primary.optional(),
    imageId: groupFields.imageId.optional(),
  })
  .strict();
export const patchSchema = z.object(groupFields).partial().strict();

/** What a group is set to, as services and forms speak of it. */
export interface GroupSettings {
  name: string;
  licenseKey: string | null;
  primary: boolean;
  imageId: number | null;
}

/** The `groups` columns that hold `settings`, stamped as changed at `updatedAt`. */
export function groupColumns(settings: GroupSettings, updatedAt: number) {
  return {
    name: settings.name,
    license_key: settings.licenseKey,
    is_primary: settings.primary ? (1 as const) : (0 as const),
    image_id: settings.imageId,
    updated_at: updatedAt,
  };
}

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

export async function listGroups(deps: Pick<DbDeps, 'db'>): Promise<GroupView[]> {
  return toViews(deps.db, await listGroupRows(deps.db, { byName: true }));
}

export async function getGroup(deps: Pick<DbDeps, 'db'>, id: number): Promise<GroupView> {
  const [view] = await toViews(deps.db, [await requireGroup(deps.db, id)]);
  return view!;
}

/** The group a person means: its exact name, else the name in any case (names are unique that way), else its id. */
export async function findGroupRef(deps: Pick<DbDeps, 'db'>, ref: string): Promise<GroupRow> {
  const exact = await findGroupByExactName(deps.db, ref);
  if (exact) return exact;
  const anyCase = await findGroupByFoldedName(deps.db, ref);
  if (anyCase) return anyCase;
  if (/^\d+$/.test(ref)) {
    const byId = await getGroupById(deps.db, Number(ref));
    if (byId) return byId;
  }
  throw new AppError('NOT_FOUND', `no group named or numbered ${JSON.stringify(ref)}`);
}

export async function createGroup(deps: DbDeps, actor: Actor, input: unknown): Promise<GroupView> {
  const data = parseInput(createSchema, input, 'group');
  const now = deps.clock.now();
  const id = await deps.db.transaction().execute(async (trx) => {
    const next: GroupSettings = {
      name: data.name,
      licenseKey: data.licenseKey ?? null,
      primary: data.primary ?? false,
      imageId: data.imageId ?? null,
    };
    const imageName = await assertRules(trx, null, next);
    const id = await guard(() => insertGroup(trx, { ...groupColumns(next, now), created_at: now }), next.name);
    await recordAudit(trx, {
      actor,
      action: 'group.create',
      target: `group:${id}`,
      at: now,
      details: { ...data, imageName },
    });
    return id;
  });
  return getGroup(deps, id);
}

export async function updateGroup(deps: DbDeps, actor: Actor, id: number, patch: unknown): Promise<GroupView> {
  const data = parseInput(patchSchema, patch, 'group');
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    const current = await requireGroup(trx, id);
    const next = {
      name: data.name ?? current.name,
      licenseKey: data.licenseKey === undefined ? current.license_key : data.licenseKey,
      primary: data.primary === undefined ? current.is_primary === 1 : data.primary,
      imageId: data.imageId === undefined ? current.image_id : data.imageId,
    };
    const previousImageName = current.image_id === null ? null : await imageNameById(trx, current.image_id);
    if (current.image_id !== null && next.imageId !== null && next.imageId !== current.image_id) {
      throw new AppError(
        'GROUP_HAS_IMAGE',
        `group ${JSON.stringify(current.name)} already has the golden image ${JSON.stringify(previousImageName ?? current.image_id)}; ` +
          'a group can have only one, so remove that image from the group first',
        { groupId: id, imageId: current.image_id },
      );
    }
    const imageName = await assertRules(trx, id, next);
    await guard(() => updateGroupRow(trx, id, groupColumns(next, now)), next.name);
    // Names as they were at the time, so the history reads as sentences even after renames and deletions.
    await recordAudit(trx, {
      actor,
      action: 'group.update',
      target: `group:${id}`,
      at: now,
      details: {
        ...data,
        groupName: next.name,
        previousName: current.name,
        imageName,
        previousImageId: current.image_id,
        previousImageName,
      },
    });
  });
  return getGroup(deps, id);
}

export async function deleteGroup(deps: DbDeps, actor: Actor, id: number): Promise<GroupView> {
  const view = await getGroup(deps, id);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await deleteGroupRow(trx, id);
    await recordAudit(trx, {
      actor,
      action: 'group.delete',
      target: `group:${id}`,
      at: now,
      details: { name: view.name, imageName: view.image?.name ?? null },
    });
  });
  return view;
}

/** Checks the rules the schema enforces, with messages people can act on; returns the image's name. */
async function assertRules(db: Db, id: number | null, next: GroupSettings): Promise<string | null> {
  // The database compares, so this check and the unique index on folded names can never disagree.
  const sameName = await findGroupByFoldedName(db, next.name, id);
  if (sameName) throw nameTaken(next.name, sameName.name);
  if (next.licenseKey !== null && (await findGroupWithLicenseKey(db, next.licenseKey, id))) {
    throw new AppError('LICENSE_KEY_TAKEN', 'another group already has that license key');
  }
  if (next.primary) {
    const holder = await findPrimaryGroup(db, id);
    if (holder) {
      throw new AppError(
        'PRIMARY_TAKEN',
        `the primary license key is already held by group ${JSON.stringify(holder.name)}; clear it there first`,
      );
    }
  }
  if (next.imageId === null) return null;
  const imageName = await imageNameById(db, next.imageId);
  if (imageName === null) {
    throw new AppError('VALIDATION_FAILED', `no golden image with id ${next.imageId}`, {
      fields: [{ field: 'imageId', message: 'unknown image' }],
    });
  }
  return imageName;
}

async function requireGroup(db: Db, id: number): Promise<GroupRow> {
  const row = await getGroupById(db, id);
  if (!row) throw new AppError('NOT_FOUND', `no group with id ${id}`);
  return row;
}

/** The one wording of a taken name, whether the check or the unique index caught it. */
export function nameTaken(requested: string, existing: string): AppError {
  const hint = existing === requested ? '' : ' (group names are compared regardless of case)';
  return new AppError('NAME_TAKEN', `a group named ${JSON.stringify(existing)} already exists${hint}`);
}

/** Which of the group's unique columns the violation names (a concurrent writer got there between check and write). */
function guard<T>(fn: () => Promise<T>, name: string): Promise<T> {
  return guardConstraints(fn, (detail) => {
    if (detail.includes('is_primary'))
      return new AppError('PRIMARY_TAKEN', 'another group already holds the primary license key');
    if (detail.includes('license_key'))
      return new AppError('LICENSE_KEY_TAKEN', 'another group already has that license key');
    return nameTaken(name, name);
  });
}

async function toViews(db: Db, rows: GroupRow[]): Promise<GroupView[]> {
  const imageIds = [...new Set(rows.map((r) => r.image_id).filter((v): v is number => v !== null))];
  const images = await listImageNames(db, imageIds);
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
