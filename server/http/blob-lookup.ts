/**
 * The download path's view of the blobs table: servable rows are cached for
 * a second, so a burst of small range requests does not query the database
 * each time. Only 'ok' rows are cached (a repaired blob is servable at
 * once); a blob marked corrupt in another process stops being served within
 * the TTL, and in this process at once through invalidate().
 */
import type { Sha256 } from '../../storage/digest.js';
import type { BlobRow } from '../db/schema.js';

export type BlobMeta = Pick<BlobRow, 'size' | 'created_at' | 'state'>;

export interface BlobLookup {
  find(sha256: Sha256): Promise<BlobMeta | undefined>;
  invalidate(sha256?: string): void;
}

export function createBlobLookup(
  load: (sha256: Sha256) => Promise<BlobMeta | undefined>,
  ttlMs = 1000,
  maxEntries = 4096,
): BlobLookup {
  const cache = new Map<string, { meta: BlobMeta; at: number }>();
  return {
    async find(sha256) {
      const now = performance.now();
      const hit = cache.get(sha256);
      if (hit && now - hit.at < ttlMs) return hit.meta;
      const meta = await load(sha256);
      if (meta?.state === 'ok') {
        if (cache.size >= maxEntries) cache.clear();
        cache.set(sha256, { meta: { size: meta.size, created_at: meta.created_at, state: meta.state }, at: now });
      } else {
        cache.delete(sha256);
      }
      return meta;
    },
    invalidate(sha256) {
      if (sha256 === undefined) cache.clear();
      else cache.delete(sha256);
    },
  };
}
