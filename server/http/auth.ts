/**
 * Admin authentication for everything except /d/ and /healthz: a bearer API
 * token whose scope allows the route, or a session cookie plus a CSRF token
 * on every unsafe method.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { AppError } from '../errors.js';
import type { Actor } from '../services/audit.js';
import type { DbDeps } from '../services/deps.js';
import {
  authenticateApiToken,
  authenticateSession,
  scopeAllows,
  type SessionInfo,
  type TokenScope,
} from '../services/auth.js';
import { clientAddressOf, trustedProxies } from './client-address.js';

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
   * MIRROR_PUBLIC_URL: an https one makes renewed cookies Secure, as at
   * sign-in. Required, so that no route can renew a cookie with other flags.
   */
  publicUrl: string;
  /**
   * Reads the CSRF token of a form post (the web pages); the JSON API sends
   * the X-CSRF-Token header instead.
   */
  formCsrf?: (c: Context) => Promise<string | undefined>;
  /**
   * A request that checks its CSRF token itself, from the body it streams
   * (the no-JavaScript upload form), before it acts on anything else.
   */
  csrfCheckedByHandler?: (c: Context) => boolean;
  /** What to do for an unauthenticated request; the API answers 401 JSON, pages redirect to sign-in. */
  onUnauthenticated?: (c: Context) => Response | Promise<Response>;
}

/** The session cookie: HttpOnly, SameSite=Strict, Secure whenever the request or the public URL is HTTPS. */
export function setSessionCookie(c: Context, token: string, expiresAtMs: number, publicUrl: string): void {
  setCookie(c, SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: 'Strict',
    secure: c.req.url.startsWith('https:') || publicUrl.startsWith('https:'),
    path: '/',
    expires: new Date(expiresAtMs),
  });
}

const CSRF_REFUSED = 'missing or wrong CSRF token; reload the page and try again';

/**
 * CSRF for a streamed multipart form whose handler reads the body itself
 * (uploads, CSV import): the `_csrf` field must arrive before any file part,
 * as the pages send it. `expected` is null for a request with an API token.
 */
export function streamedFormCsrf(expected: string | null): {
  field(name: string, value: string): void;
  ok(): boolean;
  refusal(): AppError;
} {
  let ok = expected === null;
  return {
    field(name, value) {
      if (name === CSRF_FIELD && expected !== null) ok = csrfMatches(expected, value);
    },
    ok: () => ok,
    refusal: () => new AppError('FORBIDDEN', CSRF_REFUSED),
  };
}

/** Compares a sent CSRF token with the session's in constant time. */
export function csrfMatches(expected: string, sent: string | undefined): boolean {
  if (sent === undefined) return false;
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(sent, 'utf8');
  // Only the length can leak, and every CSRF token has the same length.
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

/**
 * The scope a bearer token needs for a request: GET/HEAD of the export
 * manifest (all `goldmirror sync` asks its upstream for) and a replica's
 * heartbeat need `sync`; any
 * other GET/HEAD of the API or /metrics needs `read`; everything else `admin`.
 */
/** A replica's heartbeat: scope `sync` or `admin` (not `read`, although read otherwise includes sync). */
const HEARTBEAT_PATH = '/api/v1/replicas/heartbeat';

export function requiredScope(method: string, path: string): TokenScope {
  const reading = method === 'GET' || method === 'HEAD';
  if (reading && path === '/api/v1/export/manifest') return 'sync';
  // A replica's heartbeat to its primary carries the same sync token as its syncs.
  if (method === 'POST' && path === HEARTBEAT_PATH) return 'sync';
  if (reading && (path.startsWith('/api/v1/') || path === '/metrics')) return 'read';
  return 'admin';
}

export function requireAdmin(deps: DbDeps, options: RequireAdminOptions): MiddlewareHandler<AuthEnv> {
  return async function requireAdminMiddleware(c, next) {
    const authorization = c.req.header('authorization');
    if (authorization !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      const token = match?.[1] ? await authenticateApiToken(deps, match[1]) : null;
      if (!token) throw new AppError('UNAUTHORIZED', 'the API token is invalid or revoked');
      const needed = requiredScope(c.req.method, c.req.path);
      // A heartbeat makes a replica, which Macs are then sent to: a monitoring (read) token may not.
      const heartbeat = c.req.method === 'POST' && c.req.path === HEARTBEAT_PATH;
      if (!scopeAllows(token.scope, needed) || (heartbeat && token.scope === 'read')) {
        throw new AppError(
          'TOKEN_SCOPE',
          `the API token ${JSON.stringify(token.name)} has scope "${token.scope}"; ${c.req.method} ${c.req.path} needs scope "${needed}"`,
          { tokenScope: token.scope, requiredScope: needed },
        );
      }
      c.set('actor', { kind: 'token', name: token.name });
      c.set('session', null);
      c.set('sessionToken', null);
      return next();
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    const session = cookie ? await authenticateSession(deps, cookie) : null;
    if (!session || !cookie) {
      if (options.onUnauthenticated) return options.onUnauthenticated(c);
      throw new AppError('UNAUTHORIZED', 'sign in first, or send an API token as "Authorization: Bearer …"');
    }
    if (!SAFE_METHODS.has(c.req.method) && !options.csrfCheckedByHandler?.(c)) {
      const sent = c.req.header(CSRF_HEADER) ?? (await options.formCsrf?.(c));
      if (!csrfMatches(session.csrfToken, sent)) {
        throw new AppError('FORBIDDEN', CSRF_REFUSED);
      }
    }
    c.set('actor', { kind: 'user', name: session.username });
    c.set('session', session);
    c.set('sessionToken', cookie);
    await next();
    // A renewed session must reach the browser, or its cookie still expires at the old time.
    // Set after the handler, on whatever answer it made: a handler that returns its own
    // Response (the tus server does) would drop headers set before it ran.
    if (session.renewed && !setsSessionCookie(c.res)) setSessionCookie(c, cookie, session.expiresAt, options.publicUrl);
  };
}

/** True when the answer already sets or clears the session cookie (sign-out must not be undone). */
function setsSessionCookie(res: Response): boolean {
  return res.headers.getSetCookie().some((line) => line.startsWith(`${SESSION_COOKIE}=`));
}

/** Reads the client address for sign-in throttling, trusting X-Forwarded-For only from the configured proxies. */
export function clientAddressReader(trustProxy: readonly string[]): (c: Context) => string {
  const trusted = trustedProxies(trustProxy);
  return (c) => clientAddressOf(c, trusted);
}
