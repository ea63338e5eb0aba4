/**
 * Sites and replicas: the offices whose Macs the primary sends to a replica
 * in their own building, the replicas that report to it (their heartbeat
 * needs only a `sync` token), and why a given Mac goes where it goes.
 */
import { z } from '@hono/zod-openapi';
import type { Sha256 } from '../../../storage/digest.js';
import { AppError } from '../../errors.js';
import { probeDeps } from '../../jobs/probe-deps.js';
import { probeReplica } from '../../jobs/replica-checks.js';
import {
  acceptHeartbeat,
  deleteReplica,
  getReplica,
  heartbeatSchema,
  listReplicas,
  replicaChanges,
  updateReplica,
} from '../../services/replicas.js';
import { explainRoute } from '../../services/routing.js';
import {
  createSite,
  deleteSite,
  getSite,
  listSites,
  siteChanges,
  siteInput,
  updateSite,
} from '../../services/sites.js';
import { canonicalAddress } from '../../http/client-address.js';
import { resolvePublicAddress } from '../../services/settings.js';
import { sha256Field } from '../../services/validation.js';
import {
  apiApp,
  idParam,
  jsonRequest,
  noContent,
  ok,
  created,
  queryText,
  rejectAs,
  routes,
  textParam,
} from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const siteRoute = routes('Sites');
const replicaRoute = routes('Replicas');

