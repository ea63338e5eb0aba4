/** Listening sockets: timeouts, TLS files, the plain-HTTP listener beside TLS, and a bounded close. */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Config } from '../../config/schema.js';
import { AppError } from '../errors.js';
import { DOWNLOAD_PREFIX } from './download-target.js';

/** Headers must arrive promptly (slowloris); bodies (uploads of many GB) may take as long as they need. */
function configureTimeouts(server: http.Server): void {
  server.headersTimeout = 30_000;
  server.requestTimeout = 0;
  // ...but a connection that moves no bytes for two minutes (a stalled body or reader) is dropped.
  server.timeout = 120_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
}

export async function listen(server: http.Server, port: number, host: string): Promise<void> {
  configureTimeouts(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Base URL the server is reachable at from this machine (127.0.0.1 for a wildcard address). */
export function localUrl(server: http.Server, scheme: 'http' | 'https'): string {
  const address = server.address() as AddressInfo;
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

/** Reads and checks the certificate and key, so a bad pair stops the start with a clear message. */
export async function readTlsFiles(certFile: string, keyFile: string): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new AppError(
        'STARTUP_FAILED',
        `cannot read the TLS ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
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

/**
 * Beside TLS, the plain-HTTP listener keeps /d/ links (and /healthz) working
 * for clients that cannot do HTTPS; everything else is sent to HTTPS.
 */
export function createPlainServer(config: Config, httpsPort: number, listener: http.RequestListener): http.Server {
  return http.createServer((req, res) => {
    if (req.url?.startsWith(DOWNLOAD_PREFIX) || req.url === '/healthz') return listener(req, res);
    const host = (req.headers.host ?? 'localhost').replace(/:\d+$/, '');
    const target = config.publicUrl.startsWith('https:')
      ? `${config.publicUrl}${req.url ?? '/'}`
      : `https://${host}:${httpsPort}${req.url ?? '/'}`;
    // no-store: the target comes from the request's Host, which a shared cache must not keep.
    res.writeHead(308, { Location: target, 'Content-Length': 0, 'Cache-Control': 'no-store' });
    res.end();
  });
}

/** Stops accepting, closes idle connections, and cuts the rest after `timeoutMs`. */
export async function closeServer(server: http.Server, timeoutMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
  timer.unref();
  await closed;
  clearTimeout(timer);
}
