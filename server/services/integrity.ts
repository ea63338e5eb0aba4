/** What the dashboard's integrity panel shows: blob states and the images and groups a bad blob affects. */
import { countBlobsByState, listBlobsNotOk } from '../db/repos/blobs.js';
import { listGroupsOfImages } from '../db/repos/groups.js';
import { imagesUsing } from '../db/repos/images.js';
import type { ServiceDeps } from './deps.js';

export interface IntegritySummary {
  blobs: { ok: number; corrupt: number; missing: number };
  problems: Array<{
    sha256: string;
    state: string;
    detail: string | null;
    since: string | null;
    images: Array<{ id: number; name: string; arch: string }>;
    groups: string[];
  }>;
}

export async function integritySummary(deps: Pick<ServiceDeps, 'db'>): Promise<IntegritySummary> {
  const { db } = deps;
  const blobs = await countBlobsByState(db);
  const bad = await listBlobsNotOk(db);
  if (bad.length === 0) return { blobs, problems: [] };
  const images = await imagesUsing(
    db,
    bad.map((b) => b.sha256),
  );
  const groups = await listGroupsOfImages(
    db,
    images.map((i) => i.id),
  );
  return {
    blobs,
    problems: bad.map((b) => {
      const affected = images.flatMap((i) => [
        ...(i.arm64_sha256 === b.sha256 ? [{ id: i.id, name: i.name, arch: 'arm64' }] : []),
        ...(i.x86_64_sha256 === b.sha256 ? [{ id: i.id, name: i.name, arch: 'x86_64' }] : []),
      ]);
      const ids = new Set(affected.map((a) => a.id));
      return {
        sha256: b.sha256,
        state: b.state,
        detail: b.state_detail,
        since: b.verified_at === null ? null : new Date(b.verified_at).toISOString(),
        images: affected,
        groups: groups.filter((g) => g.image_id !== null && ids.has(g.image_id)).map((g) => g.name),
      };
    }),
  };
}
