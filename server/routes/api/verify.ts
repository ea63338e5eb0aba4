/** Integrity: re-hash stored packages against their SHA-256, see the state, cancel checks. */
import { z } from '@hono/zod-openapi';
import type { Sha256 } from '../../../storage/digest.js';
import { getBlobView } from '../../services/blobs.js';
import { integritySummary } from '../../services/integrity.js';
import { sha256Field } from '../../services/validation.js';
import { apiApp, json, jsonRequest, ok, publicBase, queryText, rejectAs, routes } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Integrity');
const verifySchema = z
  .object({
    sha256: sha256Field.optional(),
    all: z.boolean().optional(),
    wait: z
      .boolean()
      .optional()
      .openapi({ description: 'true: answer when done, with the results; otherwise 202 at once' }),
  })
  .strict()
  .refine((v) => (v.sha256 === undefined) !== (v.all !== true), { message: 'give either sha256 or all: true' });

const verdict = z.enum(['ok', 'corrupt', 'missing', 'replaced', 'cancelled', 'unknown']);
const Status = z.object({
  running: z.array(
    z.object({
      sha256: z.string(),
      bytesDone: z.number(),
      totalBytes: z.number(),
      startedAt: z.string(),
      bytesPerSec: z.number(),
    }),
  ),
  queued: z.array(z.string()),
  concurrency: z.number().int(),
  maxBytesPerSec: z.number(),
  blobs: z.object({ ok: z.number().int(), corrupt: z.number().int(), missing: z.number().int() }),
  problems: z.array(
    z.object({
      sha256: z.string(),
      state: z.string(),
      detail: z.string().nullable(),
      since: z.string().nullable(),
      images: z.array(z.object({ id: z.number().int(), name: z.string(), arch: z.string() })),
      groups: z.array(z.string()),
    }),
  ),
});

const status = route('get', '/', 'Checks running and queued, and packages in trouble', ok(Status, 'The state'));
const start = route(
  'post',
  '/',
  'Check one package or all of them',
  {
    200: json(z.object({ results: z.record(z.string(), verdict) }), 'With `wait`: the verdict per package'),
    202: json(z.object({ queued: z.union([z.array(z.string()), z.literal('all')]) }), 'Queued'),
  },
  { body: jsonRequest(verifySchema, 'Either `sha256` or `all: true`') },
);
const cancelled = ok(z.object({ cancelled: z.number().int() }), 'How many checks were cancelled');
const cancel = route('delete', '/', 'Cancel checks', cancelled, {
  query: z.object({ sha256: queryText('Only this package; none: every check') }),
});

export function verifyApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(status, async (c) => c.json({ ...deps.checker.status(), ...(await integritySummary(deps)) }, 200));
  app.openapi(
    start,
    async (c) => {
      const input = c.req.valid('json');
      if (input.sha256 !== undefined) {
        await getBlobView(deps, input.sha256, await publicBase(deps));
        const result = deps.checker.check(input.sha256 as Sha256);
        if (input.wait) return c.json({ results: { [input.sha256]: await result } }, 200);
        void result.catch(() => undefined);
        return c.json({ queued: [input.sha256] }, 202);
      }
      const all = deps.checker.checkAll();
      if (input.wait) return c.json({ results: await all }, 200);
      void all.catch(() => undefined);
      return c.json({ queued: 'all' as const }, 202);
    },
    rejectAs('verify request'),
  );
  app.openapi(cancel, (c) => {
    const { sha256 } = c.req.valid('query');
    return c.json({ cancelled: deps.checker.cancel(sha256 === undefined ? undefined : sha256.toLowerCase()) }, 200);
  });
  return app;
}
