/**
 * Sites: a name and the client networks of one office. The primary sends a
 * Mac whose address lies in a site's networks to a healthy replica of that
 * site (services/routing.ts); the most specific network holding the address
 * wins, so one network may appear in one site only.
 */
import { z } from 'zod';
import {
  deleteSiteRow,
  getSiteRow,
  insertSiteRow,
  listSiteRows,
  updateSiteRow,
  type SiteRow,
} from '../db/repos/sites.js';
import { AppError } from '../errors.js';
import { recordAudit, type Actor } from './audit.js';
import type { DbDeps } from './deps.js';
import { parseNetwork, type Network } from './networks.js';
import { guardConstraints, parseInput } from './validation.js';

/** Site names are what replicas say in MIRROR_SITE: plain, lower-case, safe in URLs and labels. */
export const SITE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_NETWORKS = 256;

export const siteName = z
  .string({ error: 'must be a string' })
  .trim()
  .regex(SITE_NAME, 'must be 1-64 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit')
  // GET /api/v1/sites/route explains a decision: a site of that name could not be read there.
  .refine((v) => v !== 'route', 'must not be "route" (the API uses that path)');

const networkList = z
  .array(z.string({ error: 'must be a string' }).trim().max(100, 'must be at most 100 characters'), {
    error: 'must be a list of CIDR blocks',
  })
  .min(1, 'must name at least one network (e.g. 10.2.0.0/16)')
  .max(MAX_NETWORKS, `must hold at most ${MAX_NETWORKS} networks`)
  .superRefine((entries, ctx) => {
    for (const entry of entries) {
      const network = parseNetwork(entry);
      if (typeof network === 'string') ctx.addIssue({ code: 'custom', message: network });
    }
  });

/** A new site: its name, networks (CIDR blocks, one host as a bare address) and whether its Macs are redirected. */
export const siteInput = z
  .object({
    name: siteName,
    networks: networkList,
    redirects: z.boolean({ error: 'must be true or false' }).optional(),
  })
  .strict();
/** A site's changes: a new list of networks (replacing the old), the redirect switch, or both. */
export const siteChanges = z
  .object({ networks: networkList.optional(), redirects: z.boolean({ error: 'must be true or false' }).optional() })
  .strict();

/** Validated entries in their canonical spelling, each once. */
function canonical(entries: readonly string[]): Network[] {
  const networks: Network[] = [];
  for (const entry of entries) {
    const network = parseNetwork(entry);
    if (typeof network !== 'string' && !networks.some((n) => n.text === network.text)) networks.push(network);
  }
  return networks;
}

export interface SiteView {
  name: string;
  networks: string[];
  /** False when an admin switched the site's redirects off: its Macs are served by this mirror. */
  redirects: boolean;
  createdAt: string;
  updatedAt: string;
}

export function toSiteView(row: SiteRow): SiteView {
  return {
    name: row.name,
    networks: siteNetworks(row).map((n) => n.text),
    redirects: row.redirects === 1,
    createdAt: new Date(Number(row.created_at)).toISOString(),
    updatedAt: new Date(Number(row.updated_at)).toISOString(),
  };
}

/** The networks a stored row holds (validated when written). */
export function siteNetworks(row: Pick<SiteRow, 'networks'>): Network[] {
  const texts = JSON.parse(row.networks) as string[];
  return texts.map((text) => parseNetwork(text)).filter((n): n is Network => typeof n !== 'string');
}

export async function listSites(deps: DbDeps): Promise<SiteView[]> {
  return (await listSiteRows(deps.db)).map(toSiteView);
}

export async function getSite(deps: DbDeps, name: string): Promise<SiteView> {
  return toSiteView(await siteOrThrow(deps, name));
}

async function siteOrThrow(deps: DbDeps, name: string): Promise<SiteRow> {
  const row = await getSiteRow(deps.db, name.trim());
  if (!row) throw new AppError('NOT_FOUND', `no site named ${JSON.stringify(name)}`);
  return row;
}

/** A network another site already has: the most-specific rule could not choose between them. */
async function refuseTakenNetworks(deps: DbDeps, site: string, networks: Network[]): Promise<void> {
  for (const other of await listSiteRows(deps.db)) {
    if (other.name === site) continue;
    const taken = siteNetworks(other).find((n) => networks.some((m) => m.text === n.text));
    if (taken) {
      throw new AppError(
        'NETWORK_TAKEN',
        `the network ${taken.text} belongs to site ${JSON.stringify(other.name)} already`,
        {
          network: taken.text,
          site: other.name,
        },
      );
    }
  }
}

export async function createSite(deps: DbDeps, actor: Actor, input: unknown): Promise<SiteView> {
  const parsed = parseInput(siteInput, input, 'site');
  const site = { name: parsed.name, networks: canonical(parsed.networks), redirects: parsed.redirects ?? true };
  if (await getSiteRow(deps.db, site.name)) {
    throw new AppError('NAME_TAKEN', `a site named ${JSON.stringify(site.name)} already exists`);
  }
  await refuseTakenNetworks(deps, site.name, site.networks);
  const now = deps.clock.now();
  const networks = JSON.stringify(site.networks.map((n) => n.text));
  await guardConstraints(
    () =>
      deps.db.transaction().execute(async (trx) => {
        await insertSiteRow(trx, {
          name: site.name,
          networks,
          redirects: site.redirects ? 1 : 0,
          created_at: now,
          updated_at: now,
        });
        await recordAudit(trx, {
          actor,
          action: 'site.create',
          target: `site:${site.name}`,
          at: now,
          details: { networks: site.networks.map((n) => n.text), redirects: site.redirects },
        });
      }),
    () => new AppError('NAME_TAKEN', `a site named ${JSON.stringify(site.name)} already exists`),
  );
  return getSite(deps, site.name);
}

export async function updateSite(deps: DbDeps, actor: Actor, name: string, input: unknown): Promise<SiteView> {
  const row = await siteOrThrow(deps, name);
  const parsed = parseInput(siteChanges, input, 'site');
  const changes = { networks: parsed.networks && canonical(parsed.networks), redirects: parsed.redirects };
  if (changes.networks) await refuseTakenNetworks(deps, row.name, changes.networks);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await updateSiteRow(trx, row.name, {
      ...(changes.networks ? { networks: JSON.stringify(changes.networks.map((n) => n.text)) } : {}),
      ...(changes.redirects !== undefined ? { redirects: changes.redirects ? 1 : 0 } : {}),
      updated_at: now,
    });
    await recordAudit(trx, {
      actor,
      action: 'site.update',
      target: `site:${row.name}`,
      at: now,
      details: {
        ...(changes.networks ? { networks: changes.networks.map((n) => n.text) } : {}),
        ...(changes.redirects !== undefined ? { redirects: changes.redirects } : {}),
      },
    });
  });
  return getSite(deps, row.name);
}

/** Deletes a site; its replicas stay listed (they still report it) but no Mac is sent to them. */
export async function deleteSite(deps: DbDeps, actor: Actor, name: string): Promise<void> {
  const row = await siteOrThrow(deps, name);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await deleteSiteRow(trx, row.name);
    await recordAudit(trx, { actor, action: 'site.delete', target: `site:${row.name}`, at: now, details: {} });
  });
}
