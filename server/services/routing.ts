/**
 * Where a Mac's download goes: the primary answers `GET /d/<sha256>/<name>`
 * with a 302 to the same path on a replica of the Mac's site when one is up
 * and holds a verified copy of that package, and serves it itself otherwise.
 *
 * The choice among a site's eligible replicas is weighted rendezvous
 * hashing on the client address: every process computes the same answer
 * from the same rows without sharing any state, a client keeps its replica
 * for as long as that replica stays eligible (a resumed download goes back to
 * it), and a replica joining or leaving moves only its own share of clients.
 * Content-addressed links make a move harmless anyway: the same path means
 * the same bytes and the same ETag on every node.
 */
import { createHash } from 'node:crypto';
import type { Sha256 } from '../../storage/digest.js';
import { findBlob } from '../db/repos/blobs.js';
import { getMirrorId, listReplicaClaims, listReplicaRows, listSiteRows, type ReplicaRow } from '../db/repos/sites.js';
import { canonicalAddress } from '../http/client-address.js';
import { downloadUrl } from '../links.js';
import type { DbDeps } from './deps.js';
import { networkMatcher } from './networks.js';
import { replicaState, sameOrigin, type ReplicaState } from './replicas.js';
import { resolvePublicAddress } from './settings.js';
import { siteNetworks } from './sites.js';

/**
 * Sent by goldmirror on its own requests to other mirrors (probes, sync); a `/d/` request carrying it is
 * never redirected, and the answer names the mirror that gave it (MIRROR_ID_HEADER), so a replica URL
 * that leads back to the primary itself is recognised.
 */
export const HOP_HEADER = 'goldmirror-hop';
export const MIRROR_ID_HEADER = 'goldmirror-mirror';

/** What the routing decision reads, loaded in one go. */
export interface RoutingTable {
  loadedAt: number;
  sites: Map<string, { name: string; redirects: boolean }>;
  matcher: ReturnType<typeof networkMatcher<string>>;
  replicas: ReplicaRow[];
  /** Per package, the replicas claiming a verified copy, and whether a probe found that copy bad. */
  claims: Map<string, Map<number, boolean>>;
  /** This mirror's public address as stored in the settings ('' when none): MIRROR_PUBLIC_URL may be unset. */
  storedPublicUrl: string;
}

export async function loadRoutingTable(deps: DbDeps): Promise<RoutingTable> {
  const [sites, replicas, claims, address] = await Promise.all([
    listSiteRows(deps.db),
    listReplicaRows(deps.db),
    listReplicaClaims(deps.db),
    resolvePublicAddress({ db: deps.db, config: { publicUrl: '' } }),
  ]);
  const byPackage = new Map<string, Map<number, boolean>>();
  for (const claim of claims) {
    let holders = byPackage.get(claim.sha256);
    if (!holders) byPackage.set(claim.sha256, (holders = new Map<number, boolean>()));
    holders.set(claim.replica_id, claim.bad === 1);
  }
  return {
    loadedAt: deps.clock.now(),
    sites: new Map(sites.map((s) => [s.name, { name: s.name, redirects: s.redirects === 1 }])),
    matcher: networkMatcher(sites.flatMap((s) => siteNetworks(s).map((network) => ({ network, value: s.name })))),
    replicas,
    claims: byPackage,
    storedPublicUrl: address.stored ?? '',
  };
}

export type Exclusion =
  'disabled' | 'down' | 'stale' | 'pending' | 'lacks-package' | 'bad-copy' | 'self' | 'other-site';

export interface Candidate {
  id: number;
  publicUrl: string;
  site: string;
  state: ReplicaState;
  weight: number;
  /** Why this replica may not take the download (null: it may). */
  excluded: Exclusion | null;
  detail: string | null;
  /** Its rendezvous score for this client (higher wins); null when excluded. */
  score: number | null;
}

export interface RouteDecision {
  client: string;
  /** The client's site; null when no site's networks hold its address. */
  site: string | null;
  /** The network of that site that matched (the most specific one). */
  network: string | null;
  /** Where the download goes: a replica's URL for the same path, or null (this mirror serves it). */
  replica: { id: number; publicUrl: string } | null;
  /** Why this mirror serves it, when it does. */
  reason: string | null;
  /** Every replica of the client's site, each with the reason it was passed over. */
  candidates: Candidate[];
}

export interface RouteQuery {
  client: string;
  sha256: Sha256;
  now: number;
  /** This mirror's public URL (MIRROR_PUBLIC_URL; '' falls back to the stored setting): a replica at the same origin is this mirror itself. */
  ownUrl: string;
}

