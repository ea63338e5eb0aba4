/**
 * The admin console under /admin: server-rendered pages (hono/jsx) that call
 * the same services as the JSON API, one sub-app per resource in routes/.
 * Every form works without JavaScript (post, then redirect); scripts only add
 * copy buttons, upload progress and live tables.
 *
 * Order matters: hono runs handlers in the order they were registered, so the
 * renderer and the body limit come first, then sign-in, then requireAdmin in
 * front of everything else.
 */
import { Hono } from 'hono';
import { except } from 'hono/combine';
import { toAppError } from '../server/errors.js';
import { requireAdmin } from '../server/http/auth.js';
import { resolvePublicAddress } from '../server/services/settings.js';
import type { WebDeps, WebEnv } from './env.js';
import { formLimit } from './forms.js';
import { ErrorPage } from './pages/auth.js';
import { pageRenderer } from './render.js';
import { assetRoutes } from './routes/assets.js';
import { blobRoutes } from './routes/blobs.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { downloadRoutes } from './routes/downloads.js';
import { groupRoutes } from './routes/groups.js';
import { historyRoutes } from './routes/history.js';
import { imageRoutes } from './routes/images.js';
import { accountRoutes, signInRoutes } from './routes/session.js';
import { settingsRoutes } from './routes/settings.js';
import { replicaRoutes, siteRoutes } from './routes/sites.js';
import { tokenRoutes } from './routes/tokens.js';
import { updateRoutes } from './routes/updates.js';
import { uploadRoutes } from './routes/uploads.js';

/** Forms that stream their body (and check their own _csrf field before any file part). */
const STREAMED_FORMS = new Set(['/admin/upload', '/admin/groups/import', '/admin/updates/add']);

export function createWebApp(deps: WebDeps): Hono<WebEnv> {
  const web = new Hono<WebEnv>();
  web.use('*', pageRenderer());

  // Forms are small; only the upload forms stream a large body (and never buffer it), and sign-in has its own, smaller limit.
  web.use('*', except(['/admin/upload', '/admin/updates/add', '/admin/login'], formLimit(1024 * 1024)));

  web.route('/', signInRoutes(deps));

  web.use(
    '*',
    requireAdmin(deps, {
      publicUrl: deps.config.publicUrl,
      onUnauthenticated: (c) => c.redirect(`/admin/login?next=${encodeURIComponent(c.req.path)}`, 303),
      formCsrf: async (c) => {
        const form = await c.req.parseBody();
        return typeof form._csrf === 'string' ? form._csrf : undefined;
      },
      csrfCheckedByHandler: (c) => c.req.method === 'POST' && STREAMED_FORMS.has(c.req.path),
    }),
  );

  // Every signed-in page's frame asks for a missing public address, or warns about an unreachable one.
  web.use('*', async function providePublicAddress(c, next) {
    c.set('publicAddress', await resolvePublicAddress(deps));
    await next();
  });

  web.route('/assets', assetRoutes());
  web.route('/', accountRoutes(deps));
  web.route('/tokens', tokenRoutes(deps));
  web.route('/', dashboardRoutes(deps));
  web.route('/images', imageRoutes(deps));
  web.route('/settings', settingsRoutes(deps));
  web.route('/', groupRoutes(deps));
  web.route('/sites', siteRoutes(deps));
  web.route('/replicas', replicaRoutes(deps));
  web.route('/updates', updateRoutes(deps));
  web.route('/downloads', downloadRoutes(deps));
  web.route('/history', historyRoutes(deps));
  web.route('/blobs', blobRoutes(deps));
  web.route('/', uploadRoutes(deps));

  web.onError((err, c) => {
    const e = toAppError(err);
    if (e.code === 'INTERNAL') deps.log.error({ err }, 'admin page failed');
    const message =
      e.code === 'INTERNAL' ? 'The server could not complete this request; the details are in its log.' : e.message;
    c.status(e.status as 500);
    return c.render(<ErrorPage />, {
      title: e.status === 404 ? 'Not found' : 'Something went wrong',
      error: message,
      flash: null,
    });
  });
  return web;
}
