/**
 * The download path's view of the blobs table: servable rows are cached for
 * a second, so a burst of small range requests does not query the database
 * each time. Only 'ok' rows are cached (a repaired blob is servable at
 * once); a blob marked corrupt in another process stops being served within
 * the TTL, and in this process at once through invalidate().
 */
import type { Sha256 } from '../../storage/digest.js';
import type { BlobRow } from '../db/schema.js';

export type BlobMeta = Pick<BlobRow, 'size' | 'created_at' | 'state' | 'kind'>;

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
  // One query per digest at a time: a burst of requests that all miss (a rollout morning, a cold cache) waits for
  // the same answer instead of queueing hundreds of identical queries on the database's connections.
  const loading = new Map<string, Promise<BlobMeta | undefined>>();
  let generation = 0;
  const loadShared = (sha256: Sha256): Promise<BlobMeta | undefined> => {
    const startedIn = generation;
    const pending = load(sha256)
      .then((meta) => {
        // An answer read before an invalidation may be the state that was just changed: use it, never cache it.
        if (startedIn !== generation) return meta;
        if (meta?.state === 'ok') {
          if (cache.size >= maxEntries) cache.clear();
          cache.set(sha256, {
            meta: { size: meta.size, created_at: meta.created_at, state: meta.state, kind: meta.kind },
            at: performance.now(),
          });
        } else {
          cache.delete(sha256);
        }
        return meta;
      })
      .finally(() => {
        if (loading.get(sha256) === pending) loading.delete(sha256);
      });
    loading.set(sha256, pending);
    return pending;
  };
  return {
    async find(sha256) {
      const hit = cache.get(sha256);
      if (hit && performance.now() - hit.at < ttlMs) return hit.meta;
      return loading.get(sha256) ?? loadShared(sha256);
    },
    invalidate(sha256) {
      generation++;
      if (sha256 === undefined) {
        cache.clear();
        loading.clear();
      } else {
        cache.delete(sha256);
        loading.delete(sha256);
      }
    },
  };
}
