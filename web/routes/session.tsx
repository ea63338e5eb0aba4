/** Signing in and out, and the signed-in admin's own password. */
import { Hono } from 'hono';
import { deleteCookie } from 'hono/cookie';
import { clientAddressReader, SESSION_COOKIE, setSessionCookie } from '../../server/http/auth.js';
import { AppError, toAppError } from '../../server/errors.js';
import { changePassword, login, logout } from '../../server/services/auth.js';
import { done, type WebDeps, type WebEnv } from '../env.js';
import { field, formError, formLimit, safeNext } from '../forms.js';
import { AccountPage, LoginPage } from '../pages/auth.js';

/** Sign-in is smaller than other forms, and reachable before signing in: mount it before requireAdmin. */
export function signInRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  const clientAddress = clientAddressReader(deps.config.trustProxy);
  const title = 'Sign in';

  app.get('/login', (c) => c.render(<LoginPage next={safeNext(c.req.query('next'))} />, { title }));
  app.post('/login', formLimit(64 * 1024), async (c) => {
    const form = await c.req.parseBody();
    const next = safeNext(field(form, 'next'));
    const username = field(form, 'username');
    try {
      const grant = await login(deps, { username, password: field(form, 'password') }, clientAddress(c));
      setSessionCookie(c, grant.token, grant.expiresAt, deps.config.publicUrl);
      return c.redirect(next, 303);
    } catch (err) {
      const e = toAppError(err);
      if (e.code === 'INTERNAL') throw err;
      const retry = e.details.retryAfterSeconds;
      if (typeof retry === 'number') c.header('Retry-After', String(retry));
      const message =
        e.code === 'TOO_MANY_REQUESTS' && typeof retry === 'number' ? `${e.message} (about ${retry} s)` : e.message;
      c.status(e.status as 401);
      return c.render(<LoginPage next={next} username={username} />, { title, error: message });
    }
  });
  return app;
}

export function accountRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  const title = 'Your account';

  app.post('/logout', async (c) => {
    const token = c.get('sessionToken');
    if (token) await logout(deps, token);
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    return c.redirect('/admin/login', 303);
  });

  app.get('/account', (c) => c.render(<AccountPage />, { title }));
  app.post('/account/password', async (c) => {
    const session = c.get('session');
    const token = c.get('sessionToken');
    if (!session || !token) throw new AppError('FORBIDDEN', 'sign in with a password to change it');
    const form = await c.req.parseBody();
    try {
      await changePassword(deps, session, token, {
        currentPassword: field(form, 'currentPassword'),
        newPassword: field(form, 'newPassword'),
      });
      return done(c, '/admin/account', 'password-changed');
    } catch (err) {
      const e = formError(err);
      c.status(e.status);
      return c.render(<AccountPage fieldErrors={e.fields} />, { title, error: e.message });
    }
  });
  return app;
}
