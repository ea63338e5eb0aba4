/** Garbage collection: remove packages no image uses once their grace period is over. */
import { createRoute, z } from '@hono/zod-openapi';
import { collectGarbage } from '../../services/gc.js';
import { apiApp, errors, json, jsonOnly, jsonRequest, rejectAs, type ApiApp, type ApiDeps } from './shared.js';

const gcSchema = z
  .object({ dryRun: z.boolean().optional().openapi({ description: 'true: report, remove nothing' }) })
  .strict();

const run = createRoute({
  method: 'post',
  path: '/',
  tags: ['Integrity'],
  summary: 'Collect garbage',
  middleware: [jsonOnly()],
  request: { body: jsonRequest(gcSchema, 'Options') },
  responses: {
    200: json(
      z.object({
        dryRun: z.boolean(),
        removed: z.array(
          z.object({ sha256: z.string(), size: z.number().int(), name: z.string(), orphanFile: z.boolean() }),
        ),
        freedBytes: z.number().int(),
        kept: z.array(z.object({ sha256: z.string(), reason: z.enum(['grace', 'in-use', 'portal', 'downloaded']) })),
      }),
      'What was (or would be) removed, and what was kept and why',
    ),
    ...errors,
  },
});

export function gcApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(
    run,
    async (c) =>
      c.json(
        await collectGarbage(deps, c.get('actor'), {
          dryRun: c.req.valid('json').dryRun ?? false,
          graceMs: deps.config.gcGraceMs,
        }),
        200,
      ),
    rejectAs('gc request'),
  );
  return app;
}
