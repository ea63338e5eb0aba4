/** What the dashboard's integrity panel shows: blob states and the images and groups a bad blob affects. */
import type { Db } from '../db/open.js';

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

export async function integritySummary(db: Db): Promise<IntegritySummary> {
  const counts = await db.selectFrom('blobs').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute();
  const blobs = { ok: 0, corrupt: 0, missing: 0 };
  for (const row of counts) blobs[row.state] = Number(row.n);
  const bad = await db.selectFrom('blobs').select(['sha256', 'state', 'state_detail', 'verified_at']).where('state', '!=', 'ok').execute();
  if (bad.length === 0) return { blobs, problems: [] };
  const digests = bad.map((b) => b.sha256);
  const images = await db
    .selectFrom('images')
    .select(['id', 'name', 'arm64_sha256', 'x86_64_sha256'])
    .where((eb) => eb.or([eb('arm64_sha256', 'in', digests), eb('x86_64_sha256', 'in', digests)]))
    .execute();
  const groups = images.length
    ? await db.selectFrom('groups').select(['name', 'image_id']).where('image_id', 'in', images.map((i) => i.id)).orderBy('name').execute()
    : [];
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
