/** Garbage collection: remove packages no image uses once their grace period is over. */
import { z } from '@hono/zod-openapi';
import { collectGarbage } from '../../services/gc.js';
import { apiApp, jsonRequest, ok, rejectAs, routes } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const gcSchema = z
  .object({ dryRun: z.boolean().optional().openapi({ description: 'true: report, remove nothing' }) })
  .strict();

const GcReport = z.object({
  dryRun: z.boolean(),
  removed: z.array(z.object({ sha256: z.string(), size: z.number().int(), name: z.string(), orphanFile: z.boolean() })),
  freedBytes: z.number().int(),
  kept: z.array(
    z.object({ sha256: z.string(), reason: z.enum(['grace', 'in-use', 'portal', 'downloaded', 'update']) }),
  ),
  tempRemoved: z
    .array(z.string())
    .openapi({ description: 'Temp files, temp objects and abandoned uploads of dead writers removed by this run' }),
});
const run = routes('Integrity')(
  'post',
  '/',
  'Collect garbage',
  ok(GcReport, 'What was (or would be) removed, and what was kept and why'),
  { body: jsonRequest(gcSchema, 'Options') },
);

export function gcApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(
    run,
    async (c) =>
      c.json(
        await collectGarbage(deps, c.get('actor'), {
          dryRun: c.req.valid('json').dryRun ?? false,
          graceMs: deps.config.gcGraceMs,
          keepUpdates: deps.config.pdUpdatesKeep,
        }),
        200,
      ),
    rejectAs('gc request'),
  );
  return app;
}
