/**
 * The listening server: /d/ links go straight to the node:http download
 * handler (the hot path, no framework in between); everything else goes
 * through the hono app. Also runs the scheduled jobs of this node.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { createApp } from './app.js';
import { findBlob } from './repos/blobs.js';
import { createDownloadObserver } from './http/download-observer.js';
import { createDownloadHandler, DOWNLOAD_PREFIX } from './http/downloads.js';
import { createRateLimiter } from './http/rate-limiter.js';
import { every, systemClock, type Clock } from './jobs/scheduler.js';
import { queueDueChecks } from './jobs/verify-schedule.js';
import { systemActor } from './services/audit.js';
import { collectGarbage } from './services/gc.js';
import { syncFrom } from './bundles/sync.js';
import type { Runtime } from './runtime.js';

export interface ServerHandle {
  readonly server: http.Server;
  /** Base URL the server is reachable at from this machine (http://127.0.0.1:PORT for 0.0.0.0). */
  readonly url: string;
  /** Stops accepting, lets running transfers finish for up to timeoutMs, then cuts the rest; stops jobs. */
  close(timeoutMs?: number): Promise<void>;
}

/** How often the verify scheduler looks for due blobs. */
const VERIFY_TICK_MS = 60_000;

export async function startServer(runtime: Runtime, options: { clock?: Clock } = {}): Promise<ServerHandle> {
  const { config, log, db, store, metrics, checker } = runtime;
  const clock = options.clock ?? systemClock;
  const app = createApp({ config, db, store, log, metrics, checker, ingestDeps: runtime.ingestDeps, transfers: runtime.transfers });
  const honoListener = getRequestListener(app.fetch);
  const observer = createDownloadObserver({ db, log, metrics, activity: runtime.activity });
  const handleDownload = createDownloadHandler({
    findBlob: async (sha256) => {
      await observer.labelsReady();
      return findBlob(db, sha256);
    },
    store,
    limiter: createRateLimiter(config.maxBytesPerSec),
    observe: observer.observe,
    onError: (err) => log.error({ err }, 'download failed'),
  });

  const server = http.createServer((req, res) => {
    if (req.url?.startsWith(DOWNLOAD_PREFIX)) handleDownload(req, res);
    else void honoListener(req, res);
  });
  // Headers must arrive promptly (slowloris); bodies (uploads of many GB) may take as long as they need.
  server.headersTimeout = 30_000;
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;

  const jobs = [
    config.verifyIntervalMs > 0
      ? every(clock, Math.min(VERIFY_TICK_MS, config.verifyIntervalMs), async () => {
          await queueDueChecks(db, checker, clock.now(), config.verifyIntervalMs);
        }, (err) => log.error({ err }, 'verify scheduler failed'))
      : null,
    config.gcIntervalMs > 0
      ? every(clock, config.gcIntervalMs, async () => {
          const report = await collectGarbage({ db, store }, systemActor, { dryRun: false, graceMs: config.gcGraceMs, now: clock.now() });
          if (report.removed.length > 0) log.info({ removed: report.removed.length, freedBytes: report.freedBytes }, 'scheduled gc');
        }, (err) => log.error({ err }, 'scheduled gc failed'))
      : null,
    config.syncFrom && config.syncIntervalMs > 0
      ? every(clock, config.syncIntervalMs, async () => {
          const report = await syncFrom(runtime.ingestDeps, { from: config.syncFrom, token: config.syncToken, actor: systemActor });
          log.info({ from: report.from, fetched: report.fetched.length, images: report.import.images, groups: report.import.groups }, 'sync finished');
        }, (err) => log.error({ err, from: config.syncFrom }, 'scheduled sync failed'))
      : null,
  ];

  return {
    server,
    url,
    async close(timeoutMs = config.shutdownTimeoutMs) {
      await Promise.all(jobs.map((j) => (j ? j.stop() : Promise.resolve())));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
    },
  };
}
