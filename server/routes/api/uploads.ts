/**
 * Resumable uploads with the tus protocol (https://tus.io/protocols/resumable-upload),
 * served by @tus/server; their bodies stream through, so this sits before the API's body limit.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { AuthEnv } from '../../http/auth.js';
import { apiApp, errors, json, type ApiApp, type ApiDeps } from './shared.js';

const tags = ['Uploads'];

const unfinished = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: 'List unfinished uploads',
  responses: {
    200: json(
      z.array(
        z.object({
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
        }),
      ),
      'Uploads started and not completed (dropped after three days)',
    ),
    ...errors,
  },
});

const tusAnswer = { description: 'The tus server\'s answer (headers per the tus protocol; errors as `{"error": …}`)' };
const uploadId = z.object({
  id: z
    .string()
    .openapi({ param: { name: 'id', in: 'path' }, description: 'The upload id from the Location of its creation' }),
});
const offsetStream = {
  required: true,
  content: { 'application/offset+octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
};

/** The tus operations, for the document (one `all()` route serves them). */
const tusOperations = [
  createRoute({
    method: 'post',
    path: '/',
    tags,
    summary: 'Create an upload (tus)',
    description:
      '`Upload-Length` (or `Upload-Defer-Length: 1`) and `Upload-Metadata` with `filename`, optionally `arch` and `checksum`.',
    responses: { 201: tusAnswer, ...errors },
  }),
  createRoute({
    method: 'head',
    path: '/{id}',
    tags,
    summary: 'Offset of an upload (tus)',
    request: { params: uploadId },
    responses: { 200: tusAnswer, ...errors },
  }),
  createRoute({
    method: 'patch',
    path: '/{id}',
    tags,
    summary: 'Send bytes of an upload (tus)',
    request: { params: uploadId, body: offsetStream },
    responses: { 204: tusAnswer, ...errors },
  }),
  createRoute({
    method: 'delete',
    path: '/{id}',
    tags,
    summary: 'Abandon an upload (tus)',
    request: { params: uploadId },
    responses: { 204: tusAnswer, ...errors },
  }),
  createRoute({ method: 'options', path: '/', tags, summary: 'tus capabilities', responses: { 204: tusAnswer } }),
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
