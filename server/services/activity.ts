/**
 * What downloads and ingests are doing, shared through the database:
 * - heartbeats per blob while a transfer runs (GC's "never while in use" works across nodes);
 * - finished-download counters per blob, batched and added (not overwritten) so nodes can share them;
 * - the download log (one row per body served), batched, and this node's downloads in progress.
 * Writes are coalesced so the download hot path never waits for the database.
 */
import type { Db } from '../db/open.js';
import { activeSince, saveHeartbeat } from '../db/repos/blob-activity.js';
import { insertDownloadLogRows } from '../db/repos/download-log.js';
import { addDownloadStats } from '../db/repos/download-stats.js';
import type { NewDownloadLogRow } from '../db/schema.js';
import type { ServiceDeps } from './deps.js';

/** A heartbeat is rewritten at most this often per blob. */
export const HEARTBEAT_MS = 15_000;
/** GC treats a blob as in use when its heartbeat is younger than this. */
export const ACTIVITY_WINDOW_MS = 4 * HEARTBEAT_MS;
const STATS_FLUSH_MS = 5_000;
/** Log rows waiting for the next flush; more are written at once rather than waiting for the timer. */
const LOG_BATCH_ROWS = 500;
/** Rows held while the database cannot take them (a stuck disk); beyond this new rows are dropped and counted. */
const LOG_MAX_PENDING = 10_000;
/**
 * Rows logged per second at most, after a burst: a client firing thousands of
 * tiny Range requests must not fill the disk or slow the dashboard. Real fleets
 * stay far below (1000 Macs fetching 10 MB pieces over 1 Gbit/s: about 10 per second).
 */
export const LOG_ROWS_PER_SEC = 50;
export const LOG_BURST_ROWS = 2_000;

/** A download body being sent now, as the live view shows it. */
export interface LiveDownload {
  id: number;
  startedAt: number;
  sha256: string;
  imageId: number | null;
  imageName: string | null;
  arch: string | null;
  client: string;
  userAgent: string;
  /** The client's site (null outside every site), and the replica it was sent to (null: served here). */
  site?: string | null;
  servedBy?: string | null;
  status: number;
  firstByte: number | null;
  bytesPlanned: number;
  size: number;
  /** Bytes handed to the socket so far (an estimate while running; the log has the exact count). */
  bytesSent: number;
}

export type LiveDownloadStart = Omit<LiveDownload, 'id' | 'bytesSent'> & { progress: () => number };

export interface ActivityTracker {
  /** Marks a transfer of `sha256` as running; call the returned function when it ends. */
  begin(sha256: string): () => void;
  /** Counts a finished download (the file's last byte was delivered). */
  downloaded(sha256: string, bytes: number): void;
  /**
   * Shows a download as in progress until `finish`, which logs it (batched):
   * `complete` when every planned byte was sent, `coversEnd` when that makes it a finished download.
   */
  downloadStarted(start: LiveDownloadStart): {
    finish(outcome: { bytesSent: number; complete: boolean; coversEnd: boolean }): void;
  };
  /** This node's downloads in progress, oldest first. */
  liveDownloads(): LiveDownload[];
  /** Download bodies this process did not log because more than LOG_ROWS_PER_SEC arrived (or the database was stuck). */
  unloggedDownloads(): number;
  /** Writes everything pending now (shutdown, tests, and before the download log is read). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function createActivityTracker(deps: Pick<ServiceDeps, 'db' | 'log' | 'clock'>): ActivityTracker {
  const { db, log, clock } = deps;
  const now = (): number => clock.now();
  const active = new Map<string, number>();
  const lastBeat = new Map<string, number>();
  const pendingStats = new Map<string, { downloads: number; bytes: number; last: number }>();
  const live = new Map<number, LiveDownloadStart>();
  let nextLiveId = 1;
  let pendingLog: NewDownloadLogRow[] = [];
  let droppedLog = 0;
  let unlogged = 0;
  let logTokens = LOG_BURST_ROWS;
  let logTokensAt = now();
  /** Rows handed to the write chain and not yet written: with pendingLog, what a stuck database makes us hold. */
  let unwrittenLog = 0;
  let chain: Promise<void> = Promise.resolve();

