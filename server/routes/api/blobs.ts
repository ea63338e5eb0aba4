/** Stored packages (content-addressed by SHA-256): list, inspect, record the architecture, delete. */
import { createRoute, z } from '@hono/zod-openapi';
import { AppError } from '../../errors.js';
import { BLOB_ARCHES, deleteBlob, getBlobView, listBlobViews, updateBlobArch } from '../../services/blobs.js';
import { BlobView } from './schemas.js';
import {
  apiApp,
  errors,
  json,
  jsonOnly,
  jsonRequest,
  publicBase,
  textParam,
  type ApiApp,
  type ApiDeps,
} from './shared.js';

const tags = ['Packages'];
const params = textParam('sha256', 'SHA-256 of the package (64 hexadecimal digits)');
const archPatch = z
  .object({
    arch: z
      .unknown()
      .openapi({ type: 'string', enum: [...BLOB_ARCHES], description: 'The architecture the package is for' }),
  })
  .strict();

const list = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: 'List packages',
  responses: { 200: json(z.array(BlobView), 'Every stored package'), ...errors },
});

const read = createRoute({
  method: 'get',
  path: '/{sha256}',
  tags,
  summary: 'Get a package',
  request: { params },
  responses: { 200: json(BlobView, 'The package'), ...errors },
});

const update = createRoute({
  method: 'patch',
  path: '/{sha256}',
  tags,
  summary: "Record a package's architecture",
  middleware: [jsonOnly()],
  request: { params, body: jsonRequest(archPatch, 'The architecture') },
  responses: { 200: json(BlobView, 'The package'), ...errors },
});

const remove = createRoute({
  method: 'delete',
  path: '/{sha256}',
  tags,
  summary: 'Delete a package no image uses',
  request: { params },
  responses: { 200: json(z.object({ deleted: BlobView }), 'The deleted package'), ...errors },
});

export function blobsApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(list, async (c) => c.json(await listBlobViews(deps, await publicBase(deps)), 200));
  app.openapi(read, async (c) =>
    c.json(await getBlobView(deps, c.req.valid('param').sha256, await publicBase(deps)), 200),
  );
  app.openapi(
    update,
    async (c) =>
      c.json(
        await updateBlobArch(
          deps,
          c.get('actor'),
          c.req.valid('param').sha256,
          c.req.valid('json').arch,
          await publicBase(deps),
        ),
        200,
      ),
    (result) => {
      // The service names a wrong value; a body of another shape gets this sentence.
      if (!result.success)
        throw new AppError('VALIDATION_FAILED', 'a package accepts only {"arch": "arm64" | "x86_64" | "unknown"}');
      return undefined;
    },
  );
  app.openapi(remove, async (c) =>
    c.json(
      { deleted: await deleteBlob(deps, c.get('actor'), c.req.valid('param').sha256, await publicBase(deps)) },
      200,
    ),
  );
  return app;
}
