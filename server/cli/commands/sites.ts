/** `goldmirror site` and `goldmirror replica`: the offices whose Macs go to a replica in their building, and the replicas. */
import type { Sha256 } from '../../../storage/digest.js';
import { AppError } from '../../errors.js';
import { canonicalAddress } from '../../http/client-address.js';
import { probeDeps } from '../../jobs/probe-deps.js';
import { probeReplica } from '../../jobs/replica-checks.js';
import { cliActor } from '../../services/audit.js';
import { deleteReplica, getReplica, listReplicas, updateReplica, type ReplicaView } from '../../services/replicas.js';
import { explainRoute, type Candidate } from '../../services/routing.js';
import { createSite, deleteSite, getSite, listSites, updateSite, type SiteView } from '../../services/sites.js';
import { sha256Field } from '../../services/validation.js';
import { JSON_FLAG, STRING, defineCommand, refuseOptions, type CommandContext } from '../context.js';
import { printJson, printLine, table } from '../output.js';

const SITE_USAGE =
  'goldmirror site create NAME --cidr CIDR [--cidr CIDR ...] [--redirects on|off] [--json]\n' +
  '       goldmirror site list [--json]\n' +
  '       goldmirror site update NAME [--cidr CIDR ...] [--redirects on|off] [--json]   (--cidr replaces the list)\n' +
  '       goldmirror site delete NAME [--json]\n' +
  '       goldmirror site route --ip ADDRESS --sha256 DIGEST [--json]   (where a GET of that package goes, and why)';

const REPLICA_USAGE =
  'goldmirror replica list [--json]\n' +
  '       goldmirror replica update ID [--enabled on|off] [--weight 1-1000] [--json]\n' +
  '       goldmirror replica enable|disable ID [--json]\n' +
  '       goldmirror replica check ID [--json]   (probes it now; exit 1 when it fails)\n' +
  '       goldmirror replica forget ID [--json]   (a replica still running reappears with its next heartbeat)';

/** An on|off option as a boolean; undefined when not given. */
function onOff(value: string | undefined, option: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'on' || value === 'off') return value === 'on';
  throw new AppError('VALIDATION_FAILED', `${option} must be on or off, got ${JSON.stringify(value)}`);
}

/** Site list rows also count the replicas that report each site, and how many of them are up. */
interface SiteSummary extends SiteView {
  replicas: number;
  replicasUp: number;
}

function summarize(sites: SiteView[], replicas: ReplicaView[]): SiteSummary[] {
  return sites.map((site) => {
    const own = replicas.filter((r) => r.site === site.name);
    return { ...site, replicas: own.length, replicasUp: own.filter((r) => r.state === 'up').length };
  });
}

function describeSite(site: SiteView): string {
  return `site ${site.name}: ${site.networks.join(', ')}; redirects ${site.redirects ? 'on' : 'off'}`;
}

export const siteCommand = defineCommand({
  summary: "manage sites: an office's client networks, whose Macs are sent to a replica of that site",
  usage: SITE_USAGE,
  subcommands: ['create', 'list', 'update', 'delete', 'route'],
  options: { ...JSON_FLAG, cidr: { type: 'string', multiple: true }, redirects: STRING, ip: STRING, sha256: STRING },
  async run(ctx, { values, positionals, subcommand: name }) {
    if (name !== 'create' && name !== 'update') refuseOptions(values, ['cidr', 'redirects'], `site ${name}`);
    if (name !== 'route') refuseOptions(values, ['ip', 'sha256'], `site ${name}`);
    const redirects = onOff(values.redirects, '--redirects');
    if (name === 'list' || name === 'route') {
      if (positionals.length) throw new AppError('USAGE', `site ${name} takes no arguments`);
    } else if (positionals.length !== 1) throw new AppError('USAGE', `site ${name} takes exactly one NAME`);
    const siteName = positionals[0] ?? '';
    if (name === 'create' && !values.cidr?.length)
      throw new AppError('USAGE', 'site create needs at least one --cidr NETWORK (e.g. --cidr 10.2.0.0/16)');
    if (name === 'update' && values.cidr === undefined && redirects === undefined)
      throw new AppError('USAGE', 'site update needs --cidr NETWORK (replacing the list) or --redirects on|off');
    if (name === 'route') return routeCommand(ctx, values);

    return ctx.withRuntime(async (runtime) => {
      if (name === 'list') {
        const replicas = await listReplicas(runtime);
        const sites = summarize(await listSites(runtime), replicas);
        if (values.json) return printJson(sites);
        // A replica whose MIRROR_SITE names no site here (a typo, or a site not created yet) gets no Mac.
        const unknown = [
          ...new Set(replicas.map((r) => r.site).filter((reported) => !sites.some((s) => s.name === reported))),
        ];
        const note = unknown.length
          ? `\nreplicas report sites not defined here (they get no Mac until created): ${unknown.join(', ')}`
          : '';
        if (!sites.length)
          return printLine(`no sites yet; create one with: goldmirror site create NAME --cidr CIDR${note}`);
        return printLine(
          table([
            ['NAME', 'NETWORKS', 'REDIRECTS', 'REPLICAS'],
            ...sites.map((s) => [
              s.name,
              s.networks.join(', '),
              s.redirects ? 'on' : 'off',
              s.replicas === 0 ? 'none' : `${s.replicas} (${s.replicasUp} up)`,
            ]),
          ]) + note,
        );
      }
      if (name === 'create') {
        const site = await createSite(runtime, cliActor, { name: siteName, networks: values.cidr, redirects });
        return values.json ? printJson(site) : printLine(`created ${describeSite(site)}`);
      }
      if (name === 'update') {
        const site = await updateSite(runtime, cliActor, siteName, { networks: values.cidr, redirects });
        return values.json ? printJson(site) : printLine(`updated ${describeSite(site)}`);
      }
      const site = await getSite(runtime, siteName);
      await deleteSite(runtime, cliActor, site.name);
      if (values.json) return printJson({ deleted: site });
      printLine(`deleted site ${site.name}; its Macs are served by this mirror now`);
    });
  },
});

