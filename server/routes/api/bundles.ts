/** Moving images between mirrors: a bundle is a tar of a manifest and, unless left out, the packages. */
import { Readable } from 'node:stream';
import { z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { AppError } from '../../errors.js';
import type { AuthEnv } from '../../http/auth.js';
import { exportBundle } from '../../bundles/export.js';
import { buildManifest } from '../../services/bundle-manifest.js';
import { importBundle } from '../../bundles/import.js';
import { manifestSchema } from '../../bundles/manifest.js';
import { UPDATE_SCOPES, type UpdateScope } from '../../services/pd-updates/carry.js';
import { apiApp, closeOnFailure, dryRunQuery, ok, queryText, routes, streamedBody } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Bundles');
// Created before zod gains .openapi() (the services load first), so it goes in as it is.
const Manifest = manifestSchema;
const tar = z
  .string()
  .openapi({ format: 'binary', description: 'A tar file: manifest.json, then blobs/sha256/<hex> for each package' });

const exportQuery = z.object({
  image: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .openapi({ description: 'An image id to include (repeat for several); none: every image' }),
  blobs: queryText('`false`: the manifest only, without packages'),
  updates: z.enum(UPDATE_SCOPES).optional().openapi({
    description:
      'Parallels Desktop versions to carry with their update files: `published` (the default), `all` stored ones (each keeps its published state), or `none`',
  }),
});

function exportOptions(query: z.output<typeof exportQuery>): {
  images: string[];
  includeBlobs: boolean;
  updates: UpdateScope | undefined;
} {
  return {
    images: query.image === undefined ? [] : [query.image].flat(),
    includeBlobs: query.blobs !== 'false',
    updates: query.updates,
  };
}

const manifest = route(
  'get',
  '/manifest',
  'The manifest an export would carry',
  ok(Manifest, 'Images, groups and packages'),
  {
    description: 'All `goldmirror sync` reads from its upstream (a `sync` token may read it).',
    query: exportQuery,
  },
);
const tarBundle = { description: 'The bundle, streamed', content: { 'application/x-tar': { schema: tar } } };
const download = route('get', '/', 'Download a bundle', { 200: tarBundle }, { query: exportQuery });

const names = z.array(z.string());
const ImportReport = z.object({
  dryRun: z.boolean(),
  blobs: z.object({ stored: names, alreadyPresent: names, verified: names }),
  images: z.object({ created: names, updated: names, unchanged: names }),
  groups: z.object({ created: names, updated: names, unchanged: names }),
  updates: z.object({ created: names, updated: names, unchanged: names, published: names, unpublished: names }),
});
const importReport = ok(ImportReport, 'What was (or would be) stored, created and updated');
const upload = route('post', '/', 'Import a bundle', importReport, {
  description:
    'Every package is verified against its SHA-256 before anything is written; a failure leaves nothing behind.',
  query: dryRunQuery,
  body: streamedBody('application/x-tar', tar),
});

/** Mounted at /export. */
export function exportApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(manifest, async (c) => c.json(await buildManifest(deps, exportOptions(c.req.valid('query'))), 200));
  app.openapi(download, async (c) => {
    const built = await buildManifest(deps, exportOptions(c.req.valid('query')));
    const stream = exportBundle(deps.store, built);
    c.header('Content-Type', 'application/x-tar');
    c.header('Content-Disposition', `attachment; filename="goldmirror-${built.createdAt.slice(0, 10)}.tar"`);
    return c.body(Readable.toWeb(stream) as ReadableStream, 200);
  });
  return app;
}

/** Mounted at /import, before the body limit: a bundle may be gigabytes. */
export function importApi(deps: ApiDeps, admin: MiddlewareHandler<AuthEnv>): ApiApp {
  const app = apiApp();
  app.use('*', admin);
  app.openapi(upload, async (c) => {
    const body = c.req.raw.body;
    if (!body) throw new AppError('BAD_REQUEST', 'send the bundle (a tar file) as the request body');
    // A failed import stops reading its (possibly huge) body and tears the request stream down.
    return closeOnFailure(c, async () => {
      const report = await importBundle(deps.ingestDeps, Readable.fromWeb(body), {
        dryRun: c.req.valid('query').dryRun === 'true',
        actor: c.get('actor'),
      });
      return c.json(report, 200);
    });
  });
  return app;
}
