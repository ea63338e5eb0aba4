/**
 * The JSON API under /api/v1 (prose in docs/api.md, every field in the
 * OpenAPI document at /api/v1/openapi.json): one sub-app per resource in
 * routes/api/, mounted here in the order the guards need.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { AppError } from '../errors.js';
import { requireAdmin, SESSION_COOKIE, type AuthEnv } from '../http/auth.js';
import { blobsApi } from './api/blobs.js';
import { exportApi, importApi } from './api/bundles.js';
import { gcApi } from './api/gc.js';
import { groupsCsvApi } from './api/groups-csv.js';
import { groupsApi } from './api/groups.js';
import { healthApi } from './api/health.js';
import { historyApi } from './api/history.js';
import { imagesApi } from './api/images.js';
import { referenceApi } from './api/reference.js';
import { sessionApi } from './api/session.js';
import { settingsApi } from './api/settings.js';
import { sitesApi } from './api/sites.js';
import { rejectAs, type ApiDeps } from './api/shared.js';
import { tokensApi } from './api/tokens.js';
import { transfersApi } from './api/transfers.js';
import { updatesApi } from './api/updates.js';
import { uploadsApi } from './api/uploads.js';
import { verifyApi } from './api/verify.js';

export type { ApiDeps } from './api/shared.js';

/** Routes that answer without an admin; the auth test walks every other route. */
export const PUBLIC_API_ROUTES = new Set(['POST /api/v1/session']);

const DOCUMENT = {
  openapi: '3.1.0',
  info: {
    title: 'goldmirror API',
    version: '1',
    description:
      'The JSON API of a goldmirror server. Authentication, errors and examples: docs/api.md. ' +
      'Send an API token as `Authorization: Bearer …`, or sign in (POST /session) and send the session cookie ' +
      'plus `X-CSRF-Token` on every unsafe request.',
  },
  servers: [{ url: '/api/v1' }],
  security: [{ apiToken: [] }, { session: [] }] as Array<Record<string, string[]>>,
};

export function createApi(deps: ApiDeps): OpenAPIHono<AuthEnv> {
  const api = new OpenAPIHono<AuthEnv>({ defaultHook: rejectAs('request') });
  // One set of options for every guard, so a renewed cookie always has the sign-in flags.
  const admin = requireAdmin(deps, { publicUrl: deps.config.publicUrl });

  // Bodies that stream (uploads, bundle imports, update files) come before the body limit.
  api.route('/uploads', uploadsApi(deps, admin));
  api.route('/import', importApi(deps, admin));
  api.route('/updates', updatesApi(deps, admin));
  api.use(
    '*',
    bodyLimit({
      maxSize: 1024 * 1024,
      onError: (c) => {
        // The unread rest of the body is dropped with the connection: a keep-alive
        // client would otherwise reuse a dead socket on its next request.
        c.header('Connection', 'close');
        throw new AppError('PAYLOAD_TOO_LARGE', 'request bodies of the API are limited to 1 MiB');
      },
    }),
  );
  // Signing in is the one route without an admin; the session module guards the rest of it.
  api.route('/session', sessionApi(deps, admin));
  api.use('*', admin);

  api.route('/blobs', blobsApi(deps));
  api.route('/images', imagesApi(deps));
  api.route('/settings', settingsApi(deps));
  api.route('/groups', groupsApi(deps));
  api.route('/groups.csv', groupsCsvApi(deps));
  api.route('/tokens', tokensApi(deps));
  api.route('/health', healthApi(deps));
  api.route('/verify', verifyApi(deps));
  api.route('/gc', gcApi(deps));
  api.route('/export', exportApi(deps));
  api.route('/fetch', transfersApi(deps));
  api.route('/', sitesApi(deps));
  api.route('/', historyApi(deps));

  api.openAPIRegistry.registerComponent('securitySchemes', 'apiToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API token (`goldmirror token create`)',
  });
  api.openAPIRegistry.registerComponent('securitySchemes', 'session', {
    type: 'apiKey',
    in: 'cookie',
    name: SESSION_COOKIE,
    description: 'The session cookie of POST /session; unsafe methods also need the X-CSRF-Token header',
  });
  // Built once, on first request: by then every route above is registered.
  let document: ReturnType<typeof api.getOpenAPI31Document> | undefined;
  api.route(
    '/',
    referenceApi(() => (document ??= api.getOpenAPI31Document(DOCUMENT))),
  );
  return api;
}
