/**
 * Sites and replicas: the list with the create form and the route
 * explanation, a site's edit page and delete confirmation, and each
 * replica's switches (enable, disable, weight, check now, forget).
 */
import { Hono } from 'hono';
import type { Sha256 } from '../../storage/digest.js';
import { probeDeps } from '../../server/jobs/probe-deps.js';
import { probeReplica } from '../../server/jobs/replica-checks.js';
import { canonicalAddress } from '../../server/http/client-address.js';
import { listBlobViews } from '../../server/services/blobs.js';
import { deleteReplica, getReplica, listReplicas, updateReplica } from '../../server/services/replicas.js';
import { explainRoute } from '../../server/services/routing.js';
import { createSite, deleteSite, getSite, listSites, updateSite, type SiteView } from '../../server/services/sites.js';
import { parseId, sha256Field } from '../../server/services/validation.js';
import { baseOf, done, type WebContext, type WebDeps, type WebEnv } from '../env.js';
import {
  EMPTY_SITE_VALUES,
  field,
  formError,
  siteFormError,
  siteNetworksInput,
  siteValues,
  siteViewValues,
  type FormError,
} from '../forms.js';
import {
  ReplicaForgetPage,
  SiteDeletePage,
  SiteEditPage,
  SitesPage,
  type ExplainState,
  type SiteFormValues,
} from '../pages/sites.js';

const active = '/admin/sites';

export function siteRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();

  app.get('/', async (c) => {
    const explain = await explainFromQuery(deps, c);
    const invalid = Object.keys(explain.errors).length > 0;
    const error: FormError | undefined = invalid
      ? { message: 'The route cannot be explained: see the form below.', fields: {}, status: 400 }
      : undefined;
    return listPage(deps, c, { ...EMPTY_SITE_VALUES }, { explain, error });
  });
  app.post('/', async (c) => {
    const values = siteValues(await c.req.parseBody());
    try {
      await createSite(deps, c.get('actor'), {
        name: values.name,
        networks: siteNetworksInput(values),
        redirects: values.redirects,
      });
      return done(c, '/admin/sites', 'site-created');
    } catch (err) {
      return listPage(deps, c, values, { error: siteFormError(err) });
    }
  });

  const editPage = async (c: WebContext, site: SiteView, values: SiteFormValues, error?: FormError) => {
    c.status(error?.status ?? 200);
    const replicas = (await listReplicas(deps)).filter((r) => r.site === site.name);
    return c.render(<SiteEditPage site={site} replicas={replicas} values={values} fieldErrors={error?.fields} />, {
      title: `Site ${site.name}`,
      active,
      error: error?.message,
    });
  };
  app.get('/:name', async (c) => {
    const site = await getSite(deps, c.req.param('name'));
    return editPage(c, site, siteViewValues(site));
  });
  app.post('/:name', async (c) => {
    const site = await getSite(deps, c.req.param('name'));
    const values = { ...siteValues(await c.req.parseBody()), name: site.name };
    try {
      await updateSite(deps, c.get('actor'), site.name, {
        networks: siteNetworksInput(values),
        redirects: values.redirects,
      });
      return done(c, '/admin/sites', 'site-saved');
    } catch (err) {
      return editPage(c, site, values, siteFormError(err));
    }
  });
  app.get('/:name/delete', async (c) => {
    const site = await getSite(deps, c.req.param('name'));
    const replicas = (await listReplicas(deps)).filter((r) => r.site === site.name);
    return c.render(<SiteDeletePage site={site} replicas={replicas} />, {
      title: `Delete site ${site.name}?`,
      active,
      flash: null,
    });
  });
  app.post('/:name/delete', async (c) => {
    const site = await getSite(deps, c.req.param('name'));
    const form = await c.req.parseBody();
    if (form.confirm !== 'yes') return c.redirect(`/admin/sites/${encodeURIComponent(site.name)}/delete`, 303);
    await deleteSite(deps, c.get('actor'), site.name);
    return done(c, '/admin/sites', 'site-deleted');
  });
  return app;
}

