/** Groups (a license key and the image its Macs get), and the same table as a CSV file. */
import { Readable } from 'node:stream';
import { z } from '@hono/zod-openapi';
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
  closeOnFailure,
  created,
  dryRunQuery,
  idParam,
  jsonRequest,
  ok,
  rejectAs,
  routes,
  streamedBody,
} from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Groups');
const params = idParam('group');

const list = route('get', '/', 'List groups', ok(z.array(GroupView), 'Every group'));
const create = route('post', '/', 'Create a group', created(GroupView, 'Created'), {
  body: jsonRequest(createSchema, 'Name, license key, primary flag and image'),
});
const read = route('get', '/{id}', 'Get a group', ok(GroupView, 'The group'), { params });
const update = route('patch', '/{id}', 'Change a group', ok(GroupView, 'The changed group'), {
  params,
  body: jsonRequest(patchSchema, 'The fields to change'),
});
const remove = route('delete', '/{id}', 'Delete a group', ok(z.object({ deleted: GroupView }), 'The deleted group'), {
  params,
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

const csvText = z.string().openapi({ description: `Columns: ${GROUP_CSV_COLUMNS.join(', ')}` });

const exportCsv = route('get', '/', 'Download the groups as CSV', {
  200: { description: 'A CSV file with a header line', content: { 'text/csv': { schema: csvText } } },
});
const CsvReport = z.object({
  dryRun: z.boolean(),
  created: z.array(z.string()),
  updated: z.array(z.string()),
  unchanged: z.array(z.string()),
});
const csvReport = ok(CsvReport, 'The names of the groups created, updated and left as they were');
const importCsv = route('post', '/', 'Create and update groups from a CSV file', csvReport, {
  description:
    'Send the file as the body with `Content-Type: text/csv`. Every row is checked before anything is written.',
  query: dryRunQuery,
  body: streamedBody('text/csv', csvText),
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
    // The reader may stop before the end of the body.
    return closeOnFailure(c, async () => {
      const rows = await readGroupsCsv(
        Readable.fromWeb(c.req.raw.body ?? new ReadableStream()) as AsyncIterable<Uint8Array>,
      );
      return c.json(
        await applyGroupsCsv(deps, c.get('actor'), rows, { dryRun: c.req.valid('query').dryRun === 'true' }),
        200,
      );
    });
  });
  return app;
}
