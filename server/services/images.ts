/**
 * Golden images as the Parallels Management Portal knows them: a name and
 * description shown to users and, per architecture, an enable switch and a
 * package (blob). Views add what the portal form wants: size, Download URL.
 */
import { z } from 'zod';
import type { Db } from '../db/open.js';
import type { Sha256 } from '../../storage/digest.js';
import { findBlob } from '../db/repos/blobs.js';
import { clearImageFromGroups } from '../db/repos/groups.js';
import {
  deleteImageRow,
  findImageByName,
  getImageById,
  imageNameTaken,
  insertImage,
  listImageRows,
  updateImageRow,
} from '../db/repos/images.js';
import type { Flag, ImageRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { ARCHES, type Arch } from './arches.js';
import { actorLabel, recordAudit, type Actor } from './audit.js';
import { syncBlobUsage } from './blob-usage.js';
import type { DbDeps } from './deps.js';
import { toImageViews, type ImageView } from './image-views.js';
import { recordBaseline, refreshChangedAt, type PortalChange } from './portal-changes.js';
import { PUBLIC_ADDRESS_MISSING, type PublicAddress } from './settings.js';
import { displayName, guardConstraints, parseInput, sha256Field } from './validation.js';

export { ARCHES, ARCH_LABELS, type Arch } from './arches.js';
export type { ArchView, ImageView } from './image-views.js';

const archInput = z
  .object({
    enabled: z.boolean({ error: 'must be true or false' }).optional(),
    sha256: sha256Field.nullable().optional(),
  })
  .strict();

/** The API's rules for each image field; bundle manifests (server/bundles/manifest.ts) are held to the same ones. */
export const imageFields = {
  name: displayName(100),
  description: z.string({ error: 'must be a string' }).trim().max(1000, 'must be at most 1000 characters'),
  arm64: archInput,
  x86_64: archInput,
};

export const createSchema = z
  .object({
    ...imageFields,
    description: imageFields.description.optional(),
    arm64: archInput.optional(),
    x86_64: archInput.optional(),
  })
  .strict();
export const patchSchema = z.object(imageFields).partial().strict();

export type ImageInput = z.input<typeof createSchema>;
export type ImagePatch = z.input<typeof patchSchema>;

export async function listImages(deps: DbDeps, baseUrl: string | null): Promise<ImageView[]> {
  return toImageViews(deps, await listImageRows(deps.db), baseUrl);
}

export async function getImage(deps: DbDeps, id: number, baseUrl: string | null): Promise<ImageView> {
  const [view] = await toImageViews(deps, [await requireImage(deps.db, id)], baseUrl);
  return view!;
}

/** Finds an image by exact name, else by numeric id (how the CLI lets admins refer to one). */
export async function findImageRef(deps: Pick<DbDeps, 'db'>, ref: string): Promise<ImageRow> {
  const found =
    (await findImageByName(deps.db, ref)) ?? (/^\d+$/.test(ref) ? await getImageById(deps.db, Number(ref)) : undefined);
  if (!found) throw new AppError('NOT_FOUND', `no golden image named or numbered ${JSON.stringify(ref)}`);
  return found;
}

export async function createImage(
  deps: DbDeps,
  actor: Actor,
  input: unknown,
  baseUrl: string | null,
): Promise<ImageView> {
  const data = parseInput(createSchema, input, 'image');
  const now = deps.clock.now();
  const arm64 = resolveArch('arm64', data.arm64, { enabled: 0, sha256: null });
  const x86_64 = resolveArch('x86_64', data.x86_64, { enabled: 0, sha256: null });
  const id = await deps.db.transaction().execute(async (trx) => {
    await assertNameFree(trx, data.name, null);
    await assertBlobsStored(trx, [arm64, x86_64]);
    const inserted = await guard(() =>
      insertImage(trx, {
        name: data.name,
        description: data.description ?? '',
        ...archColumns(arm64, x86_64),
        created_at: now,
        updated_at: now,
      }),
    );
    await recordAudit(trx, {
      actor,
      action: 'image.create',
      target: `image:${inserted}`,
      at: now,
      details: { ...data },
    });
    // What the portal gets for a new image is not a change to it.
    await recordBaseline(trx, await requireImage(trx, inserted), baseUrl, actorLabel(actor), now);
    await syncBlobUsage(trx, now);
    return inserted;
  });
  return getImage(deps, id, baseUrl);
}

export async function updateImage(
  deps: DbDeps,
  actor: Actor,
  id: number,
  patch: unknown,
  baseUrl: string | null,
): Promise<ImageView> {
  const data = parseInput(patchSchema, patch, 'image');
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    const current = await requireImage(trx, id);
    const arm64 = resolveArch('arm64', data.arm64, { enabled: current.arm64_enabled, sha256: current.arm64_sha256 });
    const x86_64 = resolveArch('x86_64', data.x86_64, {
      enabled: current.x86_64_enabled,
      sha256: current.x86_64_sha256,
    });
    if (data.name !== undefined) await assertNameFree(trx, data.name, id);
    await assertBlobsStored(trx, [arm64, x86_64]);
    // An image with no record yet (from a bundle): the values before this change are what the portal holds.
    await recordBaseline(trx, current, baseUrl, 'system:goldmirror', now);
    await guard(() =>
      updateImageRow(trx, id, {
        ...(data.name !== undefined ? { name: data.name } : {}),
        ...(data.description !== undefined ? { description: data.description } : {}),
        ...archColumns(arm64, x86_64),
        updated_at: now,
      }),
    );
    await recordAudit(trx, { actor, action: 'image.update', target: `image:${id}`, at: now, details: { ...data } });
    await refreshChangedAt(trx, baseUrl, now, [id]);
    await syncBlobUsage(trx, now);
  });
  return getImage(deps, id, baseUrl);
}

