/** The groups table as a CSV file: download it, or create and update groups from one. */
import { Readable } from 'node:stream';
import { z } from '@hono/zod-openapi';
import { AppError } from '../../errors.js';
import { applyGroupsCsv, exportGroupsCsv, GROUP_CSV_COLUMNS, readGroupsCsv } from '../../services/groups-csv.js';
import { apiApp, closeOnFailure, dryRunQuery, ok, routes, streamedBody } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Groups');
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
