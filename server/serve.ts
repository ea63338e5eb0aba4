/**
 * The listening server: /d/ links go straight to the node:http download
 * handler (the hot path, no framework in between); everything else goes
 * through the hono app. Also runs the scheduled jobs while this process leads. Wiring
 * only: the pieces live in http/download-wiring.ts, http/listeners.ts and
 * jobs/node-jobs.ts.
 */
import cluster from 'node:cluster';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { createApp } from './app.js';
import { clientAddressOfRequest, trustedProxies } from './http/client-address.js';
import { DOWNLOAD_PREFIX } from './http/downloads.js';
import { createDownloadRoute } from './http/download-wiring.js';
import { closeServer, createPlainServer, listen, localUrl, readTlsFiles } from './http/listeners.js';
import { createUploadServer } from './http/uploads.js';
import { startNodeJobs } from './jobs/node-jobs.js';
import { createHeartbeats } from './jobs/replica-heartbeat.js';
import type { Runtime } from './runtime.js';
import { resolvePublicAddress } from './services/settings.js';

export interface ServerHandle {
  readonly server: http.Server;
  /** Base URL the server is reachable at from this machine (http(s)://127.0.0.1:PORT for 0.0.0.0). */
  readonly url: string;
  /** The plain-HTTP listener beside TLS, if configured. */
  readonly plainUrl: string | null;
  /** Stops accepting, lets running transfers finish for up to timeoutMs, then cuts the rest; stops jobs. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startServer(runtime: Runtime): Promise<ServerHandle> {
  const { config, log, db, store, clock } = runtime;
  const uploads = await createUploadServer({
    ingestDeps: runtime.ingestDeps,
    store,
    log,
    baseUrl: async () => (await resolvePublicAddress({ db, config })).url,
  });
  // The runtime is the app's deps; only the tus server is this server's own.
  const app = createApp({ ...runtime, uploads });
  const dropExpiredUploads = async (): Promise<void> => {
    const dropped = await uploads.cleanUpExpiredUploads();
    if (dropped > 0) log.info({ dropped }, 'removed unfinished uploads past their expiry');
  };
  const honoListener = getRequestListener(app.fetch);
  // Behind a trusted reverse proxy the caps and the download log see each Mac, not the proxy.
  const trusted = trustedProxies(config.trustProxy);
  const downloads = createDownloadRoute(runtime, clock, (req) => clientAddressOfRequest(req, trusted));

  // Under `serve --workers` every answer names its worker, so a client (a test, an operator with curl) can tell them apart.
  const workerId = cluster.isWorker ? String(cluster.worker?.id) : null;
  const listener: http.RequestListener = (req, res) => {
    if (workerId !== null) res.setHeader('X-Goldmirror-Worker', workerId);
    if (req.url?.startsWith(DOWNLOAD_PREFIX)) downloads.handle(req, res);
    else void honoListener(req, res);
  };
  const tls = config.tlsCert ? await readTlsFiles(config.tlsCert, config.tlsKey) : null;
  const server = tls ? https.createServer(tls, listener) : http.createServer(listener);
  const servers: http.Server[] = [server];
  await listen(server, config.port, config.host);
  const url = localUrl(server, tls ? 'https' : 'http');

  let plainUrl: string | null = null;
  if (tls && config.httpPort > 0) {
    const plain = createPlainServer(config, (server.address() as AddressInfo).port, listener);
    servers.push(plain);
    await listen(plain, config.httpPort, config.host);
    plainUrl = localUrl(plain, 'http');
  }

  // Only the process holding the jobs lease runs them (one leader per database).
  const listening = `${config.host}:${(server.address() as AddressInfo).port}`;
  await runtime.leadership.start(() => startNodeJobs(runtime, clock, dropExpiredUploads), listening);
  // Every process of a replica tells the primary it serves: one restarted after a crash need not wait for the lease.
  const heartbeats = createHeartbeats(runtime, clock).start();

  return {
    server,
    url,
    plainUrl,
    async close(timeoutMs = config.shutdownTimeoutMs) {
      downloads.unhook();
      // Stop accepting and stop the jobs at once; running transfers get up to timeoutMs, then are cut.
      await Promise.all([
        runtime.leadership.stop(),
        heartbeats.stop(),
        ...servers.map((s) => closeServer(s, timeoutMs)),
      ]);
      await downloads.close();
    },
  };
}