export interface DeletedImage {
  deleted: ImageView;
  /** Groups that had this image and now have none: they must be given another in the portal. */
  groupsLeftWithoutImage: Array<{ id: number; name: string }>;
}

export async function deleteImage(
  deps: DbDeps,
  actor: Actor,
  id: number,
  baseUrl: string | null,
): Promise<DeletedImage> {
  const view = await getImage(deps, id, baseUrl);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await requireImage(trx, id);
    // Explicit, rather than relying on ON DELETE SET NULL alone, so the audit names the groups.
    await clearImageFromGroups(trx, id, now);
    await deleteImageRow(trx, id);
    await recordAudit(trx, {
      actor,
      action: 'image.delete',
      target: `image:${id}`,
      at: now,
      details: { name: view.name, groups: view.groups.map((g) => g.name) },
    });
    // Its packages retire now; deleting the image counts as taking it out of the portal.
    await syncBlobUsage(trx, now);
  });
  return { deleted: view, groupsLeftWithoutImage: view.groups.map(({ id: gid, name }) => ({ id: gid, name })) };
}

/** Exactly what goes into the portal's golden image form. */
export interface PortalValues {
  name: string;
  description: string;
  architectures: Record<
    Arch,
    { label: string; enabled: boolean; downloadUrl: string | null; sha256: string | null; size: number | null }
  >;
  groups: string[];
  primaryLicenseKey: boolean;
  /** False when no architecture is enabled, no public address is set, or an enabled package is not servable. */
  ready: boolean;
  problems: string[];
  /** Why Macs cannot use these links although they are offered (a loopback or localhost address): shown in red. */
  warnings: string[];
  /** The address the Download URLs start with, and where it is set. */
  publicAddress: { url: string | null; source: PublicAddress['source'] };
  /** Set while the portal holds older values (`previous`), until the admin marks it updated. */
  pendingChange: PortalChange | null;
}

