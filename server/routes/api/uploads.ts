/**
 * Resumable uploads with the tus protocol (https://tus.io/protocols/resumable-upload),
 * served by @tus/server; their bodies stream through, so this sits before the API's body limit.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { AuthEnv } from '../../http/auth.js';
import { apiApp, ok, routes, streamedBody, textParam } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Uploads');

const Unfinished = z.object({
  id: z.string(),
  name: z.string(),
  size: z.number().int().nullable(),
  offset: z.number().int(),
  arch: z.enum(['arm64', 'x86_64', 'unknown']),
  hasChecksum: z.boolean(),
  lastModified: z.number().nullable().openapi({ description: "The picked file's modification time (ms)" }),
  createdAt: z.string(),
  lastDataAt: z.string().nullable(),
  receiving: z.boolean(),
  finishing: z.boolean(),
});
const unfinished = route(
  'get',
  '/',
  'List unfinished uploads',
  ok(z.array(Unfinished), 'Uploads started and not completed (dropped after three days)'),
);

const tusAnswer = { description: 'The tus server\'s answer (headers per the tus protocol; errors as `{"error": …}`)' };
const params = textParam('id', 'The upload id from the Location of its creation');
const offsetStream = streamedBody('application/offset+octet-stream', z.string().openapi({ format: 'binary' }));

/** The tus operations, for the document (one `all()` route serves them). */
const tusOperations = [
  route(
    'post',
    '/',
    'Create an upload (tus)',
    { 201: tusAnswer },
    {
      description:
        '`Upload-Length` (or `Upload-Defer-Length: 1`) and `Upload-Metadata` with `filename`, optionally `arch` and `checksum`.',
    },
  ),
  route('head', '/{id}', 'Offset of an upload (tus)', { 200: tusAnswer }, { params }),
  route('patch', '/{id}', 'Send bytes of an upload (tus)', { 204: tusAnswer }, { params, body: offsetStream }),
  route('delete', '/{id}', 'Abandon an upload (tus)', { 204: tusAnswer }, { params }),
  // The preflight answer carries no error body.
  createRoute({
    method: 'options',
    path: '/',
    tags: ['Uploads'],
    summary: 'tus capabilities',
    responses: { 204: tusAnswer },
  }),
];

export function uploadsApi(deps: ApiDeps, admin: MiddlewareHandler<AuthEnv>): ApiApp {
  const app = apiApp();
  const tus = (c: Context) => deps.uploads.handleWeb(c.req.raw);
  app.use('*', admin);
  // A plain GET lists unfinished uploads (tus itself has no listing).
  app.openapi(unfinished, async (c) => c.json(await deps.uploads.listUnfinished(), 200));
  app.all('/', tus);
  app.all('/:id{.+}', tus);
  for (const operation of tusOperations) app.openAPIRegistry.registerPath(operation);
  return app;
}
