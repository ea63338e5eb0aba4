/**
 * The Parallels Desktop update feed Macs read: open like the download links, at
 * /updates/parallels_updates.xml (every published version) and at the official layout
 * /updates/desktop/v<major>/parallels/parallels_updates.xml (that major version's). Built from the database on
 * each request (a few KiB), with a strong ETag of the bytes so a Mac's conditional GET costs a 304.
 */
import { createHash } from 'node:crypto';
import { Hono, type Context } from 'hono';
import type { ServiceDeps } from '../services/deps.js';
import { servedFeed } from '../services/pd-updates/versions.js';
import { AppError } from '../errors.js';

export function createUpdateFeedApp(deps: Pick<ServiceDeps, 'db' | 'config'>): Hono {
  const app = new Hono();
  const answer = async (c: Context, major?: number): Promise<Response> => {
    const xml = await servedFeed(deps, major);
    const etag = `"${createHash('sha256').update(xml).digest('hex').slice(0, 32)}"`;
    c.header('ETag', etag);
    c.header('Cache-Control', 'no-cache');
    const ifNoneMatch = c.req.header('if-none-match');
    if (
      ifNoneMatch !== undefined &&
      ifNoneMatch.split(',').some((t: string) => t.trim().replace(/^W\//, '') === etag || t.trim() === '*')
    )
      return c.body(null, 304);
    c.header('Content-Type', 'application/xml; charset=utf-8');
    return c.body(xml, 200);
  };
  app.get('/parallels_updates.xml', (c) => answer(c));
  app.get('/desktop/:major/parallels/parallels_updates.xml', (c) => {
    const m = /^v(\d{1,4})$/.exec(c.req.param('major'));
    if (!m)
      throw new AppError(
        'NOT_FOUND',
        'per-version feeds live at /updates/desktop/v<major>/parallels/parallels_updates.xml',
      );
    return answer(c, Number(m[1]));
  });
  return app;
}