export function portalValues(view: ImageView, address: PublicAddress): PortalValues {
  const problems: string[] = [];
  const architectures = {} as PortalValues['architectures'];
  for (const arch of ARCHES) {
    const a = view[arch];
    architectures[arch] = {
      label: a.label,
      enabled: a.enabled,
      downloadUrl: a.enabled ? a.url : null,
      sha256: a.enabled ? a.sha256 : null,
      size: a.enabled ? a.size : null,
    };
    if (a.enabled && a.state !== 'ok')
      problems.push(`${a.label}: the package is ${a.state ?? 'missing'} and cannot be served`);
  }
  if (address.url === null && ARCHES.some((arch) => view[arch].enabled)) problems.push(PUBLIC_ADDRESS_MISSING);
  if (!ARCHES.some((arch) => view[arch].enabled)) problems.push('no architecture is enabled');
  return {
    name: view.name,
    description: view.description,
    architectures,
    groups: view.groups.filter((g) => !g.primary).map((g) => g.name),
    primaryLicenseKey: view.groups.some((g) => g.primary),
    ready: problems.length === 0,
    problems,
    warnings: address.warnings,
    publicAddress: { url: address.url, source: address.source },
    pendingChange: view.portalChange,
  };
}

interface ArchState {
  arch: Arch;
  enabled: Flag;
  sha256: string | null;
}

function resolveArch(
  arch: Arch,
  input: { enabled?: boolean | undefined; sha256?: string | null | undefined } | undefined,
  current: { enabled: Flag; sha256: string | null },
): ArchState {
  const enabled: Flag = input?.enabled === undefined ? current.enabled : input.enabled ? 1 : 0;
  const sha256 = input?.sha256 === undefined ? current.sha256 : input.sha256;
  if (enabled === 1 && sha256 === null) {
    throw new AppError('VALIDATION_FAILED', `${arch}: an enabled architecture needs a package (sha256)`, {
      fields: [{ field: `${arch}.sha256`, message: 'required when enabled' }],
    });
  }
  return { arch, enabled, sha256 };
}

/** The `images` columns of both architecture slots. */
function archColumns(arm64: ArchState, x86_64: ArchState) {
  return {
    arm64_enabled: arm64.enabled,
    arm64_sha256: arm64.sha256,
    x86_64_enabled: x86_64.enabled,
    x86_64_sha256: x86_64.sha256,
  };
}

async function assertBlobsStored(db: Db, arches: ArchState[]): Promise<void> {
  for (const a of arches) {
    if (a.sha256 === null) continue;
    const blob = await findBlob(db, a.sha256 as Sha256);
    if (blob?.kind === 'update') {
      throw new AppError(
        'BLOB_NOT_STORED',
        `${a.arch}: ${a.sha256} is a Parallels Desktop update file, not a golden-image package`,
        { fields: [{ field: `${a.arch}.sha256`, message: 'a Parallels Desktop update file, not a package' }] },
      );
    }
    if (!blob) {
      throw new AppError(
        'BLOB_NOT_STORED',
        `${a.arch}: no package with sha256 ${a.sha256} is stored; import or upload it first`,
        {
          fields: [{ field: `${a.arch}.sha256`, message: 'not stored on this mirror' }],
        },
      );
    }
  }
}

async function assertNameFree(db: Db, name: string, exceptId: number | null): Promise<void> {
  if (await imageNameTaken(db, name, exceptId))
    throw new AppError('NAME_TAKEN', `a golden image named ${JSON.stringify(name)} already exists`);
}

async function requireImage(db: Db, id: number): Promise<ImageRow> {
  const row = await getImageById(db, id);
  if (!row) throw new AppError('NOT_FOUND', `no golden image with id ${id}`);
  return row;
}

/** A unique violation here can only be the image name. */
function guard<T>(fn: () => Promise<T>): Promise<T> {
  return guardConstraints(fn, () => new AppError('NAME_TAKEN', 'a golden image with that name already exists'));
}
