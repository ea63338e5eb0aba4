/**
 * The listening server: /d/ links go straight to the node:http download
 * handler (the hot path, no framework in between); everything else goes
 * through the hono app. Also runs the scheduled jobs of this node.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { createSecureContext } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { createApp } from './app.js';
import { findBlob } from './db/repos/blobs.js';
import { createDownloadObserver } from './http/download-observer.js';
import { createBlobLookup } from './http/blob-lookup.js';
import { createOpenBlobCache } from './http/open-blobs.js';
import { createUploadServer } from './http/uploads.js';
import { resolvePublicAddress } from './services/settings.js';
import { createDownloadHandler, DOWNLOAD_PREFIX } from './http/downloads.js';
import { createDownloadRegistry } from './http/download-registry.js';
import { clientAddressOfRequest, trustedProxies } from './http/client-address.js';
import type { Sha256 } from '../storage/digest.js';
import { createRateLimiter } from './http/rate-limiter.js';
import { every } from './jobs/scheduler.js';
import type { Clock } from './services/deps.js';
import { queueDueChecks } from './jobs/verify-schedule.js';
import { systemActor } from './services/audit.js';
import { collectGarbage } from './services/gc.js';
import { pruneDownloadLog } from './services/download-log.js';
import { syncFrom } from './bundles/sync.js';
import { AppError } from './errors.js';
import type { Runtime } from './runtime.js';

export interface ServerHandle {
  readonly server: http.Server;
  /** Base URL the server is reachable at from this machine (http(s)://127.0.0.1:PORT for 0.0.0.0). */
  readonly url: string;
  /** The plain-HTTP listener beside TLS, if configured. */
  readonly plainUrl: string | null;
  /** Stops accepting, lets running transfers finish for up to timeoutMs, then cuts the rest; stops jobs. */
  close(timeoutMs?: number): Promise<void>;
}

/** How often the verify scheduler looks for due blobs. */
const VERIFY_TICK_MS = 60_000;
/** How often unfinished uploads past their expiry are removed. */
const UPLOAD_CLEANUP_MS = 6 * 60 * 60 * 1000;
/** How often download log rows past MIRROR_DOWNLOAD_LOG_RETENTION are removed. */
const DOWNLOAD_LOG_PRUNE_MS = 60 * 60 * 1000;

