/**
 * Golden images as the Parallels Management Portal knows them: a name and
 * description shown to users and, per architecture, an enable switch and a
 * package (blob). Views add what the portal form wants: size, Download URL.
 */
import { z } from 'zod';
import type { Db } from '../db/open.js';
import type { BlobArch, BlobState, Flag, ImageRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { downloadUrl } from '../links.js';
import { actorLabel, recordAudit, type Actor } from './audit.js';
import { archMismatchWarnings } from './blobs.js';
import { loadPortalChanges, recordBaseline, refreshChangedAt, syncBlobUsage, type PortalChange } from './portal-changes.js';
import { PUBLIC_ADDRESS_MISSING, type PublicAddress } from './settings.js';
import { displayName, findByNameOrId, guardConstraints, parseInput, sha256Field } from './validation.js';

export const ARCHES = ['arm64', 'x86_64'] as const;
export type Arch = (typeof ARCHES)[number];
export const ARCH_LABELS: Record<Arch, string> = { arm64: 'Apple silicon', x86_64: 'Intel' };

export interface ServiceDeps {
  db: Db;
  now?: () => number;
}

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
  .object({ ...imageFields, description: imageFields.description.optional(), arm64: archInput.optional(), x86_64: archInput.optional() })
  .strict();
export const patchSchema = z.object(imageFields).partial().strict();

export type ImageInput = z.input<typeof createSchema>;
export type ImagePatch = z.input<typeof patchSchema>;

export interface ArchView {
  label: string;
  enabled: boolean;
  sha256: string | null;
  size: number | null;
  state: BlobState | null;
  /** The architecture the package was stored for (null without a package). */
  packageArch: BlobArch | null;
  /** The portal's Download URL: built from the public address, ends in .pvmp; null while no address is set. */
  url: string | null;
  /** Finished downloads of this architecture's package (all nodes), and the last one's time. */
  downloads: number;
  lastDownloadAt: string | null;
}

export interface ImageView {
  id: number;
  name: string;
  description: string;
  arm64: ArchView;
  x86_64: ArchView;
  groups: Array<{ id: number; name: string; primary: boolean }>;
  /** Slots holding a package marked for the other architecture (saved anyway: a warning, not an error). */
  warnings: string[];
  /** Set while the portal holds older values than these, until the admin marks it updated. */
  portalChange: PortalChange | null;
  downloads: number;
  lastDownloadAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export async function listImages(deps: ServiceDeps, baseUrl: string | null): Promise<ImageView[]> {
  const rows = await deps.db.selectFrom('images').selectAll().orderBy('name').execute();
  return toViews(deps, rows, baseUrl);
}

export async function getImage(deps: ServiceDeps, id: number, baseUrl: string | null): Promise<ImageView> {
  const [view] = await toViews(deps, [await requireImage(deps.db, id)], baseUrl);
  return view!;
}

/** Finds an image by exact name or numeric id (for the CLI). */
export function findImageRef(deps: ServiceDeps, ref: string): Promise<ImageRow> {
  return findByNameOrId(deps.db, 'images', ref, 'golden image');
}

export async function createImage(deps: ServiceDeps, actor: Actor, input: unknown, baseUrl: string | null): Promise<ImageView> {
  const data = parseInput(createSchema, input, 'image');
  const now = (deps.now ?? Date.now)();
  const arm64 = resolveArch('arm64', data.arm64, { enabled: 0, sha256: null });
  const x86_64 = resolveArch('x86_64', data.x86_64, { enabled: 0, sha256: null });
  const id = await deps.db.transaction().execute(async (trx) => {
    await assertNameFree(trx, data.name, null);
    await assertBlobsStored(trx, [arm64, x86_64]);
    const inserted = await guard(() =>
      trx
        .insertInto('images')
        .values({
          name: data.name,
          description: data.description ?? '',
          arm64_enabled: arm64.enabled,
          arm64_sha256: arm64.sha256,
          x86_64_enabled: x86_64.enabled,
          x86_64_sha256: x86_64.sha256,
          created_at: now,
          updated_at: now,
        })
        .returning('id')
        .executeTakeFirstOrThrow(),
    );
    await recordAudit(trx, { actor, action: 'image.create', target: `image:${inserted.id}`, at: now, details: { ...data } });
    // What the portal gets for a new image is not a change to it.
    await recordBaseline(trx, await requireImage(trx, inserted.id), baseUrl, actorLabel(actor), now);
    await syncBlobUsage(trx, now);
    return inserted.id;
  });
  return getImage(deps, id, baseUrl);
}

export async function updateImage(deps: ServiceDeps, actor: Actor, id: number, patch: unknown, baseUrl: string | null): Promise<ImageView> {
  const data = parseInput(patchSchema, patch, 'image');
  const now = (deps.now ?? Date.now)();
  await deps.db.transaction().execute(async (trx) => {
    const current = await requireImage(trx, id);
    const arm64 = resolveArch('arm64', data.arm64, { enabled: current.arm64_enabled, sha256: current.arm64_sha256 });
    const x86_64 = resolveArch('x86_64', data.x86_64, { enabled: current.x86_64_enabled, sha256: current.x86_64_sha256 });
    if (data.name !== undefined) await assertNameFree(trx, data.name, id);
    await assertBlobsStored(trx, [arm64, x86_64]);
    // An image with no record yet (from a bundle): the values before this change are what the portal holds.
    await recordBaseline(trx, current, baseUrl, 'system:goldmirror', now);
    await guard(() =>
      trx
        .updateTable('images')
        .set({
          ...(data.name !== undefined ? { name: data.name } : {}),
          ...(data.description !== undefined ? { description: data.description } : {}),
          arm64_enabled: arm64.enabled,
          arm64_sha256: arm64.sha256,
          x86_64_enabled: x86_64.enabled,
          x86_64_sha256: x86_64.sha256,
          updated_at: now,
        })
        .where('id', '=', id)
        .execute(),
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

export async function deleteImage(deps: ServiceDeps, actor: Actor, id: number, baseUrl: string | null): Promise<DeletedImage> {
  const view = await getImage(deps, id, baseUrl);
  const now = (deps.now ?? Date.now)();
  await deps.db.transaction().execute(async (trx) => {
    await requireImage(trx, id);
    // Explicit, rather than relying on ON DELETE SET NULL alone, so the audit names the groups.
    await trx.updateTable('groups').set({ image_id: null, updated_at: now }).where('image_id', '=', id).execute();
    await trx.deleteFrom('images').where('id', '=', id).execute();
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
  architectures: Record<Arch, { label: string; enabled: boolean; downloadUrl: string | null; sha256: string | null; size: number | null }>;
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
    architectures[arch] = { label: a.label, enabled: a.enabled, downloadUrl: a.enabled ? a.url : null, sha256: a.enabled ? a.sha256 : null, size: a.enabled ? a.size : null };
    if (a.enabled && a.state !== 'ok') problems.push(`${a.label}: the package is ${a.state ?? 'missing'} and cannot be served`);
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

function resolveArch(arch: Arch, input: { enabled?: boolean | undefined; sha256?: string | null | undefined } | undefined, current: { enabled: Flag; sha256: string | null }): ArchState {
  const enabled: Flag = input?.enabled === undefined ? current.enabled : input.enabled ? 1 : 0;
  const sha256 = input?.sha256 === undefined ? current.sha256 : input.sha256;
  if (enabled === 1 && sha256 === null) {
    throw new AppError('VALIDATION_FAILED', `${arch}: an enabled architecture needs a package (sha256)`, {
      fields: [{ field: `${arch}.sha256`, message: 'required when enabled' }],
    });
  }
  return { arch, enabled, sha256 };
}

async function assertBlobsStored(db: Db, arches: ArchState[]): Promise<void> {
  for (const a of arches) {
    if (a.sha256 === null) continue;
    const blob = await db.selectFrom('blobs').select('sha256').where('sha256', '=', a.sha256).executeTakeFirst();
    if (!blob) {
      throw new AppError('BLOB_NOT_STORED', `${a.arch}: no package with sha256 ${a.sha256} is stored; import or upload it first`, {
        fields: [{ field: `${a.arch}.sha256`, message: 'not stored on this mirror' }],
      });
    }
  }
}

async function assertNameFree(db: Db, name: string, exceptId: number | null): Promise<void> {
  let query = db.selectFrom('images').select('id').where('name', '=', name);
  if (exceptId !== null) query = query.where('id', '!=', exceptId);
  if (await query.executeTakeFirst()) throw new AppError('NAME_TAKEN', `a golden image named ${JSON.stringify(name)} already exists`);
}

async function requireImage(db: Db, id: number): Promise<ImageRow> {
  const row = await db.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new AppError('NOT_FOUND', `no golden image with id ${id}`);
  return row;
}

/** A unique violation here can only be the image name. */
function guard<T>(fn: () => Promise<T>): Promise<T> {
  return guardConstraints(fn, () => new AppError('NAME_TAKEN', 'a golden image with that name already exists'));
}

async function toViews(deps: ServiceDeps, rows: ImageRow[], baseUrl: string | null): Promise<ImageView[]> {
  if (rows.length === 0) return [];
  const { db } = deps;
  const changes = await loadPortalChanges(db, rows, baseUrl, (deps.now ?? Date.now)());
  const digests = [...new Set(rows.flatMap((r) => [r.arm64_sha256, r.x86_64_sha256]).filter((d): d is string => d !== null))];
  const blobs = digests.length
    ? await db.selectFrom('blobs').select(['sha256', 'size', 'name', 'state', 'arch']).where('sha256', 'in', digests).execute()
    : [];
  const blobBySha = new Map(blobs.map((b) => [b.sha256, b]));
  const stats = digests.length
    ? await db.selectFrom('download_stats').select(['sha256', 'downloads', 'last_download_at']).where('sha256', 'in', digests).execute()
    : [];
  const statsBySha = new Map(stats.map((st) => [st.sha256, st]));
  const groups = await db
    .selectFrom('groups')
    .select(['id', 'name', 'is_primary', 'image_id'])
    .where(
      'image_id',
      'in',
      rows.map((r) => r.id),
    )
    .orderBy('name')
    .execute();
  const arch = (row: ImageRow, a: Arch): ArchView => {
    const sha = a === 'arm64' ? row.arm64_sha256 : row.x86_64_sha256;
    const blob = sha ? blobBySha.get(sha) : undefined;
    const st = sha ? statsBySha.get(sha) : undefined;
    return {
      label: ARCH_LABELS[a],
      enabled: (a === 'arm64' ? row.arm64_enabled : row.x86_64_enabled) === 1,
      sha256: sha,
      size: blob?.size ?? null,
      state: blob?.state ?? null,
      packageArch: blob?.arch ?? null,
      url: sha && blob && baseUrl !== null ? downloadUrl(baseUrl, sha, blob.name) : null,
      downloads: Number(st?.downloads ?? 0),
      lastDownloadAt: st?.last_download_at ? new Date(st.last_download_at).toISOString() : null,
    };
  };
  return rows.map((row) => {
    const arm64 = arch(row, 'arm64');
    const x86_64 = arch(row, 'x86_64');
    const last = [arm64.lastDownloadAt, x86_64.lastDownloadAt].filter((v): v is string => v !== null).sort().at(-1) ?? null;
    return { row, arm64, x86_64, downloads: arm64.downloads + x86_64.downloads, lastDownloadAt: last };
  }).map(({ row, arm64, x86_64, downloads, lastDownloadAt }) => ({
    id: row.id,
    name: row.name,
    description: row.description,
    arm64,
    x86_64,
    downloads,
    lastDownloadAt,
    groups: groups.filter((g) => g.image_id === row.id).map((g) => ({ id: g.id, name: g.name, primary: g.is_primary === 1 })),
    warnings: archMismatchWarnings(
      ARCHES.map((a) => {
        const sha = a === 'arm64' ? row.arm64_sha256 : row.x86_64_sha256;
        return { arch: a, label: ARCH_LABELS[a], packageName: (sha && blobBySha.get(sha)?.name) || null, packageArch: a === 'arm64' ? arm64.packageArch : x86_64.packageArch };
      }),
    ),
    portalChange: changes.get(row.id) ?? null,
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  }));
}
