/** API tokens: bearer credentials with a scope (admin, read or sync); the plaintext is shown once. */
import { z } from '@hono/zod-openapi';
import { createApiToken, listApiTokens, revokeApiToken, TOKEN_SCOPES } from '../../services/auth.js';
import { ApiTokenView } from './schemas.js';
import { apiApp, created, jsonRequest, noContent, ok, rejectAs, routes, textParam } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Tokens');
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

const NewToken = z.object({
  name: z.string(),
  scope: z.enum(TOKEN_SCOPES),
  token: z.string().openapi({ description: 'The secret, shown only now' }),
});

const list = route('get', '/', 'List API tokens', ok(z.array(ApiTokenView), 'Every token (never its secret)'));
const create = route('post', '/', 'Create an API token', created(NewToken, 'Created'), {
  body: jsonRequest(tokenRequest, 'Name and scope'),
});
const revoke = route('delete', '/{name}', 'Revoke an API token', noContent('Revoked'), {
  params: textParam('name', "The token's name"),
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