type RouteExplanation = Awaited<ReturnType<typeof explainRoute>>;

async function routeCommand(
  ctx: CommandContext,
  values: { ip?: string | undefined; sha256?: string | undefined; json: boolean },
): Promise<void> {
  if (values.ip === undefined || values.sha256 === undefined)
    throw new AppError('USAGE', 'site route needs --ip ADDRESS and --sha256 DIGEST');
  const client = canonicalAddress(values.ip);
  if (client === '')
    throw new AppError('VALIDATION_FAILED', `--ip must be an IPv4 or IPv6 address, got ${JSON.stringify(values.ip)}`);
  const digest = sha256Field.safeParse(values.sha256);
  if (!digest.success) {
    throw new AppError(
      'VALIDATION_FAILED',
      `--sha256 must be 64 hexadecimal digits, got ${JSON.stringify(values.sha256)}`,
    );
  }
  const sha256 = digest.data as Sha256;
  return ctx.withRuntime(async (runtime) => {
    const { config } = runtime;
    const decision = await explainRoute(
      { ...runtime, ownUrl: config.publicUrl, redirects: config.redirects === 'on', isReplica: config.syncFrom !== '' },
      client,
      sha256,
    );
    // The same shape as GET /api/v1/sites/route.
    if (values.json) return printJson(decision);
    printRoute(decision);
  });
}

function printRoute(route: RouteExplanation): void {
  printLine(
    route.site === null
      ? `client ${route.client} is in no site`
      : `client ${route.client} is in site ${route.site} (network ${route.network ?? '?'})`,
  );
  printLine(
    route.replica
      ? `decision: redirect (302) to replica ${route.replica.id}: ${route.location ?? route.replica.publicUrl}`
      : `decision: served here: ${route.reason ?? 'no replica takes it'}`,
  );
  if (route.site === null) return;
  if (!route.candidates.length) return printLine(`replicas of site ${route.site}: no replica reports this site`);
  printLine(`replicas of site ${route.site}:`);
  const rows = route.candidates.map((c) => [String(c.id), c.publicUrl, c.state, String(c.weight), verdict(c, route)]);
  const lines = table([['ID', 'URL', 'STATE', 'WEIGHT', 'VERDICT'], ...rows]).split('\n');
  for (const line of lines) printLine(`  ${line}`);
}

function verdict(candidate: Candidate, route: RouteExplanation): string {
  if (candidate.excluded !== null)
    return `passed over (${candidate.excluded})${candidate.detail ? `: ${candidate.detail}` : ''}`;
  const score = candidate.score === null ? '' : ` (score ${candidate.score.toPrecision(4)})`;
  if (route.replica?.id === candidate.id) return `chosen${score}`;
  return route.replica ? `eligible, lower score${score}` : `eligible${score}, but not used (see the decision)`;
}

/** A replica id as `replica list` shows it. */
function replicaId(text: string | undefined): number {
  if (text === undefined || !/^[1-9]\d{0,15}$/.test(text))
    throw new AppError(
      'VALIDATION_FAILED',
      `ID must be a replica id as replica list shows it, got ${JSON.stringify(text)}`,
    );
  return Number(text);
}

