/** API tokens: bearer credentials with a scope (admin, read or sync); the plaintext is shown once. */
import { createRoute, z } from '@hono/zod-openapi';
import { createApiToken, listApiTokens, revokeApiToken, TOKEN_SCOPES } from '../../services/auth.js';
import { ApiTokenView } from './schemas.js';
import {
  apiApp,
  errors,
  json,
  jsonOnly,
  jsonRequest,
  rejectAs,
  textParam,
  type ApiApp,
  type ApiDeps,
} from './shared.js';

const tags = ['Tokens'];
const tokenRequest = z
  .object({
    name: z.string().max(100).openapi({ description: '1-64 letters, digits, dot, dash or underscore' }),
    scope: z
      .string()
      .max(20)
      .optional()
      .openapi({ description: `One of ${TOKEN_SCOPES.join(', ')} (default admin)` }),
  })
  .strict();

const list = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: 'List API tokens',
  responses: { 200: json(z.array(ApiTokenView), 'Every token (never its secret)'), ...errors },
});

const create = createRoute({
  method: 'post',
  path: '/',
  tags,
  summary: 'Create an API token',
  middleware: [jsonOnly()],
  request: { body: jsonRequest(tokenRequest, 'Name and scope') },
  responses: {
    201: json(
      z.object({
        name: z.string(),
        scope: z.enum(TOKEN_SCOPES),
        token: z.string().openapi({ description: 'The secret, shown only now' }),
      }),
      'Created',
    ),
    ...errors,
  },
});

const revoke = createRoute({
  method: 'delete',
  path: '/{name}',
  tags,
  summary: 'Revoke an API token',
  request: { params: textParam('name', "The token's name") },
  responses: { 204: { description: 'Revoked' }, ...errors },
});

export function tokensApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(list, async (c) => c.json(await listApiTokens(deps), 200));
  app.openapi(
    create,
    async (c) => {
      const input = c.req.valid('json');
      return c.json(await createApiToken(deps, c.get('actor'), input.name, input.scope), 201);
    },
    rejectAs('token'),
  );
  app.openapi(revoke, async (c) => {
    await revokeApiToken(deps, c.get('actor'), c.req.valid('param').name);
    return c.body(null, 204);
  });
  return app;
}
