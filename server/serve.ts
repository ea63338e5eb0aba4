/**
 * The listening server: /d/ links go straight to the node:http download
 * handler (the hot path, no framework in between); everything else goes
 * through the hono app.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { createApp } from './app.js';
import { findBlob } from './repos/blobs.js';
import { createDownloadHandler, DOWNLOAD_PREFIX } from './http/downloads.js';
import { createRateLimiter } from './http/rate-limiter.js';
import type { Runtime } from './runtime.js';

export interface ServerHandle {
  readonly server: http.Server;
  /** Base URL the server is reachable at from this machine (http://127.0.0.1:PORT for 0.0.0.0). */
  readonly url: string;
  /** Stops accepting, lets running transfers finish for up to timeoutMs, then cuts the rest. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startServer(runtime: Runtime): Promise<ServerHandle> {
  const { config, log } = runtime;
  const app = createApp({ config, db: runtime.db, store: runtime.store, log });
  const honoListener = getRequestListener(app.fetch);
  const handleDownload = createDownloadHandler({
    findBlob: (sha256) => findBlob(runtime.db, sha256),
    store: runtime.store,
    limiter: createRateLimiter(config.maxBytesPerSec),
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

  return {
    server,
    url,
    async close(timeoutMs = config.shutdownTimeoutMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
    },
  };
}
