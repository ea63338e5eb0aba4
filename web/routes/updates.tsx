/**
 * Parallels Desktop updates: the page, publish / unpublish / roll back per version, Sync now, and the streamed
 * "Add a .dmg" form.
 */
import { Hono } from 'hono';
import { toAppError } from '../../server/errors.js';
import { EMPTY_UPDATE_FORM, receiveUpdateForm, type UpdateFormValues } from '../../server/http/update-form.js';
import { syncUpdates } from '../../server/services/pd-updates/sync.js';
import {
  listUpdates,
  publishUpdate,
  resolveUpdateAlert,
  rollbackUpdate,
  unpublishUpdate,
} from '../../server/services/pd-updates/versions.js';
import { baseOf, csrfOf, done, type WebContext, type WebDeps, type WebEnv } from '../env.js';
import { formError, type FormError } from '../forms.js';
import { UpdatesPage } from '../pages/updates.js';

const PATH = '/admin/updates';

/** How long Sync now waits for its sync before answering; a longer one (big downloads) goes on behind the page. */
const SYNC_WAIT_MS = 20_000;

export function updateRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  const { config } = deps;
  const addDeps = { ...deps.ingestDeps, config };
  /** The sync Sync now started in this process, while it runs: a second click waits for it instead of starting another. */
  let running: { since: number; done: Promise<unknown> } | null = null;

  const page = async (
    c: WebContext,
    extra: {
      values?: UpdateFormValues;
      error?: Omit<FormError, 'status'> & { status: FormError['status'] | 507 };
    } = {},
  ) => {
    const overview = await listUpdates(deps);
    c.status(extra.error?.status ?? 200);
    return c.render(
      <UpdatesPage
        base={baseOf(c)}
        upstream={{
          feeds: config.pdUpdatesUpstream,
          intervalMs: config.pdUpdatesIntervalMs,
          autoPublish: config.pdUpdatesAutoPublish,
        }}
        statuses={overview.upstream}
        versions={overview.versions}
        syncRunningSince={running ? new Date(running.since).toISOString() : null}
        values={extra.values ?? { ...EMPTY_UPDATE_FORM }}
        fieldErrors={extra.error?.fields}
      />,
      {
        title: 'Parallels Desktop updates',
        active: PATH,
        error: extra.error?.message,
        scripts: ['/admin/assets/copy.js'],
      },
    );
  };

  app.get('/', (c) => page(c));

  const change = (action: string, run: (version: string, c: WebContext) => Promise<unknown>, key: string): void => {
    app.post(`/:version/${action}`, async (c) => {
      const version = c.req.param('version');
      try {
        await run(version, c);
      } catch (err) {
        return page(c, { error: formError(err) });
      }
      return c.redirect(`${PATH}?done=${key}#v-${encodeURIComponent(version)}`, 303);
    });
  };
  change('publish', (v, c) => publishUpdate(deps, c.get('actor'), v), 'update-published');
  change('unpublish', (v, c) => unpublishUpdate(deps, c.get('actor'), v), 'update-unpublished');
  change('rollback', (v, c) => rollbackUpdate(deps, c.get('actor'), v), 'update-rolled-back');
  change('alert-keep', (v, c) => resolveUpdateAlert(deps, c.get('actor'), v, { take: false }), 'update-alert-kept');
  change('alert-take', (v, c) => resolveUpdateAlert(deps, c.get('actor'), v, { take: true }), 'update-alert-taken');

  app.post('/sync', async (c) => {
    if (config.pdUpdatesUpstream.length === 0)
      return page(c, {
        error: {
          message: 'No upstream feed is configured: set MIRROR_PD_UPDATES_UPSTREAM to follow one.',
          fields: {},
          status: 409,
        },
      });
    if (!running) {
      const started = {
        since: deps.clock.now(),
        done: syncUpdates(deps.ingestDeps, {
          feeds: config.pdUpdatesUpstream,
          autoPublish: config.pdUpdatesAutoPublish,
          actor: c.get('actor'),
          log: deps.log,
        })
          .then((report) => {
            deps.log.info(
              { fetched: report.fetched, failed: report.failed.length, alerts: report.alerts.length },
              'Parallels Desktop update sync (Sync now) finished',
            );
            return null;
          })
          .catch((err: unknown) => {
            deps.log.error({ err }, 'Parallels Desktop update sync (Sync now) failed');
            return err;
          })
          .finally(() => {
            if (running === started) running = null;
          }),
      };
      running = started;
    }
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      running.done.then((failure) => ({ failure })),
      new Promise<false>((resolve) => (timer = setTimeout(resolve, SYNC_WAIT_MS, false))),
    ]);
    clearTimeout(timer);
    // A sync that could not run (another process runs one) or broke off says why, instead of "synced".
    if (finished && finished.failure !== null) return page(c, { error: formError(finished.failure) });
    return done(c, PATH, finished ? 'updates-synced' : 'updates-sync-running');
  });

  app.post('/add', async (c) => {
    const values = { ...EMPTY_UPDATE_FORM };
    try {
      const added = await receiveUpdateForm(addDeps, c.get('actor'), c.req.raw, csrfOf(c), values);
      const key = added.published ? 'update-added-published' : 'update-added';
      return c.redirect(`${PATH}?done=${key}#v-${encodeURIComponent(added.version)}`, 303);
    } catch (err) {
      if (toAppError(err).code === 'FORBIDDEN') throw err;
      const e = formError(err);
      // A full disk keeps its own status (507), as the package upload answers it.
      const status = toAppError(err).code === 'INSUFFICIENT_STORAGE' ? 507 : e.status;
      return page(c, { values, error: { ...e, status } });
    }
  });
  return app;
}
