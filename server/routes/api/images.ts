/** Golden images: their packages per architecture, the values for the Parallels portal, and the link check. */
import { z } from '@hono/zod-openapi';
import {
  createImage,
  createSchema,
  deleteImage,
  getImage,
  listImages,
  patchSchema,
  portalValues,
  updateImage,
} from '../../services/images.js';
import { checkImageLinks } from '../../services/link-check.js';
import { saveLinkCheck } from '../../services/link-check-results.js';
import { confirmPortalValues } from '../../services/portal-changes.js';
import { resolvePublicAddress } from '../../services/settings.js';
import { collectionRoutes } from './collection.js';
import { ImageView, LinkCheckReport, PortalValues } from './schemas.js';
import { apiApp, jsonRequest, ok, publicBase, rejectAs } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const { route, params, list, create, read, update } = collectionRoutes({
  tag: 'Images',
  one: 'an image',
  many: 'images',
  view: ImageView,
  create: { schema: createSchema, description: 'Name, description and the package of each architecture' },
  update: {
    schema: patchSchema,
    description: 'Only the fields sent change. A changed Download URL or SHA-256 shows a pending portal update.',
  },
});
const Deleted = z.object({
  deleted: ImageView,
  groupsLeftWithoutImage: z.array(z.object({ id: z.number().int(), name: z.string() })),
});
const deleted = ok(Deleted, 'The deleted image, and the groups that now have none (give them another in the portal)');
const remove = route('delete', '/{id}', 'Delete an image', deleted, { params });
const toEnter = ok(PortalValues, 'What to enter in the portal');
const portal = route('get', '/{id}/portal', 'Values for the Parallels portal', toEnter, { params });
const confirmSchema = z
  .object({
    fingerprint: z
      .string()
      .max(64)
      .optional()
      .openapi({ description: "The pending change's fingerprint; refused if the values changed since" }),
  })
  .strict();
const confirmed = ok(PortalValues, 'The portal values, nothing pending');
const confirm = route('post', '/{id}/portal/confirm', 'Mark the portal updated', confirmed, {
  description: 'The body is optional: a bare POST confirms whatever is pending now.',
  params,
  body: jsonRequest(confirmSchema, 'The fingerprint of the change entered', true),
});
const checkReport = ok(LinkCheckReport, 'Each step of each enabled architecture');
const check = route('post', '/{id}/check', 'Check the download links from the server', checkReport, { params });

export function imagesApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(list, async (c) => c.json(await listImages(deps, await publicBase(deps)), 200));
  app.openapi(
    create,
    async (c) => c.json(await createImage(deps, c.get('actor'), c.req.valid('json'), await publicBase(deps)), 201),
    rejectAs('image'),
  );
  app.openapi(read, async (c) => c.json(await getImage(deps, c.req.valid('param').id, await publicBase(deps)), 200));
  app.openapi(
    update,
    async (c) =>
      c.json(
        await updateImage(deps, c.get('actor'), c.req.valid('param').id, c.req.valid('json'), await publicBase(deps)),
        200,
      ),
    rejectAs('image'),
  );
  app.openapi(remove, async (c) =>
    c.json(await deleteImage(deps, c.get('actor'), c.req.valid('param').id, await publicBase(deps)), 200),
  );
  app.openapi(portal, async (c) => {
    const address = await resolvePublicAddress(deps);
    return c.json(portalValues(await getImage(deps, c.req.valid('param').id, address.url), address), 200);
  });
  app.openapi(
    confirm,
    async (c) => {
      const { id } = c.req.valid('param');
      const address = await resolvePublicAddress(deps);
      await confirmPortalValues(deps, c.get('actor'), id, address.url, c.req.valid('json').fingerprint);
      return c.json(portalValues(await getImage(deps, id, address.url), address), 200);
    },
    rejectAs('confirmation'),
  );
  app.openapi(check, async (c) => {
    const address = await resolvePublicAddress(deps);
    const view = await getImage(deps, c.req.valid('param').id, address.url);
    const report = await checkImageLinks(deps, view, address);
    await saveLinkCheck(deps, view.id, report);
    return c.json(report, 200);
  });
  return app;
}