export async function startServer(runtime: Runtime, options: { clock?: Clock } = {}): Promise<ServerHandle> {
  const { config, log, db, store, metrics, checker } = runtime;
  const clock = options.clock ?? runtime.clock;
  const uploads = createUploadServer({ ingestDeps: runtime.ingestDeps, store, log, baseUrl: async () => (await resolvePublicAddress({ db, config })).url });
  const app = createApp({ config, db, store, log, clock, metrics, checker, ingestDeps: runtime.ingestDeps, transfers: runtime.transfers, uploads, activity: runtime.activity });
  const dropExpiredUploads = async (): Promise<void> => {
    const dropped = await uploads.cleanUpExpiredUploads();
    if (dropped > 0) log.info({ dropped }, 'removed unfinished uploads past their expiry');
  };
  await dropExpiredUploads().catch((err: unknown) => log.warn({ err }, 'could not clean expired uploads'));
  const honoListener = getRequestListener(app.fetch);
  // Behind a trusted reverse proxy the caps and the download log see each Mac, not the proxy.
  const trusted = trustedProxies(config.trustProxy);
  const clientOf = (req: http.IncomingMessage): string => clientAddressOfRequest(req, trusted);
  const observer = createDownloadObserver({ db, log, clock, metrics, activity: runtime.activity, clientOf });
  const lookup = createBlobLookup((sha256) => findBlob(db, sha256));
  const openBlobs = createOpenBlobCache(store);
  const downloads = createDownloadRegistry(config, (used) => metrics.downloadSlotsUsed.set(used));
  const refusalLog = throttledRefusalLog(log);
  metrics.downloadSlotsMax.set(config.maxDownloads);
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
  const handleDownload = createDownloadHandler({
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
      void checker.check(sha256).catch((err: unknown) => log.error({ err, sha256 }, 'check after a refused download failed'));
    },
    limiter: createRateLimiter(config.maxBytesPerSec),
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
    onError: (err) => log.error({ err }, 'download failed'),
  });

  const listener: http.RequestListener = (req, res) => {
    if (req.url?.startsWith(DOWNLOAD_PREFIX)) handleDownload(req, res);
    else void honoListener(req, res);
  };
  const tls = config.tlsCert ? await readTlsFiles(config.tlsCert, config.tlsKey) : null;
  const server = tls ? https.createServer(tls, listener) : http.createServer(listener);
  const servers: http.Server[] = [server];
  await listen(server, config.port, config.host);
  const url = localUrl(server, tls ? 'https' : 'http');

  // Beside TLS, an optional plain-HTTP listener keeps /d/ links working for
  // clients that cannot do HTTPS; everything else is sent to HTTPS.
  let plainUrl: string | null = null;
  if (tls && config.httpPort > 0) {
    const httpsPort = (server.address() as AddressInfo).port;
    const plain = http.createServer((req, res) => {
      if (req.url?.startsWith(DOWNLOAD_PREFIX) || req.url === '/healthz') return listener(req, res);
      const host = (req.headers.host ?? 'localhost').replace(/:\d+$/, '');
      const target = config.publicUrl.startsWith('https:') ? `${config.publicUrl}${req.url ?? '/'}` : `https://${host}:${httpsPort}${req.url ?? '/'}`;
      // no-store: the target comes from the request's Host, which a shared cache must not keep.
      res.writeHead(308, { Location: target, 'Content-Length': 0, 'Cache-Control': 'no-store' });
      res.end();
    });
    servers.push(plain);
    await listen(plain, config.httpPort, config.host);
    plainUrl = localUrl(plain, 'http');
  }

  const jobs = [
    config.verifyIntervalMs > 0
      ? every(clock, Math.min(VERIFY_TICK_MS, config.verifyIntervalMs), async () => {
          await queueDueChecks({ db, clock }, checker, config.verifyIntervalMs);
        }, (err) => log.error({ err }, 'verify scheduler failed'))
      : null,
    config.gcIntervalMs > 0
      ? every(clock, config.gcIntervalMs, async () => {
          const report = await collectGarbage({ db, store, clock }, systemActor, { dryRun: false, graceMs: config.gcGraceMs });
          if (report.removed.length > 0) log.info({ removed: report.removed.length, freedBytes: report.freedBytes }, 'scheduled gc');
        }, (err) => log.error({ err }, 'scheduled gc failed'))
      : null,
    every(clock, UPLOAD_CLEANUP_MS, dropExpiredUploads, (err) => log.warn({ err }, 'could not clean expired uploads')),
    config.downloadLogRetentionMs > 0
      ? every(clock, DOWNLOAD_LOG_PRUNE_MS, async () => {
          const removed = await pruneDownloadLog({ db, clock }, config.downloadLogRetentionMs);
          if (removed > 0) log.info({ removed }, 'pruned download log rows past their retention');
        }, (err) => log.warn({ err }, 'could not prune the download log'))
      : null,
    config.syncFrom && config.syncIntervalMs > 0
      ? every(clock, config.syncIntervalMs, async (signal) => {
          const report = await syncFrom(runtime.ingestDeps, { from: config.syncFrom, token: config.syncToken, actor: systemActor, signal });
          log.info({ from: report.from, fetched: report.fetched.length, images: report.import.images, groups: report.import.groups }, 'sync finished');
        }, (err) => log.error({ err, from: config.syncFrom }, 'scheduled sync failed'))
      : null,
  ];

  return {
    server,
    url,
    plainUrl,
    async close(timeoutMs = config.shutdownTimeoutMs) {
      checker.onResult = null;
      // Stop accepting and stop the jobs at once; running transfers get up to timeoutMs, then are cut.
      await Promise.all([
        ...jobs.map((j) => (j ? j.stop() : Promise.resolve())),
        ...servers.map(async (s) => {
          const closed = new Promise<void>((resolve) => s.close(() => resolve()));
          s.closeIdleConnections();
          const timer = setTimeout(() => s.closeAllConnections(), timeoutMs);
          timer.unref();
          await closed;
          clearTimeout(timer);
        }),
      ]);
      await openBlobs.close();
    },
  };
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
      log.warn({ scope: refusal.scope, limit: refusal.limit, refused: since }, 'downloads refused: too many downloads (MIRROR_MAX_DOWNLOADS, MIRROR_MAX_DOWNLOADS_PER_CLIENT)');
      since = 0;
      lastAt = now;
    },
  };
}

/** Headers must arrive promptly (slowloris); bodies (uploads of many GB) may take as long as they need. */
function configureTimeouts(server: http.Server): void {
  server.headersTimeout = 30_000;
  server.requestTimeout = 0;
  // ...but a connection that moves no bytes for two minutes (a stalled body or reader) is dropped.
  server.timeout = 120_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
}

async function listen(server: http.Server, port: number, host: string): Promise<void> {
  configureTimeouts(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function localUrl(server: http.Server, scheme: 'http' | 'https'): string {
  const address = server.address() as AddressInfo;
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

async function readTlsFiles(certFile: string, keyFile: string): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new AppError('STARTUP_FAILED', `cannot read the TLS ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  };
  const tls = { cert: await read(certFile, 'certificate'), key: await read(keyFile, 'key') };
  try {
    createSecureContext(tls);
  } catch (err) {
    throw new AppError('STARTUP_FAILED', `the TLS certificate and key are not usable: ${(err as Error).message}`);
  }
  return tls;
}
