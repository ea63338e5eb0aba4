/** Fetch jobs: the mirror downloads a package from a URL itself (checked against a SHA-256 or a checksum file). */
import { z } from '@hono/zod-openapi';
import type { Sha256 } from '../../../storage/digest.js';
import { AppError } from '../../errors.js';
import { sha256Field } from '../../services/validation.js';
import { TransferJob } from './schemas.js';
import { accepted, apiApp, jsonRequest, noContent, ok, rejectAs, routes, textParam } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Fetch');
const params = textParam('id', 'The job id');
const fetchSchema = z
  .object({
    url: z.string().url().max(4096).openapi({ description: 'An http(s) URL of the .pvmp' }),
    sha256: sha256Field.optional(),
    checksumUrl: z
      .string()
      .url()
      .max(4096)
      .optional()
      .openapi({ description: 'A `shasum -a 256` file to check against' }),
  })
  .strict();

const list = route('get', '/', 'List fetch jobs', ok(z.array(TransferJob), 'Running and recent jobs'));
const start = route('post', '/', 'Start a fetch job', accepted(TransferJob, 'Queued'), {
  body: jsonRequest(fetchSchema, 'What to fetch'),
});
const read = route('get', '/{id}', 'Get a fetch job', ok(TransferJob, 'The job'), { params });
const cancel = route('delete', '/{id}', 'Cancel a running fetch job', noContent('Cancelled'), { params });

/** Mounted at /fetch. */
export function transfersApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(list, async (c) => c.json(await deps.transfers.list(), 200));
  app.openapi(
    start,
    async (c) => {
      const input = c.req.valid('json');
      const job = await deps.transfers.startFetch(input.url, {
        expectedSha256: input.sha256 as Sha256 | undefined,
        checksumUrl: input.checksumUrl,
      });
      return c.json(job, 202);
    },
    rejectAs('fetch request'),
  );
  app.openapi(read, async (c) => {
    const job = await deps.transfers.get(c.req.valid('param').id);
    if (!job) throw new AppError('NOT_FOUND', 'no such fetch job');
    return c.json(job, 200);
  });
  app.openapi(cancel, async (c) => {
    if (!(await deps.transfers.cancel(c.req.valid('param').id)))
      throw new AppError('NOT_FOUND', 'no running fetch job with that id');
    return c.body(null, 204);
  });
  return app;
}
