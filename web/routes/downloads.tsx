/** Downloads: the page, and its two tables alone for live.js. */
import { Hono } from 'hono';
import { humanPeriod } from '../../server/format.js';
import {
  downloadFilterChoices,
  listDownloads,
  parseDownloadFilter,
  type DownloadFilter,
} from '../../server/services/download-log.js';
import type { WebDeps, WebEnv } from '../env.js';
import { formError } from '../forms.js';
import { DownloadsPage, FinishedTable, InProgressTable } from '../pages/downloads.js';

export function downloadRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  app.get('/', async (c) => {
    let filter: DownloadFilter = {};
    let error: string | undefined;
    try {
      filter = parseDownloadFilter(c.req.query());
    } catch (err) {
      error = formError(err).message;
    }
    // One after the other: the listing first writes pending rows, which the choices then see.
    const page = await listDownloads(deps, filter);
    const choices = await downloadFilterChoices(deps);
    const retention =
      deps.config.downloadLogRetentionMs > 0 ? humanPeriod(deps.config.downloadLogRetentionMs) : 'ever (never pruned)';
    c.status(error ? 400 : 200);
    return c.render(<DownloadsPage filter={filter} page={page} choices={choices} retention={retention} />, {
      title: 'Downloads',
      active: '/admin/downloads',
      error,
      scripts: ['/admin/assets/live.js'],
    });
  });
  app.get('/live', async (c) => {
    const { part, ...query } = c.req.query();
    const filter = parseDownloadFilter(query);
    const page = await listDownloads(deps, filter);
    c.header('Cache-Control', 'no-store');
    if (part === 'active') return c.html(<InProgressTable rows={page.inProgress} />);
    const filtered =
      filter.image !== undefined || filter.arch !== undefined || !!filter.client || filter.result !== undefined;
    return c.html(<FinishedTable rows={page.downloads} filtered={filtered} />);
  });
  return app;
}
