/**
 * Builds the download handler of a serving node from its runtime: the row
 * cache, the open-file cache, the caps, the observer (metrics, log) and the
 * link between the integrity checker's verdicts and downloads in progress.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Sha256 } from '../../storage/digest.js';
import type { Config } from '../../config/load.js';
import { findBlobRecord } from '../services/blobs.js';
import type { Runtime } from '../runtime.js';
import type { Clock } from '../services/deps.js';
import { createBlobLookup } from './blob-lookup.js';
import { createSiteRouting } from './download-sites.js';
import { createDownloadObserver } from './download-observer.js';
import { createDownloadRegistry } from './download-registry.js';
import { createDownloadHandler } from './downloads.js';
import { createOpenBlobCache } from './open-blobs.js';
import { createRateLimiter } from './rate-limiter.js';

export interface DownloadRoute {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Stops acting on the checker's verdicts (shutdown begins). */
  unhook(): void;
  /** Closes the cached files; call after the listeners closed. */
  close(): Promise<void>;
}

export function createDownloadRoute(
  runtime: Runtime,
  clock: Clock,
  clientOf: (req: IncomingMessage) => string,
): DownloadRoute {
  const { config, log, db, store, metrics, checker } = runtime;
  const sites = createSiteRouting({ db, clock, config }, clientOf, (err) =>
    log.warn({ err }, 'could not read sites and replicas for download routing'),
  );
  const observer = createDownloadObserver({
    db,
    log,
    clock,
    metrics,
    activity: runtime.activity,
    clientOf,
    siteOf: (client) => sites.siteOf(client),
  });
  const lookup = createBlobLookup((sha256) => findBlobRecord({ db }, sha256));
  const openBlobs = createOpenBlobCache(store);
  const caps = shareOfNode(config);
  const downloads = createDownloadRegistry(caps, (used) => metrics.downloadSlotsUsed.set(used));
  const refusalLog = throttledRefusalLog(log);
  metrics.downloadSlotsMax.set(caps.maxDownloads);
  const cutDownloads = (sha256: string, why: string): void => {
    const cut = downloads.cut(sha256);
    if (cut === 0) return;
    metrics.downloadsCut.inc(cut);
    log.error({ sha256, cut }, `cut off downloads in progress: ${why}`);
  };
  // A verdict of this node's checker reaches its links at once (others: within the lookup TTL),
  // and a bad one cuts off the downloads already streaming that blob.
  checker.onResult = (sha256) => {
    lookup.invalidate(sha256);
    lookup
      .find(sha256 as Sha256)
      .then((row) => {
        if (row?.state !== 'ok') cutDownloads(sha256, `the package is ${row?.state ?? 'gone'}`);
      })
      .catch((err: unknown) => log.error({ err, sha256 }, 'could not read a package state after its check'));
  };
  const handle = createDownloadHandler({
    findBlob: async (sha256) => {
      await observer.labelsReady();
      return lookup.find(sha256);
    },
    openBlob: (sha256) => openBlobs.acquire(sha256),
    forget: (sha256) => lookup.invalidate(sha256),
    // A registered package whose file is gone or the wrong size: check it now, so its
    // state (and the dashboard) says so, instead of waiting for its next scheduled check.
    onUnavailable: (sha256, reason) => {
      log.error({ sha256, reason }, 'download refused: the package file is not servable; checking it now');
      void checker
        .check(sha256)
        .catch((err: unknown) => log.error({ err, sha256 }, 'check after a refused download failed'));
    },
    limiter: createRateLimiter(caps.maxBytesPerSec),
    registry: downloads,
    clientOf,
    onRefused: (refusal) => {
      metrics.downloadsRefused.inc({ scope: refusal.scope });
      refusalLog.note(refusal);
    },
    onWithdrawn: (sha256) => {
      metrics.downloadsCut.inc();
      log.error({ sha256 }, 'cut off a download in progress: the package is no longer servable');
    },
    observe: observer.observe,
    presign: presignerOf(runtime),
    observeRedirect: observer.redirected,
    routeToReplica: (req, res, sha256) => sites.route(req, res, sha256),
    onError: (err) => log.error({ err }, 'download failed'),
  });
  return {
    handle,
    unhook() {
      checker.onResult = null;
    },
    close: () => openBlobs.close(),
  };
}

/** Redirect mode on S3: presigned URLs valid for MIRROR_S3_PRESIGN_EXPIRY; otherwise none (the bytes are streamed). */
function presignerOf(runtime: Runtime): ((sha256: Sha256, contentDisposition: string) => Promise<string>) | undefined {
  const { config, store } = runtime;
  const presign = store.presignDownload?.bind(store);
  if (config.storage !== 's3' || config.s3Downloads !== 'redirect' || !presign) return undefined;
  const expiresInSeconds = Math.max(1, Math.round(config.s3PresignExpiryMs / 1000));
  return (sha256, contentDisposition) => presign(sha256, { contentDisposition, expiresInSeconds });
}

/** A refusal flood (a rollout morning, a misbehaving client) logs one line per 10 s with the count, not one per request. */
function throttledRefusalLog(log: Runtime['log']): { note: (refusal: { scope: string; limit: number }) => void } {
  let since = 0;
  let lastAt = -Infinity;
  return {
    note(refusal) {
      since += 1;
      const now = performance.now();
      if (now - lastAt < 10_000) return;
      log.warn(
        { scope: refusal.scope, limit: refusal.limit, refused: since },
        'downloads refused: too many downloads (MIRROR_MAX_DOWNLOADS, MIRROR_MAX_DOWNLOADS_PER_CLIENT)',
      );
      since = 0;
      lastAt = now;
    },
  };
}

/**
 * The total download cap and the bandwidth cap are the node's (one box): its workers split them evenly, rounding up,
 * and /metrics (summed over workers) shows the node's total. The per-client cap is each worker's: a Mac's
 * connections are spread over the workers, so a split cap would refuse it early on one worker while another is
 * idle. A cap of 0 stays "no cap".
 */
export function shareOfNode(
  config: Pick<Config, 'maxDownloads' | 'maxDownloadsPerClient' | 'maxBytesPerSec' | 'workers'>,
): { maxDownloads: number; maxDownloadsPerClient: number; maxBytesPerSec: number } {
  const share = (cap: number): number => (cap === 0 ? 0 : Math.ceil(cap / Math.max(1, config.workers)));
  return {
    maxDownloads: share(config.maxDownloads),
    maxDownloadsPerClient: config.maxDownloadsPerClient,
    maxBytesPerSec: share(config.maxBytesPerSec),
  };
}
