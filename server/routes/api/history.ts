/** What happened: the download log and the audit trail, newest first, a page at a time. */
import { z } from '@hono/zod-openapi';
import { listDownloads, parseDownloadFilter } from '../../services/download-log.js';
import { listHistory } from '../../services/history.js';
import { DownloadLogPage } from './schemas.js';
import { apiApp, ok, queryText, routes } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('History');

const downloadFilter = z.object({
  image: queryText('An image id'),
  arch: queryText('arm64 or x86_64'),
  client: queryText("The Mac's address"),
  result: queryText('complete, resumed or aborted'),
  before: queryText('`nextBefore` of the previous page'),
  limit: queryText('1 to 500'),
});
const downloads = route(
  'get',
  '/downloads',
  'The download log, and downloads in progress',
  ok(DownloadLogPage, 'A page of the log'),
  {
    description: 'Unknown filters are refused by name; empty ones are ignored.',
    query: downloadFilter,
  },
);

const auditFilter = z.object({
  limit: queryText('Entries per page (default 50)'),
  before: queryText('The `X-Next-Before` of the previous page'),
  actor: queryText('Exactly as stored, e.g. `user:admin`, `token:ci`'),
  action: queryText('A kind of action or one exact action (`group.update`)'),
  q: queryText('Words that must all appear'),
  logins: queryText('`false`: leave out sign-ins'),
});
const AuditEntry = z.object({
  id: z.number().int(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  target: z.string(),
  details: z.unknown(),
  sentence: z.string().openapi({ description: 'The entry as one sentence' }),
});
const audit = route('get', '/audit', 'The audit trail', ok(z.array(AuditEntry), 'A page of entries'), {
  description: 'The header `X-Next-Before` carries `before` for the next (older) page.',
  query: auditFilter,
});

/** Mounted at the API's root: /downloads and /audit. */
export function historyApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  // The filters are the service's to check (it names the bad one), from the query as given.
  app.openapi(downloads, async (c) => c.json(await listDownloads(deps, parseDownloadFilter(c.req.query())), 200));
  app.openapi(audit, async (c) => {
    const query = c.req.valid('query');
    const limit = Number(query.limit ?? 50);
    const before = Number(query.before);
    const { entries, nextBefore } = await listHistory(deps, {
      limit: Number.isFinite(limit) ? limit : 50,
      beforeId: Number.isFinite(before) ? before : undefined,
      actor: query.actor || undefined,
      action: query.action || undefined,
      text: query.q || undefined,
      // The API lists sign-ins unless told not to; the history page hides them unless told to show them.
      signIns: query.logins !== 'false',
    });
    if (nextBefore !== null) c.header('X-Next-Before', String(nextBefore));
    return c.json(
      entries.map(({ parts: _parts, ...entry }) => entry),
      200,
    );
  });
  return app;
}
