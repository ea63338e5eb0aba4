/**
 * Admin authentication for everything except /d/ and /healthz: a bearer API
 * token, or a session cookie plus a CSRF token on every unsafe method.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import type { Db } from '../db/open.js';
import { AppError } from '../errors.js';
import type { Actor } from '../services/audit.js';
import { authenticateApiToken, authenticateSession, type SessionInfo } from '../services/auth.js';

export const SESSION_COOKIE = 'gm_session';
export const CSRF_HEADER = 'x-csrf-token';
export const CSRF_FIELD = '_csrf';

export interface AuthVariables {
  actor: Actor;
  /** Null when the request came with an API token. */
  session: SessionInfo | null;
  sessionToken: string | null;
}

export type AuthEnv = { Variables: AuthVariables };

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface RequireAdminOptions {
  /**
   * Reads the CSRF token of a form post (the web pages); the JSON API sends
   * the X-CSRF-Token header instead.
   */
  formCsrf?: (c: Context) => Promise<string | undefined>;
  /** What to do for an unauthenticated request; the API answers 401 JSON, pages redirect to sign-in. */
  onUnauthenticated?: (c: Context) => Response | Promise<Response>;
  /** MIRROR_PUBLIC_URL: an https one makes renewed cookies Secure, as at sign-in. */
  publicUrl?: string;
}

/** The session cookie: HttpOnly, SameSite=Strict, Secure whenever the request or the public URL is HTTPS. */
export function setSessionCookie(c: Context, token: string, expiresAtMs: number, publicUrl = ''): void {
  setCookie(c, SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: 'Strict',
    secure: c.req.url.startsWith('https:') || publicUrl.startsWith('https:'),
    path: '/',
    expires: new Date(expiresAtMs),
  });
}

export function requireAdmin(db: Db, options: RequireAdminOptions = {}): MiddlewareHandler<AuthEnv> {
  return async function requireAdminMiddleware(c, next) {
    const authorization = c.req.header('authorization');
    if (authorization !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      const token = match?.[1] ? await authenticateApiToken(db, match[1]) : null;
      if (!token) throw new AppError('UNAUTHORIZED', 'the API token is invalid or revoked');
      c.set('actor', { kind: 'token', name: token.name });
      c.set('session', null);
      c.set('sessionToken', null);
      return next();
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    const session = cookie ? await authenticateSession(db, cookie) : null;
    if (!session || !cookie) {
      if (options.onUnauthenticated) return options.onUnauthenticated(c);
      throw new AppError('UNAUTHORIZED', 'sign in first, or send an API token as "Authorization: Bearer …"');
    }
    if (!SAFE_METHODS.has(c.req.method)) {
      const sent = c.req.header(CSRF_HEADER) ?? (await options.formCsrf?.(c));
      if (sent !== session.csrfToken) {
        throw new AppError('FORBIDDEN', 'missing or wrong CSRF token; reload the page and try again');
      }
    }
    // A renewed session must reach the browser too, or its cookie still expires at the old time.
    if (session.renewed) setSessionCookie(c, cookie, session.expiresAt, options.publicUrl);
    c.set('actor', { kind: 'user', name: session.username });
    c.set('session', session);
    c.set('sessionToken', cookie);
    return next();
  };
}

/** The client address used for login throttling. */
export function clientAddress(c: Context): string {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress ?? 'unknown';
}
