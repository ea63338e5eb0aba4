/**
 * What a bundle export holds: the chosen images (all by default), their groups and packages, and the Parallels
 * Desktop versions asked for (the published ones by default) with their update files, as a manifest.
 */
import { findBlobsByDigests } from '../db/repos/blobs.js';
import { listGroupRows } from '../db/repos/groups.js';
import { listImageRows } from '../db/repos/images.js';
import { AppError } from '../errors.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, type Manifest } from '../bundles/manifest.js';
import type { DbDeps } from './deps.js';
import { findImageRef } from './images.js';
import { updatesToCarry, type UpdateScope } from './pd-updates/carry.js';
import { updateFileName } from './pd-updates/versions.js';

export interface ExportOptions {
  /** Image names or ids; empty = everything. */
  images?: string[];
  includeBlobs: boolean;
  /** Parallels Desktop versions to carry: published (the default), every stored one (all), or none. */
  updates?: UpdateScope | undefined;
}

/** The manifest of the chosen images (all by default), their groups and packages, dated by the deps' clock. */
export async function buildManifest(deps: DbDeps, options: ExportOptions): Promise<Manifest> {
  const { db } = deps;
  let rows = await listImageRows(db);
  if (options.images && options.images.length > 0) {
    const wanted = new Set<number>();
    for (const ref of options.images) wanted.add((await findImageRef(deps, ref)).id);
    rows = rows.filter((r) => wanted.has(r.id));
  }
  const imageIds = new Set(rows.map((r) => r.id));
  const names = new Map(rows.map((r) => [r.id, r.name]));
  const everything = !options.images || options.images.length === 0;
  const groups = (await listGroupRows(db, { byName: true })).filter(
    (g) => everything || (g.image_id !== null && imageIds.has(g.image_id)),
  );
  const digests = [
    ...new Set(rows.flatMap((r) => [r.arm64_sha256, r.x86_64_sha256]).filter((d): d is string => d !== null)),
  ].sort();
  const blobs = await findBlobsByDigests(db, digests);
  const unavailable = blobs.filter((b) => b.state !== 'ok');
  if (options.includeBlobs && unavailable.length > 0) {
    throw new AppError(
      'BLOB_UNAVAILABLE',
      `cannot export: package ${unavailable[0]!.sha256} is ${unavailable[0]!.state}; re-import it first`,
    );
  }
  const updates = await updatesToCarry(db, options.updates ?? 'published');
  const updateFiles = new Map<string, { sha256: string; size: number; name: string; kind: 'update' }>();
  for (const u of updates)
    if (!updateFiles.has(u.sha256))
      updateFiles.set(u.sha256, { sha256: u.sha256, size: u.size, name: updateFileName(u.version), kind: 'update' });
  const updateBlobs = await findBlobsByDigests(db, [...updateFiles.keys()]);
  const badUpdate = updateBlobs.find((b) => b.state !== 'ok');
  const goneUpdate = [...updateFiles.keys()].find((sha) => !updateBlobs.some((b) => b.sha256 === sha));
  if (options.includeBlobs && (badUpdate || goneUpdate)) {
    const version = updates.find((u) => u.sha256 === (badUpdate?.sha256 ?? goneUpdate))!.version;
    throw new AppError(
      'BLOB_UNAVAILABLE',
      `cannot export: the file of Parallels Desktop ${version} is ${badUpdate?.state ?? 'missing'}; ` +
        'store it again, or export without it (--updates none)',
    );
  }
  // Version 1 when nothing needs version 2, so an older goldmirror reads the bundle too.
  const carriesUpdates = updates.length > 0;
  return {
    format: BUNDLE_FORMAT,
    version: carriesUpdates ? BUNDLE_VERSION : 1,
    createdAt: new Date(deps.clock.now()).toISOString(),
    includesBlobs: options.includeBlobs,
    images: rows.map((r) => ({
      name: r.name,
      description: r.description,
      arm64: { enabled: r.arm64_enabled === 1, sha256: r.arm64_sha256 },
      x86_64: { enabled: r.x86_64_enabled === 1, sha256: r.x86_64_sha256 },
    })),
    groups: groups.map((g) => ({
      name: g.name,
      licenseKey: g.license_key,
      primary: g.is_primary === 1,
      image: g.image_id !== null ? (names.get(g.image_id) ?? null) : null,
    })),
    blobs: [
      ...blobs.map((b) => ({
        sha256: b.sha256,
        size: b.size,
        name: b.name,
        ...(carriesUpdates ? { kind: 'package' as const } : {}),
      })),
      ...updateFiles.values(),
    ],
    ...(carriesUpdates ? { updates } : {}),
  };
}

/** The tar stream of a manifest (and its blobs when the manifest says so). Consume it with backpressure. */
