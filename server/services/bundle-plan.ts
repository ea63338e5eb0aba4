/** What a bundle changes on this mirror: the plan (with every conflict), and applying it in one transaction. */
import type { Db } from '../db/open.js';
import { findGroupByExactName, insertGroup, listGroupRows, updateGroupRow } from '../db/repos/groups.js';
import { findImageByName, insertImage, listImageNames, listImageRows, updateImageRow } from '../db/repos/images.js';
import { AppError } from '../errors.js';
import { recordAudit, type Actor } from './audit.js';
import { syncBlobUsage } from './blob-usage.js';
import type { ImportReport } from '../bundles/import.js';
import { blobKindOf, type Manifest } from '../bundles/manifest.js';
import { applyUpdates, planUpdates, type CarryOptions, type UpdatesReport } from './pd-updates/carry.js';

export interface Plan {
  imagesReport: ImportReport['images'];
  groupsReport: ImportReport['groups'];
  updatesReport: UpdatesReport;
}

/** Compares the manifest with this mirror; throws BUNDLE_CONFLICT listing every conflict. */
export async function planChanges(db: Db, manifest: Manifest, options: CarryOptions = {}): Promise<Plan> {
  const images = await listImageRows(db);
  const groups = await listGroupRows(db);
  const imageByName = new Map(images.map((i) => [i.name, i]));
  const imageNameById = new Map(images.map((i) => [i.id, i.name]));
  const groupByName = new Map(groups.map((g) => [g.name, g]));
  const known = new Set([...manifest.images.map((i) => i.name), ...images.map((i) => i.name)]);
  const conflicts: string[] = [];
  const imagesReport: Plan['imagesReport'] = { created: [], updated: [], unchanged: [] };
  const groupsReport: Plan['groupsReport'] = { created: [], updated: [], unchanged: [] };

  for (const image of manifest.images) {
    const local = imageByName.get(image.name);
    if (!local) imagesReport.created.push(image.name);
    else if (
      local.description !== image.description ||
      (local.arm64_enabled === 1) !== image.arm64.enabled ||
      local.arm64_sha256 !== image.arm64.sha256 ||
      (local.x86_64_enabled === 1) !== image.x86_64.enabled ||
      local.x86_64_sha256 !== image.x86_64.sha256
    ) {
      imagesReport.updated.push(image.name);
    } else imagesReport.unchanged.push(image.name);
  }
  for (const group of manifest.groups) {
    if (group.image !== null && !known.has(group.image))
      conflicts.push(
        `group ${JSON.stringify(group.name)} uses image ${JSON.stringify(group.image)}, which is neither in the bundle nor here`,
      );
    const local = groupByName.get(group.name);
    // Group names are unique regardless of (ASCII) case (migration 0007).
    const caseTwin = local
      ? undefined
      : groups.find(
          (g) =>
            g.name.replace(/[A-Z]/g, (ch) => ch.toLowerCase()) ===
            group.name.replace(/[A-Z]/g, (ch) => ch.toLowerCase()),
        );
    if (caseTwin)
      conflicts.push(
        `group ${JSON.stringify(group.name)} differs only in case from group ${JSON.stringify(caseTwin.name)} here, and group names are unique regardless of case; rename one of them`,
      );
    const localImage = local?.image_id != null ? imageNameById.get(local.image_id) : null;
    if (local && localImage && group.image !== null && localImage !== group.image) {
      conflicts.push(
        `group ${JSON.stringify(group.name)} already has golden image ${JSON.stringify(localImage)} here; the bundle would give it a second one, ${JSON.stringify(group.image)}`,
      );
    }
    if (group.primary) {
      const holder = groups.find((g) => g.is_primary === 1 && g.name !== group.name);
      if (holder)
        conflicts.push(
          `the primary license key belongs to group ${JSON.stringify(holder.name)} here; the bundle gives it to ${JSON.stringify(group.name)}`,
        );
    }
    if (group.licenseKey !== null) {
      const holder = groups.find((g) => g.license_key === group.licenseKey && g.name !== group.name);
      if (holder)
        conflicts.push(
          `group ${JSON.stringify(holder.name)} already has the license key the bundle gives to ${JSON.stringify(group.name)}`,
        );
    }
    const wantImage = group.image ?? localImage ?? null;
    if (!local) groupsReport.created.push(group.name);
    else if (
      local.license_key !== group.licenseKey ||
      (local.is_primary === 1) !== group.primary ||
      (localImage ?? null) !== wantImage
    )
      groupsReport.updated.push(group.name);
    else groupsReport.unchanged.push(group.name);
  }
  const updates = await planUpdates(
    db,
    manifest.updates ?? [],
    manifest.blobs.map((b) => ({ sha256: b.sha256, kind: blobKindOf(b) })),
    options,
  );
  conflicts.push(...updates.conflicts);
  if (conflicts.length > 0) {
    throw new AppError(
      'BUNDLE_CONFLICT',
      `the bundle conflicts with this mirror; nothing was changed: ${conflicts.join('; ')}`,
      { conflicts },
    );
  }
  return { imagesReport, groupsReport, updatesReport: updates.report };
}

