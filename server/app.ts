/**
 * createApp(deps): everything except the download links (see http/downloads.ts),
 * as a hono app that never listens, so tests can call app.request().
 */
import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { errorBody, toAppError } from './errors.js';
import { requireAdmin } from './http/auth.js';
import { redirectTrailingSlash } from './http/trailing-slash.js';
import { createApi } from './routes/api.js';
import { createWebApp } from '../web/app.js';
import type { AppDeps } from './app-deps.js';
import { checkHealth, publicHealth } from './services/health.js';
import { HOP_HEADER, MIRROR_ID_HEADER, mirrorIdOf } from './services/routing.js';
import { securityHeaders } from './http/security-headers.js';
import { createUpdateFeedApp } from './http/update-feed.js';
import { STYLE_SOURCE } from '../web/layout.js';

export type { AppDeps } from './app-deps.js';

/**
 * Paths anyone may reach; everything else needs an admin (the auth test walks
 * every route to enforce it). `/` only redirects to the console, the sign-in
 * page must be reachable before signing in, and Macs read the update feeds
 * without credentials, like download links.
 */
export const PUBLIC_PATHS = new Set([
  'GET /healthz',
  'GET /',
  'GET /admin/login',
  'POST /admin/login',
  'GET /updates/parallels_updates.xml',
  'GET /updates/desktop/:major/parallels/parallels_updates.xml',
]);

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();

  app.use('*', securityHeaders({ styleSources: [STYLE_SOURCE] }));
  app.use('*', async function logAndTimeRequests(c, next) {
    const started = performance.now();
    const given = c.req.header('x-request-id');
    const reqId = given && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
    await next();
    // After the handler, so answers it built itself (tus) carry it too.
    c.header('X-Request-Id', reqId);
    const seconds = (performance.now() - started) / 1000;
    const status = c.res.status;
    deps.metrics.httpDuration.observe(
      { method: c.req.method, route: c.req.routePath, status: String(status) },
      seconds,
    );
    const length = c.res.headers.get('content-length');
    deps.log[status >= 500 ? 'error' : 'info'](
      {
        reqId,
        method: c.req.method,
        path: c.req.path,
        status,
        bytes: length === null ? undefined : Number(length),
        durationMs: Math.round(seconds * 1000),
      },
      'request',
    );
  });

  app.use('*', redirectTrailingSlash());

  const mirrorId = mirrorIdOf(deps);
  app.get('/healthz', async (c) => {
    // Another goldmirror's probe learns whose health this is: a replica URL leading back to the prober is caught.
    if (c.req.header(HOP_HEADER) !== undefined) {
      // Without its database the report below says so; the id is then left out rather than failing the answer.
      const id = await mirrorId().catch(() => null);
      if (id !== null) c.header(MIRROR_ID_HEADER, id);
    }
    // Status and a reason code only; the details are at GET /api/v1/health (read scope).
    const report = await checkHealth({ ...deps, minFreeBytes: deps.config.minFreeBytes });
    return c.json(publicHealth(report), report.ok ? 200 : 503);
  });

  app.get('/metrics', requireAdmin(deps, { publicUrl: deps.config.publicUrl }), async (c) => {
    c.header('Content-Type', deps.metrics.registry.contentType);
    return c.body(await deps.metrics.scrape());
  });

  app.route('/updates', createUpdateFeedApp(deps));
  app.route('/api/v1', createApi(deps));
  app.route('/admin', createWebApp(deps));
  app.get('/', (c) => c.redirect('/admin', 302));

  app.notFound((c) =>
    c.json({ error: { code: 'NOT_FOUND', message: `no route for ${c.req.method} ${c.req.path}` } }, 404),
  );
  app.onError((err, c) => {
    const appError = toAppError(err);
    if (appError.code === 'INTERNAL') deps.log.error({ err }, 'unhandled error');
    else if (appError.code === 'DATABASE_UNAVAILABLE' || appError.code === 'DATABASE_BUSY')
      deps.log.warn({ err }, appError.message);
    const retryAfter = appError.details.retryAfterSeconds;
    if (typeof retryAfter === 'number') c.header('Retry-After', String(retryAfter));
    return c.json(errorBody(appError), appError.status as 500);
  });
  return app;
}
