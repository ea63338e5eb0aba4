/**
 * `/admin/`, `/admin/images/` and `/api/v1/images/` lead to the same path
 * without the trailing slash instead of a bare 404 (no route ends in "/"):
 * 301 for GET and HEAD, 308 for other methods so that the method and body are
 * kept (RFC 9110 §15.4.9). Only the path changes; the query string stays.
 */
import type { MiddlewareHandler } from 'hono';

export function redirectTrailingSlash(): MiddlewareHandler {
  return async function redirectTrailingSlash(c, next) {
    const url = new URL(c.req.url);
    const trimmed = url.pathname.replace(/\/+$/, '');
    // "//host" would be a protocol-relative redirect to another site: leave such paths to the 404.
    if (trimmed === url.pathname || trimmed === '' || trimmed.startsWith('//')) return next();
    const status = c.req.method === 'GET' || c.req.method === 'HEAD' ? 301 : 308;
    return c.redirect(`${trimmed}${url.search}`, status);
  };
}
