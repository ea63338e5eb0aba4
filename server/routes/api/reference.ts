/**
 * The API describing itself: the OpenAPI 3.1 document built from the routes'
 * zod schemas, and a reference page (Swagger UI, served from this server's
 * node_modules, never a CDN) for admins signed in to the console.
 */
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { z } from '@hono/zod-openapi';
import { AppError } from '../../errors.js';
import { contentSecurityPolicy } from '../../http/security-headers.js';
import { apiApp, ok, routes, textParam } from './shared.js';
import type { ApiApp } from './shared.js';

const route = routes('Reference');
const SWAGGER_DIR = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/**
 * Starts Swagger UI on the document; "Try it out" sends the session's CSRF
 * token, which unsafe requests with the session cookie need. A file, not
 * inline, because the policy allows scripts only from this origin.
 */
const INIT_SCRIPT = `'use strict';
(function () {
  var csrf = null;
  fetch('session', { credentials: 'same-origin' })
    .then(function (res) { return res.ok ? res.json() : null; })
    .then(function (who) { csrf = who && who.csrfToken; })
    .catch(function () {});
  window.ui = SwaggerUIBundle({
    url: 'openapi.json',
    dom_id: '#reference',
    deepLinking: true,
    requestInterceptor: function (req) {
      if (csrf) req.headers['X-CSRF-Token'] = csrf;
      return req;
    },
  });
})();
`;

/** The files the page loads: name → where it comes from and its type. */
const ASSETS: Record<string, { type: string; read: () => Promise<Uint8Array<ArrayBuffer>> }> = {
  'swagger-ui.css': { type: 'text/css; charset=utf-8', read: () => vendored('swagger-ui.css') },
  'swagger-ui-bundle.js': { type: 'text/javascript; charset=utf-8', read: () => vendored('swagger-ui-bundle.js') },
  'init.js': { type: 'text/javascript; charset=utf-8', read: async () => new TextEncoder().encode(INIT_SCRIPT) },
};

async function vendored(file: string): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await fs.readFile(path.join(SWAGGER_DIR, file)));
}

// Relative links: the page is /api/v1/reference, so they resolve under it (assets) and beside it (document, session).
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>goldmirror API reference</title>
<link rel="stylesheet" href="reference/swagger-ui.css">
</head>
<body>
<div id="reference"></div>
<script src="reference/swagger-ui-bundle.js"></script>
<script src="reference/init.js"></script>
</body>
</html>
`;

/** The app's policy, plus this origin's stylesheets and the data: images Swagger UI's stylesheet carries. */
const PAGE_POLICY = contentSecurityPolicy({ styleSources: ["'self'"], imageSources: ["'self'", 'data:'] });

const Document = z.looseObject({ openapi: z.literal('3.1.0') });
const documentRoute = route(
  'get',
  '/openapi.json',
  'This document',
  ok(Document, 'The OpenAPI 3.1 document of the API'),
);
const page = route('get', '/reference', 'The reference page (Swagger UI)', {
  200: { description: 'An HTML page', content: { 'text/html': { schema: z.string() } } },
});
const assetFile = {
  description: 'The file',
  content: { 'text/css': { schema: z.string() }, 'text/javascript': { schema: z.string() } },
};
const asset = route(
  'get',
  '/reference/{name}',
  'A file of the reference page',
  { 200: assetFile },
  {
    params: textParam('name', `One of ${Object.keys(ASSETS).join(', ')}`),
  },
);

/** `document` builds the whole API's document (this app is mounted into it). */
export function referenceApi(document: () => { openapi: string }): ApiApp {
  const app = apiApp();
  const loaded = new Map<string, Uint8Array<ArrayBuffer>>();
  app.openapi(documentRoute, (c) => c.json(document() as { openapi: '3.1.0' }, 200));
  app.openapi(page, (c) => {
    c.header('Content-Security-Policy', PAGE_POLICY);
    return c.html(PAGE, 200);
  });
  app.openapi(asset, async (c) => {
    const { name } = c.req.valid('param');
    const file = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!file) throw new AppError('NOT_FOUND', `the reference page has no file ${JSON.stringify(name)}`);
    let body = loaded.get(name);
    if (!body) {
      body = await file.read();
      loaded.set(name, body);
    }
    c.header('Content-Type', file.type);
    // The same files until the next upgrade; they hold no data.
    c.header('Cache-Control', 'private, max-age=300');
    return c.body(body, 200);
  });
  return app;
}