/** The decision for one client and package (rules in the module comment; the caller checked the request kind). */
export function decideRoute(table: RoutingTable, query: RouteQuery): RouteDecision {
  const client = canonicalAddress(query.client) || query.client;
  const ownUrl = query.ownUrl || table.storedPublicUrl;
  const match = table.matcher.match(client);
  const local = (reason: string, candidates: Candidate[] = []): RouteDecision => ({
    client,
    site: match?.value ?? null,
    network: match?.network.text ?? null,
    replica: null,
    reason,
    candidates,
  });
  if (!match) return local(table.sites.size === 0 ? 'no site is defined' : 'the client is in no site');
  const site = table.sites.get(match.value)!;
  const holders = table.claims.get(query.sha256);
  // Heartbeats as of the rows' reading: one a replica sent since then is not in them.
  const asOf = Math.min(query.now, table.loadedAt);
  const candidates: Candidate[] = table.replicas
    .filter((r) => r.site === site.name)
    .map((r) => {
      const { state, reason } = replicaState(r, asOf);
      const base = { id: r.id, publicUrl: r.public_url, site: r.site, state, weight: r.weight, score: null };
      if (ownUrl !== '' && sameOrigin(r.public_url, ownUrl))
        return { ...base, excluded: 'self' as const, detail: 'its URL leads back to this mirror' };
      if (state !== 'up') return { ...base, excluded: state, detail: reason };
      if (!holders?.has(r.id))
        return { ...base, excluded: 'lacks-package' as const, detail: 'it does not report a verified copy' };
      if (holders.get(r.id))
        return { ...base, excluded: 'bad-copy' as const, detail: "a check read other bytes than this mirror's" };
      return { ...base, excluded: null, detail: null, score: rendezvousScore(client, r.public_url, r.weight) };
    });
  if (!site.redirects) return local(`redirects of site ${site.name} are switched off`, candidates);
  let best: Candidate | null = null;
  for (const c of candidates) if (c.score !== null && (best === null || c.score > best.score!)) best = c;
  if (!best) {
    return local(
      candidates.length === 0
        ? `site ${site.name} has no replica`
        : `no replica of site ${site.name} is up with a verified copy`,
      candidates,
    );
  }
  return {
    client,
    site: site.name,
    network: match.network.text,
    replica: { id: best.id, publicUrl: best.publicUrl },
    reason: null,
    candidates,
  };
}

/** Weighted rendezvous (highest random weight): -weight / ln(u), u uniform in (0, 1) from a hash of both names. */
function rendezvousScore(client: string, replica: string, weight: number): number {
  const digest = createHash('sha256').update(`${client}\n${replica}`).digest();
  const u = (Number(digest.readBigUInt64BE(0) >> 11n) + 0.5) / 2 ** 53;
  return -weight / Math.log(u);
}

/** The decision with fresh rows, for the explain route (an admin asks why). */
export async function explainRoute(
  deps: DbDeps & { ownUrl: string; redirects: boolean; isReplica: boolean },
  client: string,
  sha256: Sha256,
): Promise<RouteDecision & { packageStored: boolean; location: string | null }> {
  const table = await loadRoutingTable(deps);
  const decision = decideRoute(table, { client, sha256, now: deps.clock.now(), ownUrl: deps.ownUrl });
  const blob = await findBlob(deps.db, sha256);
  const packageStored = blob?.state === 'ok';
  const forced = !deps.redirects
    ? 'redirects are switched off (MIRROR_REDIRECTS=off)'
    : deps.isReplica
      ? 'this mirror is a replica (MIRROR_SYNC_FROM): replicas never redirect'
      : !packageStored
        ? 'this mirror does not hold a verified copy of the package'
        : null;
  if (forced) return { ...decision, replica: null, reason: forced, packageStored, location: null };
  const name = blob!.name || `${sha256}.pvmp`;
  const location = decision.replica ? downloadUrl(decision.replica.publicUrl, sha256, name) : null;
  return { ...decision, packageStored, location };
}

/** This mirror's id, read once per process (it never changes). */
export function mirrorIdOf(deps: Pick<DbDeps, 'db'>): () => Promise<string> {
  let id: Promise<string> | null = null;
  return () =>
    (id ??= getMirrorId(deps.db).catch((err: unknown) => {
      id = null;
      throw err;
    }));
}

/** How long a process routes with the rows it read before reading them again. */
export const ROUTING_TABLE_TTL_MS = 2_000;

/**
 * The routing table of one process, read again when it is ROUTING_TABLE_TTL_MS old (concurrent requests share
 * one read). When the database cannot be read, the last table is used rather than failing a download.
 */
export function createRouter(
  deps: DbDeps,
  onError: (err: unknown) => void,
): {
  table(): Promise<RoutingTable>;
  current(): RoutingTable | null;
} {
  let table: RoutingTable | null = null;
  let loading: Promise<RoutingTable> | null = null;
  const load = (): Promise<RoutingTable> =>
    (loading ??= loadRoutingTable(deps)
      .then((next) => (table = next))
      .finally(() => {
        loading = null;
      }));
  return {
    async table() {
      if (table && deps.clock.now() - table.loadedAt < ROUTING_TABLE_TTL_MS) return table;
      try {
        return await load();
      } catch (err) {
        if (!table) throw err;
        onError(err);
        return table;
      }
    },
    current: () => table,
  };
}
