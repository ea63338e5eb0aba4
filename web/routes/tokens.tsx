/** API tokens: a new token is shown once in the answer to the form, never in a URL. */
import { Hono } from 'hono';
import { createApiToken, listApiTokens, revokeApiToken } from '../../server/services/auth.js';
import { done, type WebContext, type WebDeps, type WebEnv } from '../env.js';
import { field, formError, type FormError } from '../forms.js';
import { TokensPage, type TokenFormValues } from '../pages/tokens.js';

export function tokenRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();

  const page = async (
    c: WebContext,
    values: TokenFormValues,
    extra: { created?: Awaited<ReturnType<typeof createApiToken>>; error?: FormError } = {},
  ) => {
    c.status(extra.error?.status ?? (extra.created ? 201 : 200));
    return c.render(
      <TokensPage
        tokens={await listApiTokens(deps)}
        values={values}
        created={extra.created}
        fieldErrors={{ name: extra.error?.fields['token name'] ?? '' }}
      />,
      { title: 'API tokens', error: extra.error?.message, scripts: extra.created ? ['/admin/assets/copy.js'] : [] },
    );
  };

  app.get('/', (c) => page(c, { name: '', scope: 'read' }));
  app.post('/', async (c) => {
    const form = await c.req.parseBody();
    const values = { name: field(form, 'name'), scope: field(form, 'scope') };
    try {
      const created = await createApiToken(deps, c.get('actor'), values.name, values.scope);
      return await page(c, { name: '', scope: values.scope }, { created });
    } catch (err) {
      return page(c, values, { error: formError(err) });
    }
  });
  app.post('/:name/revoke', async (c) => {
    await revokeApiToken(deps, c.get('actor'), c.req.param('name'));
    return done(c, '/admin/tokens', 'token-revoked');
  });
  return app;
}