export function replicaRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  const replicaId = (c: WebContext) => parseId(c.req.param('id') ?? '', 'replica');

  for (const [action, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    app.post(`/:id/${action}`, async (c) => {
      await updateReplica(deps, c.get('actor'), replicaId(c), { enabled });
      return done(c, '/admin/sites', enabled ? 'replica-enabled' : 'replica-disabled');
    });
  }
  app.post('/:id/weight', async (c) => {
    const id = replicaId(c);
    await getReplica(deps, id);
    const text = field(await c.req.parseBody(), 'weight').trim();
    try {
      // Anything but digits goes to the service as text, which names the problem ("must be a number").
      await updateReplica(deps, c.get('actor'), id, { weight: /^\d{1,9}$/.test(text) ? Number(text) : text });
      return done(c, '/admin/sites', 'replica-weight-saved');
    } catch (err) {
      const e = formError(err);
      return listPage(
        deps,
        c,
        { ...EMPTY_SITE_VALUES },
        {
          error: { ...e, fields: {} },
          replicaErrors: { [id]: e.fields.weight ?? e.message },
        },
      );
    }
  });
  app.post('/:id/check', async (c) => {
    const id = replicaId(c);
    await getReplica(deps, id);
    const result = await probeReplica(probeDeps(deps), id);
    const key = result === null ? 'replica-check-skipped' : result.ok ? 'replica-check-passed' : 'replica-check-failed';
    return done(c, '/admin/sites', key);
  });
  app.get('/:id/forget', async (c) => {
    const replica = await getReplica(deps, replicaId(c));
    return c.render(<ReplicaForgetPage replica={replica} />, {
      title: `Forget replica ${replica.publicUrl}?`,
      active,
      flash: null,
    });
  });
  app.post('/:id/forget', async (c) => {
    const id = replicaId(c);
    const form = await c.req.parseBody();
    if (form.confirm !== 'yes') return c.redirect(`/admin/replicas/${id}/forget`, 303);
    await deleteReplica(deps, c.get('actor'), id);
    return done(c, '/admin/sites', 'replica-forgotten');
  });
  return app;
}

/** The list page, re-shown with a refused form's values and errors where there is one. */
async function listPage(
  deps: WebDeps,
  c: WebContext,
  values: SiteFormValues,
  opts: {
    error?: FormError | undefined;
    replicaErrors?: Record<number, string>;
    explain?: ExplainState;
  },
): Promise<Response> {
  const [sites, replicas, blobs] = await Promise.all([listSites(deps), listReplicas(deps), listBlobViews(deps, null)]);
  c.status(opts.error?.status ?? 200);
  const { config } = deps;
  return c.render(
    <SitesPage
      role={{
        publicUrl: baseOf(c),
        syncFrom: config.syncFrom,
        site: config.site,
        redirects: config.redirects === 'on',
      }}
      sites={sites}
      replicas={replicas}
      packages={blobs.map((b) => ({ sha256: b.sha256, name: b.name }))}
      values={values}
      fieldErrors={opts.error?.fields}
      replicaErrors={opts.replicaErrors}
      explain={opts.explain ?? { values: { ip: '', sha256: '' }, errors: {} }}
    />,
    { title: 'Sites and replicas', active, error: opts.error?.message },
  );
}

/** The route form's answer for ?ip=…&sha256=… (nothing while neither is given). */
async function explainFromQuery(deps: WebDeps, c: WebContext): Promise<ExplainState> {
  const values = { ip: (c.req.query('ip') ?? '').trim(), sha256: (c.req.query('sha256') ?? '').trim() };
  if (values.ip === '' && values.sha256 === '') return { values, errors: {} };
  const errors: Record<string, string> = {};
  const client = canonicalAddress(values.ip);
  if (client === '') errors.ip = values.ip === '' ? 'enter the Mac’s IP address' : 'must be an IPv4 or IPv6 address';
  const digest = sha256Field.safeParse(values.sha256);
  if (!digest.success) errors.sha256 = values.sha256 === '' ? 'choose a package' : 'must be 64 hexadecimal digits';
  if (Object.keys(errors).length > 0 || !digest.success) return { values, errors };
  const { config } = deps;
  const decision = await explainRoute(
    { ...deps, ownUrl: config.publicUrl, redirects: config.redirects === 'on', isReplica: config.syncFrom !== '' },
    client,
    digest.data as Sha256,
  );
  return { values: { ip: values.ip, sha256: digest.data }, errors, decision };
}
