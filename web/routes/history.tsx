/** History: the audit log in sentences, filtered by actor, kind of action and text. */
import { Hono } from 'hono';
import { historyActors, listHistory, type HistoryQuery } from '../../server/services/history.js';
import type { WebDeps, WebEnv } from '../env.js';
import { HistoryPage } from '../pages/history.js';

export function historyRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  app.get('/', async (c) => {
    const before = c.req.query('before');
    const query: HistoryQuery = {
      limit: 50,
      beforeId: before && /^\d{1,15}$/.test(before) ? Number(before) : undefined,
      actor: c.req.query('actor') || undefined,
      action: c.req.query('action') || undefined,
      text: (c.req.query('q') ?? '').slice(0, 200).trim() || undefined,
      signIns: c.req.query('logins') === '1',
    };
    const [{ entries, nextBefore }, actors] = await Promise.all([listHistory(deps, query), historyActors(deps)]);
    return c.render(<HistoryPage query={query} entries={entries} nextBefore={nextBefore} actors={actors} />, {
      title: 'History',
      active: '/admin/history',
    });
  });
  return app;
}
