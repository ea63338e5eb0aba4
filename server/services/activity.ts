/**
 * What downloads and ingests are doing, shared through the database:
 * - heartbeats per blob while a transfer runs (GC's "never while in use" works across nodes);
 * - finished-download counters per blob, batched and added (not overwritten) so nodes can share them.
 * Writes are coalesced so the download hot path never waits for the database.
 */
import { sql } from 'kysely';
import type { Db } from '../db/open.js';
import type { Logger } from '../log.js';

/** A heartbeat is rewritten at most this often per blob. */
export const HEARTBEAT_MS = 15_000;
/** GC treats a blob as in use when its heartbeat is younger than this. */
export const ACTIVITY_WINDOW_MS = 4 * HEARTBEAT_MS;
const STATS_FLUSH_MS = 5_000;

export interface ActivityTracker {
  /** Marks a transfer of `sha256` as running; call the returned function when it ends. */
  begin(sha256: string): () => void;
  /** Counts a finished download (the file's last byte was delivered). */
  downloaded(sha256: string, bytes: number): void;
  /** Writes everything pending now (shutdown, tests). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function createActivityTracker(db: Db, log: Logger, now: () => number = Date.now): ActivityTracker {
  const active = new Map<string, number>();
  const lastBeat = new Map<string, number>();
  const pendingStats = new Map<string, { downloads: number; bytes: number; last: number }>();
  let chain: Promise<void> = Promise.resolve();

  const enqueue = (work: () => Promise<void>): void => {
    chain = chain.then(work).catch((err: unknown) => log.warn({ err }, 'could not record transfer activity'));
  };

  const beat = (sha256: string): void => {
    const t = now();
    if (t - (lastBeat.get(sha256) ?? 0) < HEARTBEAT_MS) return;
    lastBeat.set(sha256, t);
    enqueue(async () => {
      await db
        .insertInto('blob_activity')
        .values({ sha256, last_active_at: t })
        .onConflict((oc) => oc.column('sha256').doUpdateSet({ last_active_at: t }))
        .execute();
    });
  };

  const flushStats = (): void => {
    if (pendingStats.size === 0) return;
    const batch = [...pendingStats];
    pendingStats.clear();
    enqueue(async () => {
      for (const [sha256, s] of batch) {
        await db
          .insertInto('download_stats')
          .values({ sha256, downloads: s.downloads, bytes_sent: s.bytes, last_download_at: s.last })
          .onConflict((oc) =>
            oc.column('sha256').doUpdateSet({
              downloads: sql`download_stats.downloads + ${s.downloads}`,
              bytes_sent: sql`download_stats.bytes_sent + ${s.bytes}`,
              last_download_at: s.last,
            }),
          )
          .execute();
      }
    });
  };

  const timer = setInterval(() => {
    for (const sha256 of active.keys()) beat(sha256);
    flushStats();
  }, Math.min(HEARTBEAT_MS, STATS_FLUSH_MS));
  timer.unref();

  return {
    begin(sha256) {
      active.set(sha256, (active.get(sha256) ?? 0) + 1);
      beat(sha256);
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        const left = (active.get(sha256) ?? 1) - 1;
        if (left <= 0) active.delete(sha256);
        else active.set(sha256, left);
      };
    },
    downloaded(sha256, bytes) {
      const s = pendingStats.get(sha256) ?? { downloads: 0, bytes: 0, last: 0 };
      s.downloads += 1;
      s.bytes += bytes;
      s.last = now();
      pendingStats.set(sha256, s);
    },
    async flush() {
      flushStats();
      await chain;
    },
    async close() {
      clearInterval(timer);
      flushStats();
      await chain;
    },
  };
}

/** Blobs with a transfer heartbeat younger than the activity window. */
export async function activeBlobs(db: Db, nowMs: number): Promise<Set<string>> {
  const rows = await db.selectFrom('blob_activity').select('sha256').where('last_active_at', '>', nowMs - ACTIVITY_WINDOW_MS).execute();
  return new Set(rows.map((r) => r.sha256));
}
