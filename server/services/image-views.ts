/** Golden images as the API and pages show them: packages, links, download counts, groups and any pending portal change. */
import { findBlobsByDigests } from '../db/repos/blobs.js';
import { downloadStatsOf } from '../db/repos/download-stats.js';
import { listGroupsOfImages } from '../db/repos/groups.js';
import type { BlobArch, BlobState, ImageRow } from '../db/schema.js';
import { downloadUrl } from '../links.js';
import { ARCH_LABELS, ARCHES, type Arch } from './arches.js';
import { archMismatchWarnings } from './blobs.js';
import type { DbDeps } from './deps.js';
import { loadPortalChanges, type PortalChange } from './portal-changes.js';

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

export async function toImageViews(deps: DbDeps, rows: ImageRow[], baseUrl: string | null): Promise<ImageView[]> {
  if (rows.length === 0) return [];
  const { db } = deps;
  const changes = await loadPortalChanges(db, rows, baseUrl, deps.clock.now());
  const digests = [
    ...new Set(rows.flatMap((r) => [r.arm64_sha256, r.x86_64_sha256]).filter((d): d is string => d !== null)),
  ];
  const blobBySha = new Map((await findBlobsByDigests(db, digests)).map((b) => [b.sha256, b]));
  const statsBySha = new Map((await downloadStatsOf(db, digests)).map((st) => [st.sha256, st]));
  const groups = await listGroupsOfImages(
    db,
    rows.map((r) => r.id),
  );
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
  return rows
    .map((row) => {
      const arm64 = arch(row, 'arm64');
      const x86_64 = arch(row, 'x86_64');
      const last =
        [arm64.lastDownloadAt, x86_64.lastDownloadAt]
          .filter((v): v is string => v !== null)
          .sort()
          .at(-1) ?? null;
      return { row, arm64, x86_64, downloads: arm64.downloads + x86_64.downloads, lastDownloadAt: last };
    })
    .map(({ row, arm64, x86_64, downloads, lastDownloadAt }) => ({
      id: row.id,
      name: row.name,
      description: row.description,
      arm64,
      x86_64,
      downloads,
      lastDownloadAt,
      groups: groups
        .filter((g) => g.image_id === row.id)
        .map((g) => ({ id: g.id, name: g.name, primary: g.is_primary === 1 })),
      warnings: archMismatchWarnings(
        ARCHES.map((a) => {
          const sha = a === 'arm64' ? row.arm64_sha256 : row.x86_64_sha256;
          return {
            arch: a,
            label: ARCH_LABELS[a],
            packageName: (sha && blobBySha.get(sha)?.name) || null,
            packageArch: a === 'arm64' ? arm64.packageArch : x86_64.packageArch,
          };
        }),
      ),
      portalChange: changes.get(row.id) ?? null,
      createdAt: new Date(row.created_at).toISOString(),
      updatedAt: new Date(row.updated_at).toISOString(),
    }));
}
