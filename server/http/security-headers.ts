/**
 * Protective headers on every answer of the hono app (admin pages, the API,
 * /metrics, /healthz). The /d/ download links never pass through here: they
 * are served by http/downloads.ts with their own caching headers.
 */
import type { MiddlewareHandler } from 'hono';

export interface SecurityHeaderOptions {
  /** CSP source expressions of the inline stylesheets the pages carry (`'sha256-…'`). */
  styleSources: readonly string[];
  /** CSP source expressions for images; `'self'` unless given. */
  imageSources?: readonly string[];
}

/**
 * Scripts only from this origin's files (no inline script, no eval), styles
 * only the hashed inline stylesheet, no framing, forms and XHR back to this
 * origin only.
 */
export function contentSecurityPolicy(options: SecurityHeaderOptions): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src ${options.styleSources.join(' ') || "'none'"}`,
    `img-src ${(options.imageSources ?? ["'self'"]).join(' ')}`,
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export function securityHeaders(options: SecurityHeaderOptions): MiddlewareHandler {
  const csp = contentSecurityPolicy(options);
  return async function securityHeadersMiddleware(c, next) {
    await next();
    // Set after the handler, so answers a handler built itself (tus, errors) get them too.
    // A page that carries other files (the API reference's vendored stylesheet) sends its own policy.
    if (!c.res.headers.has('Content-Security-Policy')) c.header('Content-Security-Policy', csp);
    c.header('X-Frame-Options', 'DENY');
    c.header('Referrer-Policy', 'same-origin');
    c.header('X-Content-Type-Options', 'nosniff');
    // Admin answers hold tokens, license keys and state; only the fixed script files say otherwise.
    if (!c.res.headers.has('Cache-Control')) c.header('Cache-Control', 'no-store');
  };
}