/** A whole number as an option value (the service checks the range). */
function wholeNumber(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d{1,16}$/.test(value.trim()))
    throw new AppError('VALIDATION_FAILED', `${option} must be a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

function describeReplica(r: ReplicaView): string {
  return (
    `replica ${r.id} ${r.publicUrl} (site ${r.site}): ${stateText(r)}; ` +
    `${r.enabled ? 'enabled' : 'disabled'}, weight ${r.weight}`
  );
}

function stateText(r: ReplicaView): string {
  return r.reason === null ? r.state : `${r.state} (${r.reason})`;
}

export const replicaCommand = defineCommand({
  summary: 'list the replicas that report to this mirror; enable, disable, weigh, check or forget one',
  usage: REPLICA_USAGE,
  subcommands: ['list', 'update', 'enable', 'disable', 'check', 'forget'],
  options: { ...JSON_FLAG, enabled: STRING, weight: STRING },
  async run(ctx, { values, positionals, subcommand: name }) {
    if (name !== 'update') refuseOptions(values, ['enabled', 'weight'], `replica ${name}`);
    if (name === 'list') {
      if (positionals.length) throw new AppError('USAGE', 'replica list takes no arguments');
    } else if (positionals.length !== 1) throw new AppError('USAGE', `replica ${name} takes exactly one ID`);
    const changes = {
      enabled: name === 'enable' ? true : name === 'disable' ? false : onOff(values.enabled, '--enabled'),
      weight: wholeNumber(values.weight, '--weight'),
    };
    if (name === 'update' && changes.enabled === undefined && changes.weight === undefined)
      throw new AppError('USAGE', 'replica update needs --enabled on|off or --weight N');
    const id = name === 'list' ? 0 : replicaId(positionals[0]);

    return ctx.withRuntime(async (runtime) => {
      if (name === 'list') {
        const replicas = await listReplicas(runtime);
        if (values.json) return printJson(replicas);
        if (!replicas.length) {
          return printLine(
            'no replicas yet; a replica is listed after its first heartbeat ' +
              '(it runs with MIRROR_SYNC_FROM, MIRROR_SYNC_TOKEN, MIRROR_SITE and MIRROR_PUBLIC_URL)',
          );
        }
        return printLine(
          table([
            [
              'ID',
              'URL',
              'SITE',
              'VERSION',
              'WEIGHT',
              'LAST HEARTBEAT',
              'LAST SYNC',
              'LAST CHECK',
              'VERIFIED',
              'LACKS',
              'STATE',
            ],
            ...replicas.map((r) => [
              String(r.id),
              r.publicUrl,
              r.site,
              r.version,
              String(r.weight),
              r.lastHeartbeatAt,
              r.lastSyncAt ?? 'never',
              r.lastCheckAt ?? 'never',
              String(r.verified),
              String(r.lacks.length),
              stateText(r),
            ]),
          ]),
        );
      }
      if (name === 'forget') {
        const replica = await getReplica(runtime, id);
        await deleteReplica(runtime, cliActor, id);
        if (values.json) return printJson({ forgotten: replica });
        return printLine(
          `forgot replica ${id} ${replica.publicUrl}; if it still runs, its next heartbeat lists it again ` +
            '(disable it to keep Macs away from it)',
        );
      }
      if (name === 'check') {
        const before = await getReplica(runtime, id);
        if (!before.enabled)
          throw new AppError(
            'CONFLICT',
            `replica ${id} is disabled; enable it first (goldmirror replica enable ${id})`,
          );
        // The verdict is the output; the server's log of the state change is for the server's own log.
        const log = runtime.log.level === 'silent' ? runtime.log : runtime.log.child({}, { level: 'error' });
        const deps = probeDeps({ ...runtime, log });
        const result = await probeReplica(deps, id);
        if (!result) throw new AppError('NOT_FOUND', `no enabled replica with id ${id} (it changed meanwhile)`);
        const replica = await getReplica(runtime, id);
        if (values.json) printJson({ ...result, replica });
        else {
          printLine(
            `check of replica ${id} ${replica.publicUrl}: ${result.ok ? 'passed' : 'failed'}: ${result.detail}`,
          );
          printLine(`state now: ${stateText(replica)}`);
        }
        if (!result.ok && !values.json)
          process.stderr.write(`goldmirror: replica ${id} failed its check; no Mac is sent to it until it passes\n`);
        return result.ok ? 0 : 1;
      }
      const replica = await updateReplica(runtime, cliActor, id, changes);
      return values.json ? printJson(replica) : printLine(describeReplica(replica));
    });
  },
});