/**
 * Applies the manifest inside the caller's transaction, through the same
 * image and group writes the services use: images and groups matched by
 * name, conflicts checked again, retirements and one audit entry recorded.
 */
export async function applyManifest(
  trx: Db,
  manifest: Manifest,
  actor: Actor,
  now: number,
  options: CarryOptions = {},
): Promise<void> {
  const plan = await planChanges(trx, manifest, options);
  const changedImages = new Set([...plan.imagesReport.created, ...plan.imagesReport.updated]);
  for (const image of manifest.images) {
    if (!changedImages.has(image.name)) continue;
    const values = {
      description: image.description,
      arm64_enabled: image.arm64.enabled ? (1 as const) : (0 as const),
      arm64_sha256: image.arm64.sha256,
      x86_64_enabled: image.x86_64.enabled ? (1 as const) : (0 as const),
      x86_64_sha256: image.x86_64.sha256,
      updated_at: now,
    };
    const existing = await findImageByName(trx, image.name);
    if (existing) await updateImageRow(trx, existing.id, values);
    else await insertImage(trx, { ...values, name: image.name, created_at: now });
  }
  const ids = new Map((await listImageNames(trx)).map((i) => [i.name, i.id]));
  const changedGroups = new Set([...plan.groupsReport.created, ...plan.groupsReport.updated]);
  for (const group of manifest.groups) {
    if (!changedGroups.has(group.name)) continue;
    const existing = await findGroupByExactName(trx, group.name);
    const imageId = group.image !== null ? (ids.get(group.image) ?? null) : (existing?.image_id ?? null);
    const values = {
      license_key: group.licenseKey,
      is_primary: group.primary ? (1 as const) : (0 as const),
      image_id: imageId,
      updated_at: now,
    };
    if (existing) await updateGroupRow(trx, existing.id, values);
    else await insertGroup(trx, { ...values, name: group.name, created_at: now });
  }
  // Retirements start now, in the same transaction, so GC never meets a replaced package it knows nothing about.
  if (changedImages.size > 0) await syncBlobUsage(trx, now);
  await applyUpdates(trx, manifest.updates ?? [], plan.updatesReport, actor, now);
  const updates = plan.updatesReport;
  const updateChanges =
    updates.created.length + updates.updated.length + updates.published.length + updates.unpublished.length;
  if (changedImages.size + changedGroups.size + updateChanges > 0) {
    await recordAudit(trx, {
      actor,
      action: 'bundle.import',
      target: 'bundle',
      at: now,
      details: {
        images: plan.imagesReport,
        groups: plan.groupsReport,
        ...(updateChanges > 0 ? { updates: plan.updatesReport } : {}),
      },
    });
  }
}
