/** Groups (a license key and the image its Macs get), and the same table as a CSV file. */
import { Readable } from 'node:stream';
import { createRoute, z } from '@hono/zod-openapi';
import { AppError } from '../../errors.js';
import {
  createGroup,
  createSchema,
  deleteGroup,
  getGroup,
  listGroups,
  patchSchema,
  updateGroup,
} from '../../services/groups.js';
import { applyGroupsCsv, exportGroupsCsv, GROUP_CSV_COLUMNS, readGroupsCsv } from '../../services/groups-csv.js';
import { GroupView } from './schemas.js';
import {
  apiApp,
  errors,
  idParam,
  json,
  jsonOnly,
  jsonRequest,
  queryText,
  rejectAs,
  type ApiApp,
  type ApiDeps,
} from './shared.js';

const tags = ['Groups'];
const params = idParam('group');

const list = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: 'List groups',
  responses: { 200: json(z.array(GroupView), 'Every group'), ...errors },
});

const create = createRoute({
  method: 'post',
  path: '/',
  tags,
  summary: 'Create a group',
  middleware: [jsonOnly()],
  request: { body: jsonRequest(createSchema, 'Name, license key, primary flag and image') },
  responses: { 201: json(GroupView, 'Created'), ...errors },
});

const read = createRoute({
  method: 'get',
  path: '/{id}',
  tags,
  summary: 'Get a group',
  request: { params },
  responses: { 200: json(GroupView, 'The group'), ...errors },
});

const update = createRoute({
  method: 'patch',
  path: '/{id}',
  tags,
  summary: 'Change a group',
  middleware: [jsonOnly({ params })],
  request: { params, body: jsonRequest(patchSchema, 'The fields to change') },
  responses: { 200: json(GroupView, 'The changed group'), ...errors },
});

const remove = createRoute({
  method: 'delete',
  path: '/{id}',
  tags,
  summary: 'Delete a group',
  request: { params },
  responses: { 200: json(z.object({ deleted: GroupView }), 'The deleted group'), ...errors },
});

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

const csvTags = ['Groups'];
const csvText = z.string().openapi({ description: `Columns: ${GROUP_CSV_COLUMNS.join(', ')}` });

const exportCsv = createRoute({
  method: 'get',
  path: '/',
  tags: csvTags,
  summary: 'Download the groups as CSV',
  responses: {
    200: { description: 'A CSV file with a header line', content: { 'text/csv': { schema: csvText } } },
    ...errors,
  },
});

const importCsv = createRoute({
  method: 'post',
  path: '/',
  tags: csvTags,
  summary: 'Create and update groups from a CSV file',
  description:
    'Send the file as the body with `Content-Type: text/csv`. Every row is checked before anything is written.',
  request: {
    query: z.object({ dryRun: queryText('`true`: report what would change, change nothing') }),
    body: { required: true, content: { 'text/csv': { schema: csvText } } },
  },
  responses: {
    200: json(
      z.object({
        dryRun: z.boolean(),
        created: z.array(z.string()),
        updated: z.array(z.string()),
        unchanged: z.array(z.string()),
      }),
      'The names of the groups created, updated and left as they were',
    ),
    ...errors,
  },
});

/** Mounted at /groups.csv. */
export function groupsCsvApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(exportCsv, async (c) => {
    c.header('Content-Type', 'text/csv; charset=utf-8; header=present');
    c.header(
      'Content-Disposition',
      `attachment; filename="goldmirror-groups-${new Date().toISOString().slice(0, 10)}.csv"`,
    );
    return c.body(await exportGroupsCsv(deps), 200);
  });
  app.openapi(importCsv, async (c) => {
    const type = c.req.header('content-type') ?? '';
    if (!/^(text\/csv|text\/plain|application\/csv)\b/i.test(type)) {
      throw new AppError('BAD_REQUEST', 'send the CSV file as the request body with Content-Type: text/csv');
    }
    try {
      const rows = await readGroupsCsv(
        Readable.fromWeb(c.req.raw.body ?? new ReadableStream()) as AsyncIterable<Uint8Array>,
      );
      return c.json(
        await applyGroupsCsv(deps, c.get('actor'), rows, { dryRun: c.req.valid('query').dryRun === 'true' }),
        200,
      );
    } catch (err) {
      // The reader may stop before the end of the body; a keep-alive client must not reuse this socket.
      c.header('Connection', 'close');
      throw err;
    }
  });
  return app;
}
