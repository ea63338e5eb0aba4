/**
 * Turns download events into metrics, transfer heartbeats, download counts
 * and log lines that name the golden image and architecture. The digest →
 * (image, arch) map is cached briefly so the hot path never waits on the database.
 */
import type { Db } from '../db/open.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ActivityTracker } from '../services/activity.js';
import type { DownloadFinish, DownloadStart } from './downloads.js';

const LABEL_TTL_MS = 10_000;

interface Labels {
  image: string;
  arch: string;
}

export function createDownloadObserver(deps: {
  db: Db;
  log: Logger;
  metrics: Metrics;
  activity: ActivityTracker;
}): { observe: (start: DownloadStart) => DownloadFinish; labelsReady: () => Promise<void> } {
  const { db, log, metrics, activity } = deps;
  let labels = new Map<string, Labels>();
  let loadedAt = -Infinity;
  let loading: Promise<void> | null = null;

  const refresh = (): void => {
    if (loading || Date.now() - loadedAt < LABEL_TTL_MS) return;
    loading = db
      .selectFrom('images')
      .select(['name', 'arm64_sha256', 'x86_64_sha256'])
      .orderBy('name')
      .execute()
      .then((rows) => {
        const next = new Map<string, Labels>();
        for (const row of rows) {
          // A package used by several images is labelled with the first by name.
          if (row.arm64_sha256 && !next.has(row.arm64_sha256)) next.set(row.arm64_sha256, { image: row.name, arch: 'arm64' });
          if (row.x86_64_sha256 && !next.has(row.x86_64_sha256)) next.set(row.x86_64_sha256, { image: row.name, arch: 'x86_64' });
        }
        labels = next;
        loadedAt = Date.now();
      })
      .catch((err: unknown) => log.warn({ err }, 'could not load image names for download metrics'))
      .finally(() => {
        loading = null;
      });
  };

  const observe = function observeDownload(start: DownloadStart): DownloadFinish {
    refresh();
    const l = labels.get(start.sha256) ?? { image: '', arch: '' };
    metrics.downloadsStarted.inc(l);
    metrics.activeDownloads.inc();
    const endActivity = activity.begin(start.sha256);
    const startedAt = performance.now();
    return ({ bytes, complete }) => {
      endActivity();
      metrics.activeDownloads.dec();
      metrics.downloadBytes.inc(l, bytes);
      if (complete) metrics.downloadsCompleted.inc(l);
      else metrics.downloadsAborted.inc(l);
      if (complete && start.coversEnd) activity.downloaded(start.sha256, bytes);
      const fields = {
        sha256: start.sha256,
        image: l.image,
        arch: l.arch,
        status: start.status,
        bytes,
        durationMs: Math.round(performance.now() - startedAt),
      };
      if (!complete) log.info(fields, 'download aborted');
      else if (start.coversEnd) log.info(fields, 'download finished');
      else log.debug(fields, 'range served');
    };
  };
  return {
    observe,
    /** Resolves at once while the names are fresh; otherwise after they are reloaded (once per TTL). */
    labelsReady() {
      refresh();
      return loading ?? Promise.resolve();
    },
  };
}
