/** Stored packages (content-addressed by SHA-256): list, inspect, record the architecture, delete. */
import { z } from '@hono/zod-openapi';
import { AppError } from '../../errors.js';
import { BLOB_ARCHES, deleteBlob, getBlobView, listBlobViews, updateBlobArch } from '../../services/blobs.js';
import { BlobView } from './schemas.js';
import { apiApp, jsonRequest, ok, publicBase, routes, textParam } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Packages');
const params = textParam('sha256', 'SHA-256 of the package (64 hexadecimal digits)');
const archPatch = z
  .object({
    arch: z
      .unknown()
      .openapi({ type: 'string', enum: [...BLOB_ARCHES], description: 'The architecture the package is for' }),
  })
  .strict();

const list = route('get', '/', 'List packages', ok(z.array(BlobView), 'Every stored package'));
const read = route('get', '/{sha256}', 'Get a package', ok(BlobView, 'The package'), { params });
const update = route('patch', '/{sha256}', "Record a package's architecture", ok(BlobView, 'The package'), {
  params,
  body: jsonRequest(archPatch, 'The architecture'),
});
const deleted = ok(z.object({ deleted: BlobView }), 'The deleted package');
const remove = route('delete', '/{sha256}', 'Delete a package no image uses', deleted, { params });

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
