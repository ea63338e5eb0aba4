/**
 * createApp(deps): everything except the download links (see http/downloads.ts),
 * as a hono app that never listens, so tests can call app.request().
 */
import { Hono } from 'hono';
import type { BlobStore } from '../storage/blob-store.js';
import type { Config } from '../config/load.js';
import { createApi } from './routes/api.js';
import type { Db } from './db/open.js';
import { errorBody, toAppError } from './errors.js';
import type { Logger } from './log.js';
import { checkHealth } from './services/health.js';

export interface AppDeps {
  config: Config;
  db: Db;
  store: BlobStore;
  log: Logger;
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();

  app.get('/healthz', async (c) => {
    const report = await checkHealth({ ...deps, minFreeBytes: deps.config.minFreeBytes });
    return c.json({ status: report.ok ? 'ok' : 'unhealthy', ...report }, report.ok ? 200 : 503);
  });

  app.route('/api/v1', createApi(deps));

  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route for ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((err, c) => {
    const appError = toAppError(err);
    if (appError.code === 'INTERNAL') deps.log.error({ err }, 'unhandled error');
    const retryAfter = appError.details.retryAfterSeconds;
    if (typeof retryAfter === 'number') c.header('Retry-After', String(retryAfter));
    return c.json(errorBody(appError), appError.status as 500);
  });
  return app;
}