const SiteView = z
  .object({
    name: z.string(),
    networks: z.array(z.string()).openapi({ description: 'CIDR blocks, canonical spelling' }),
    redirects: z.boolean().openapi({ description: "false: the site's Macs are served by this mirror" }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Site');

const replicaStates = z.enum(['up', 'pending', 'stale', 'down', 'disabled']);
const ReplicaView = z
  .object({
    id: z.number().int(),
    publicUrl: z.string(),
    site: z.string(),
    version: z.string(),
    state: replicaStates.openapi({ description: 'Only `up` replicas are sent Macs' }),
    reason: z.string().nullable(),
    enabled: z.boolean(),
    weight: z.number().int(),
    heartbeatIntervalMs: z.number().int(),
    firstSeenAt: z.string(),
    lastHeartbeatAt: z.string(),
    lastSyncAt: z.string().nullable(),
    lastCheckAt: z.string().nullable(),
    lastCheck: z.string().nullable(),
    verified: z.number().int().openapi({ description: 'Packages it reports as verified by its own checks' }),
    lacks: z.array(z.string()).openapi({ description: 'Packages this mirror holds that it does not serve' }),
    badCopies: z.array(z.string()),
  })
  .openapi('Replica');

const Candidate = z.object({
  id: z.number().int(),
  publicUrl: z.string(),
  site: z.string(),
  state: replicaStates,
  weight: z.number().int(),
  excluded: z.string().nullable().openapi({ description: 'Why it was passed over (null: eligible)' }),
  detail: z.string().nullable(),
  score: z.number().nullable(),
});
const RouteView = z
  .object({
    client: z.string(),
    site: z.string().nullable(),
    network: z.string().nullable(),
    replica: z.object({ id: z.number().int(), publicUrl: z.string() }).nullable(),
    location: z.string().nullable().openapi({ description: 'Where a GET of the package is sent (null: served here)' }),
    reason: z.string().nullable(),
    packageStored: z.boolean(),
    candidates: z.array(Candidate),
  })
  .openapi('RouteDecision');

const HeartbeatAnswer = z.object({ replica: ReplicaView, siteKnown: z.boolean() });

const nameParam = textParam('name', "The site's name");
const replicaId = idParam('replica');

const list = siteRoute('get', '/sites', 'List sites', ok(z.array(SiteView), 'Every site'));
const create = siteRoute('post', '/sites', 'Create a site', created(SiteView, 'Created'), {
  body: jsonRequest(siteInput, 'Name, networks and the redirect switch (default on)'),
});
const explain = siteRoute(
  'get',
  '/sites/route',
  'Explain where a download goes',
  ok(RouteView, 'The decision for that client and package, with every replica of its site and why it was passed over'),
  {
    query: z.object({
      ip: queryText('The client address (as the Mac connects, or as X-Forwarded-For names it)'),
      sha256: queryText('The package'),
    }),
  },
);
const read = siteRoute('get', '/sites/{name}', 'Show a site', ok(SiteView, 'The site'), { params: nameParam });
const update = siteRoute('patch', '/sites/{name}', 'Change a site', ok(SiteView, 'The changed site'), {
  params: nameParam,
  body: jsonRequest(siteChanges, 'New networks (replacing the old ones), the redirect switch, or both'),
});
const remove = siteRoute('delete', '/sites/{name}', 'Delete a site', noContent('Deleted'), { params: nameParam });

const replicas = replicaRoute('get', '/replicas', 'List replicas', ok(z.array(ReplicaView), 'Every replica'));
const heartbeat = replicaRoute(
  'post',
  '/replicas/heartbeat',
  "A replica's heartbeat",
  ok(HeartbeatAnswer, 'Recorded'),
  {
    description:
      'Sent by a replica (MIRROR_SYNC_FROM, MIRROR_SITE) after each sync and between syncs; a `sync` token may send it.',
    body: jsonRequest(heartbeatSchema, 'Who the replica is and the packages its own checks verified'),
  },
);
const replica = replicaRoute('get', '/replicas/{id}', 'Show a replica', ok(ReplicaView, 'The replica'), {
  params: replicaId,
});
const changeReplica = replicaRoute(
  'patch',
  '/replicas/{id}',
  'Enable, disable or weigh a replica',
  ok(ReplicaView, 'Changed'),
  {
    params: replicaId,
    body: jsonRequest(replicaChanges, '`enabled` and/or `weight` (1-1000, default 100)'),
  },
);
const checkReplica = replicaRoute(
  'post',
  '/replicas/{id}/check',
  'Check a replica now',
  ok(ReplicaView, 'After the check'),
  {
    params: replicaId,
  },
);
const forgetReplica = replicaRoute('delete', '/replicas/{id}', 'Forget a replica', noContent('Forgotten'), {
  params: replicaId,
});

export function sitesApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(list, async (c) => c.json(await listSites(deps), 200));
  app.openapi(
    create,
    async (c) => c.json(await createSite(deps, c.get('actor'), c.req.valid('json')), 201),
    rejectAs('site'),
  );
  app.openapi(explain, async (c) => {
    const { ip, sha256 } = c.req.valid('query');
    const client = canonicalAddress(ip ?? '');
    const digest = sha256Field.safeParse(sha256 ?? '');
    // Both problems at once, in the same shape as every other VALIDATION_FAILED.
    const fields = [
      ...(client === '' ? [{ field: 'ip', message: 'must be an IPv4 or IPv6 address' }] : []),
      ...(digest.success ? [] : [{ field: 'sha256', message: 'must be 64 hexadecimal digits' }]),
    ];
    if (fields.length > 0 || !digest.success) {
      const message = `invalid query: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`;
      throw new AppError('VALIDATION_FAILED', message, { fields });
    }
    const decision = await explainRoute(
      {
        ...deps,
        ownUrl: deps.config.publicUrl,
        redirects: deps.config.redirects === 'on',
        isReplica: deps.config.syncFrom !== '',
      },
      client,
      digest.data as Sha256,
    );
    return c.json(decision, 200);
  });
  app.openapi(read, async (c) => c.json(await getSite(deps, c.req.valid('param').name), 200));
  app.openapi(
    update,
    async (c) => c.json(await updateSite(deps, c.get('actor'), c.req.valid('param').name, c.req.valid('json')), 200),
    rejectAs('site'),
  );
  app.openapi(remove, async (c) => {
    await deleteSite(deps, c.get('actor'), c.req.valid('param').name);
    return c.body(null, 204);
  });

  app.openapi(replicas, async (c) => c.json(await listReplicas(deps), 200));
  app.openapi(
    heartbeat,
    async (c) => {
      const actor = c.get('actor');
      const {
        answer,
        replicaId: id,
        needsCheck,
      } = await acceptHeartbeat(
        // MIRROR_PUBLIC_URL, else the address set in the settings: a replica there is this mirror itself.
        { ...deps, publicUrl: (await resolvePublicAddress(deps)).url ?? '' },
        actor.name,
        c.req.valid('json'),
      );
      // A replica coming (back) is checked at once rather than at the next round.
      if (needsCheck) {
        void probeReplica(probeDeps(deps), id).catch((err: unknown) =>
          deps.log.warn({ err, replica: id }, 'could not check a replica after its heartbeat'),
        );
      }
      return c.json(answer, 200);
    },
    rejectAs('heartbeat'),
  );
  app.openapi(replica, async (c) => c.json(await getReplica(deps, c.req.valid('param').id), 200));
  app.openapi(
    changeReplica,
    async (c) => c.json(await updateReplica(deps, c.get('actor'), c.req.valid('param').id, c.req.valid('json')), 200),
    rejectAs('replica'),
  );
  app.openapi(checkReplica, async (c) => {
    const { id } = c.req.valid('param');
    await getReplica(deps, id);
    await probeReplica(probeDeps(deps), id);
    return c.json(await getReplica(deps, id), 200);
  });
  app.openapi(forgetReplica, async (c) => {
    await deleteReplica(deps, c.get('actor'), c.req.valid('param').id);
    return c.body(null, 204);
  });
  return app;
}
