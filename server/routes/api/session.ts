/** Signing in and out with a session cookie, and changing the signed-in user's password. */
import { z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie } from 'hono/cookie';
import { AppError } from '../../errors.js';
import { clientAddressReader, SESSION_COOKIE, setSessionCookie, type AuthEnv } from '../../http/auth.js';
import {
  changePassword,
  loginSchema,
  login,
  logout,
  passwordChangeSchema,
  type SessionInfo,
} from '../../services/auth.js';
import { apiApp, jsonRequest, noContent, ok, rejectAs, routes } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

/** The signed-in user of this request; an API token has none. */
function signedInUser(c: Context<AuthEnv>): { session: SessionInfo; token: string } {
  const session = c.get('session');
  const token = c.get('sessionToken');
  if (!session || !token)
    throw new AppError('FORBIDDEN', 'passwords are changed by a signed-in user, not with an API token');
  return { session, token };
}

/** Refuses an API token before its body is read or checked. */
const sessionUserOnly: MiddlewareHandler<AuthEnv> = async function sessionUserOnly(c, next) {
  signedInUser(c);
  await next();
};

const route = routes('Session');

const Grant = z.object({ username: z.string(), csrfToken: z.string(), expiresAt: z.string() });
const signIn = route('post', '/', 'Sign in', ok(Grant, 'Signed in'), {
  description:
    'Sets the HttpOnly session cookie; send the returned `csrfToken` as `X-CSRF-Token` on every unsafe request.',
  security: [],
  body: jsonRequest(loginSchema, 'User name and password'),
});
const Actor = z.object({
  actor: z.string().openapi({ example: 'user:admin' }),
  username: z.string().nullable(),
  csrfToken: z.string().nullable(),
});
const whoAmI = route(
  'get',
  '/',
  'Who is asking',
  ok(Actor, 'The actor; username and CSRF token are null for an API token'),
);
const signOut = route('delete', '/', 'Sign out', noContent('Signed out; the cookie is cleared'));
const newPassword = route('post', '/password', "Change the signed-in user's password", noContent('Changed'), {
  description: 'Ends every other session of that user. Refused with an API token.',
  middleware: [sessionUserOnly],
  body: jsonRequest(passwordChangeSchema, 'The current and the new password'),
});

/** `admin` guards everything here except signing in. */
export function sessionApi(deps: ApiDeps, admin: MiddlewareHandler<AuthEnv>): ApiApp {
  const clientAddress = clientAddressReader(deps.config.trustProxy);
  const app = apiApp();
  app.openapi(
    signIn,
    async (c) => {
      const grant = await login(deps, c.req.valid('json'), clientAddress(c));
      setSessionCookie(c, grant.token, grant.expiresAt, deps.config.publicUrl);
      return c.json(
        { username: grant.username, csrfToken: grant.csrfToken, expiresAt: new Date(grant.expiresAt).toISOString() },
        200,
      );
    },
    rejectAs('login'),
  );
  app.use('*', admin);
  app.openapi(whoAmI, (c) => {
    const session = c.get('session');
    const actor = c.get('actor');
    return c.json(
      {
        actor: `${actor.kind}:${actor.name}`,
        username: session?.username ?? null,
        csrfToken: session?.csrfToken ?? null,
      },
      200,
    );
  });
  app.openapi(signOut, async (c) => {
    const token = c.get('sessionToken');
    if (token) await logout(deps, token);
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    return c.body(null, 204);
  });
  app.openapi(
    newPassword,
    async (c) => {
      const { session, token } = signedInUser(c);
      await changePassword(deps, session, token, c.req.valid('json'));
      return c.body(null, 204);
    },
    rejectAs('password change'),
  );
  return app;
}
