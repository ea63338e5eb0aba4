/** What a bundle export holds: the chosen images (all by default), their groups and packages, as a manifest. */
import { findBlobsByDigests } from '../db/repos/blobs.js';
import { listGroupRows } from '../db/repos/groups.js';
import { listImageRows } from '../db/repos/images.js';
import { AppError } from '../errors.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, type Manifest } from '../bundles/manifest.js';
import type { DbDeps } from './deps.js';
import { findImageRef } from './images.js';

export interface ExportOptions {
  /** Image names or ids; empty = everything. */
  images?: string[];
  includeBlobs: boolean;
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
  return {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
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
    blobs: blobs.map((b) => ({ sha256: b.sha256, size: b.size, name: b.name })),
  };
}

/** The tar stream of a manifest (and its blobs when the manifest says so). Consume it with backpressure. */
