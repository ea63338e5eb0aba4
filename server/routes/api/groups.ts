/** Groups: a license key and the image its Macs get (the CSV form is in groups-csv.ts). */
import { z } from '@hono/zod-openapi';
import {
  createGroup,
  createSchema,
  deleteGroup,
  getGroup,
  listGroups,
  patchSchema,
  updateGroup,
} from '../../services/groups.js';
import { collectionRoutes } from './collection.js';
import { GroupView } from './schemas.js';
import { apiApp, ok, rejectAs } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const { route, params, list, create, read, update } = collectionRoutes({
  tag: 'Groups',
  one: 'a group',
  many: 'groups',
  view: GroupView,
  create: { schema: createSchema, description: 'Name, license key, primary flag and image' },
  update: { schema: patchSchema },
});
const deleted = ok(z.object({ deleted: GroupView }), 'The deleted group');
const remove = route('delete', '/{id}', 'Delete a group', deleted, { params });

export function groupsApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(list, async (c) => c.json(await listGroups(deps), 200));
  app.openapi(
    create,
    async (c) => c.json(await createGroup(deps, c.get('actor'), c.req.valid('json')), 201),
    rejectAs('group'),
  );
  app.openapi(read, async (c) => c.json(await getGroup(deps, c.req.valid('param').id), 200));
  app.openapi(
    update,
    async (c) => c.json(await updateGroup(deps, c.get('actor'), c.req.valid('param').id, c.req.valid('json')), 200),
    rejectAs('group'),
  );
  app.openapi(remove, async (c) =>
    c.json({ deleted: await deleteGroup(deps, c.get('actor'), c.req.valid('param').id) }, 200),
  );
  return app;
}
