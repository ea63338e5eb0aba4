/** What download metrics and the download log call a package: the golden image and architecture that use it. */
import { imagesUsing } from '../db/repos/images.js';
import { listUpdateRows } from '../db/repos/pd-updates.js';
import type { ServiceDeps } from './deps.js';

export interface DownloadLabels {
  image: string;
  arch: string;
  imageId: number | null;
}

/** Digest → the image (first by name, when several use it) and architecture it serves. */
export async function downloadLabels(deps: Pick<ServiceDeps, 'db'>): Promise<Map<string, DownloadLabels>> {
  const labels = new Map<string, DownloadLabels>();
  for (const row of await imagesUsing(deps.db, null, { byName: true })) {
    if (row.arm64_sha256 && !labels.has(row.arm64_sha256))
      labels.set(row.arm64_sha256, { image: row.name, arch: 'arm64', imageId: row.id });
    if (row.x86_64_sha256 && !labels.has(row.x86_64_sha256))
      labels.set(row.x86_64_sha256, { image: row.name, arch: 'x86_64', imageId: row.id });
  }
  // Parallels Desktop update files: one universal .dmg per version.
  for (const row of await listUpdateRows(deps.db))
    if (row.sha256 && !labels.has(row.sha256))
      labels.set(row.sha256, { image: `Parallels Desktop ${row.version}`, arch: 'universal', imageId: null });
  return labels;
}