  const enqueue = (work: () => Promise<void>): void => {
    chain = chain.then(work).catch((err: unknown) => log.warn({ err }, 'could not record transfer activity'));
  };

  const beat = (sha256: string): void => {
    const t = now();
    if (t - (lastBeat.get(sha256) ?? 0) < HEARTBEAT_MS) return;
    lastBeat.set(sha256, t);
    enqueue(async () => {
      await saveHeartbeat(db, sha256, t);
    });
  };

  const flushStats = (): void => {
    if (pendingStats.size === 0) return;
    const batch = [...pendingStats];
    pendingStats.clear();
    enqueue(async () => {
      for (const [sha256, s] of batch)
        await addDownloadStats(db, sha256, { downloads: s.downloads, bytes: s.bytes, lastAt: s.last });
    });
  };

  const flushLog = (): void => {
    if (droppedLog > 0) {
      log.warn(
        { dropped: droppedLog },
        'some downloads were not logged (too many per second, or the database did not keep up)',
      );
      droppedLog = 0;
    }
    if (pendingLog.length === 0) return;
    const batch = pendingLog;
    pendingLog = [];
    unwrittenLog += batch.length;
    enqueue(async () => {
      try {
        await insertDownloadLogRows(db, batch);
      } finally {
        unwrittenLog -= batch.length;
      }
    });
  };

  const timer = setInterval(
    () => {
      for (const sha256 of active.keys()) beat(sha256);
      flushStats();
      flushLog();
    },
    Math.min(HEARTBEAT_MS, STATS_FLUSH_MS),
  );
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
    downloadStarted(start) {
      const id = nextLiveId++;
      live.set(id, start);
      return {
        finish({ bytesSent, complete, coversEnd }) {
          if (!live.delete(id)) return;
          const finishedAt = now();
          // The rate cap first, so a flood of tiny ranges costs no more than this.
          logTokens = Math.min(LOG_BURST_ROWS, logTokens + ((finishedAt - logTokensAt) * LOG_ROWS_PER_SEC) / 1000);
          logTokensAt = finishedAt;
          if (logTokens < 1 || (pendingLog.length > 0 && pendingLog.length + unwrittenLog >= LOG_MAX_PENDING)) {
            unlogged += 1;
            droppedLog += 1;
            return;
          }
          logTokens -= 1;
          const result = !complete
            ? 'aborted'
            : start.status === 200 || (start.firstByte === 0 && start.bytesPlanned === start.size)
              ? 'complete'
              : 'resumed';
          pendingLog.push({
            started_at: start.startedAt,
            finished_at: finishedAt,
            duration_ms: Math.max(0, finishedAt - start.startedAt),
            sha256: start.sha256,
            image_id: start.imageId,
            image_name: start.imageName,
            arch: start.arch,
            client: start.client,
            user_agent: start.userAgent,
            site: start.site ?? null,
            served_by: start.servedBy ?? null,
            status: start.status,
            first_byte: start.firstByte,
            bytes_planned: start.bytesPlanned,
            bytes_sent: bytesSent,
            size: start.size,
            result,
            covers_end: complete && coversEnd ? 1 : 0,
          });
          if (pendingLog.length >= LOG_BATCH_ROWS) flushLog();
        },
      };
    },
    unloggedDownloads() {
      return unlogged;
    },
    liveDownloads() {
      return [...live].map(([id, { progress, ...rest }]) => ({
        ...rest,
        id,
        bytesSent: Math.min(rest.bytesPlanned, Math.max(0, progress())),
      }));
    },
    async flush() {
      flushStats();
      flushLog();
      await chain;
    },
    async close() {
      clearInterval(timer);
      flushStats();
      flushLog();
      await chain;
    },
  };
}

/** Blobs with a transfer heartbeat younger than the activity window. */
export function activeBlobs(db: Db, nowMs: number): Promise<Set<string>> {
  return activeSince(db, nowMs - ACTIVITY_WINDOW_MS);
}
