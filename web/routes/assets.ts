/** The console's scripts: a fixed set of files, never a path taken from the request. */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Hono } from 'hono';
import { AppError } from '../../server/errors.js';
import type { WebEnv } from '../env.js';

const require = createRequire(import.meta.url);
const ASSETS: Record<string, string> = {
  'copy.js': new URL('../assets/copy.js', import.meta.url).pathname,
  'upload-pick.js': new URL('../assets/upload-pick.js', import.meta.url).pathname,
  'upload-tus.js': new URL('../assets/upload-tus.js', import.meta.url).pathname,
  'upload.js': new URL('../assets/upload.js', import.meta.url).pathname,
  'image-form.js': new URL('../assets/image-form.js', import.meta.url).pathname,
  'live.js': new URL('../assets/live.js', import.meta.url).pathname,
  'tus.min.js': require.resolve('tus-js-client/dist/tus.min.js'),
};

export function assetRoutes(): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  app.get('/:name', async (c) => {
    const file = ASSETS[c.req.param('name')];
    if (!file) throw new AppError('NOT_FOUND', 'no such asset');
    c.header('Content-Type', 'text/javascript; charset=utf-8');
    c.header('Cache-Control', 'private, max-age=300');
    return c.body(await readFile(file, 'utf8'));
  });
  return app;
}
