/**
 * Replicas as the primary knows them: each heartbeat (sync scope) says who a
 * replica is (its public URL, site, version, mirror id) and which packages
 * its own checks have verified; the probes (jobs/replica-checks.ts) say
 * whether it really serves them. Whether a replica may take a Mac right now
 * is `replicaState` below; routing.ts applies it per package.
 */
import { z } from 'zod';
import type { Sha256 } from '../../storage/digest.js';
import { listBlobs } from '../db/repos/blobs.js';
import {
  deleteReplicaRow,
  getMirrorId,
  getReplicaRow,
  listReplicaClaims,
  listReplicaRows,
  replaceReplicaBlobs,
  updateReplicaRow,
  upsertReplica,
  type ReplicaRow,
} from '../db/repos/sites.js';
import { AppError } from '../errors.js';
import { recordAudit, type Actor } from './audit.js';
import type { DbDeps } from './deps.js';
import { siteName } from './sites.js';
import { displayName, parseInput, sha256Field } from './validation.js';

/** A replica whose last heartbeat is older than this many of its intervals is taken out (state `stale`). */
export const STALE_HEARTBEATS = 3;
/** The most packages one heartbeat may claim (it must fit the API's 1 MiB body limit). */
export const MAX_CLAIMED_PACKAGES = 10_000;

export type ReplicaState = 'up' | 'pending' | 'stale' | 'down' | 'disabled';

/** A replica's state now: only `up` replicas are sent Macs. `reason` says why any other state holds. */
export function replicaState(
  row: Pick<ReplicaRow, 'enabled' | 'check_state' | 'check_detail' | 'last_heartbeat_at' | 'heartbeat_ms'>,
  now: number,
): { state: ReplicaState; reason: string | null } {
  if (row.enabled !== 1) return { state: 'disabled', reason: 'an admin disabled it' };
  if (row.check_state === 'down') return { state: 'down', reason: row.check_detail ?? 'its last check failed' };
  const silentMs = now - Number(row.last_heartbeat_at);
  if (silentMs > STALE_HEARTBEATS * Number(row.heartbeat_ms)) {
    return { state: 'stale', reason: `no heartbeat for ${Math.round(silentMs / 1000)} s` };
  }
  if (row.check_state === 'pending') return { state: 'pending', reason: 'not checked yet' };
  return { state: 'up', reason: null };
}

/** A public URL as replicas report it and the primary redirects to: http(s), no credentials, query or fragment. */
export const publicUrlField = z
  .string({ error: 'must be a string' })
  .trim()
  .max(500, 'must be at most 500 characters')
  .refine((v) => {
    try {
      const url = new URL(v);
      return (
        (url.protocol === 'http:' || url.protocol === 'https:') &&
        url.username === '' &&
        url.password === '' &&
        url.search === '' &&
        url.hash === ''
      );
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL without credentials, query or fragment')
  // The parsed spelling: what goes into a Location header has no CR/LF and no raw non-ASCII.
  .transform((v) => new URL(v).href.replace(/\/+$/, ''));

/** What a replica's heartbeat says (jobs/replica-heartbeat.ts sends it). */
export const heartbeatSchema = z
  .object({
    publicUrl: publicUrlField,
    site: siteName,
    version: displayName(64),
    mirrorId: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be 1-64 letters, digits or dashes'),
    heartbeatMs: z
      .number()
      .int()
      .min(1000)
      .max(24 * 60 * 60 * 1000),
    syncedAt: z.number().int().min(0).nullable().default(null),
    verified: z.array(sha256Field).max(MAX_CLAIMED_PACKAGES, `must list at most ${MAX_CLAIMED_PACKAGES} packages`),
  })
  .strict();

export type Heartbeat = z.input<typeof heartbeatSchema>;

export interface HeartbeatAnswer {
  replica: ReplicaView;
  /** False when no site of that name is defined here yet: no Mac is sent to the replica until one is. */
  siteKnown: boolean;
}

/** Records a heartbeat from the replica holding the sync token `tokenName`. */
export async function acceptHeartbeat(
  deps: DbDeps & { publicUrl: string },
  tokenName: string,
  input: unknown,
): Promise<{ answer: HeartbeatAnswer; replicaId: number; needsCheck: boolean }> {
  const beat = parseInput(heartbeatSchema, input, 'heartbeat');
  const ownId = await getMirrorId(deps.db);
  if (beat.mirrorId === ownId || (deps.publicUrl !== '' && sameOrigin(beat.publicUrl, deps.publicUrl))) {
    throw new AppError(
      'REPLICA_IS_SELF',
      `the heartbeat comes from this mirror itself (${beat.publicUrl}): MIRROR_SYNC_FROM of a replica must name another goldmirror, and its MIRROR_PUBLIC_URL its own address`,
    );
  }
  const now = deps.clock.now();
  const replicaId = await deps.db.transaction().execute(async (trx) => {
    const id = await upsertReplica(trx, {
      publicUrl: beat.publicUrl,
      site: beat.site,
      version: beat.version,
      mirrorId: beat.mirrorId,
      tokenName,
      heartbeatMs: beat.heartbeatMs,
      syncedAt: beat.syncedAt,
      now,
    });
    await replaceReplicaBlobs(trx, id, beat.verified);
    return id;
  });
  const view = await getReplica(deps, replicaId);
  const siteKnown =
    (await deps.db.selectFrom('sites').select('name').where('name', '=', beat.site).executeTakeFirst()) !== undefined;
  return {
    answer: { replica: view, siteKnown },
    replicaId,
    needsCheck: view.state !== 'up' && view.state !== 'disabled',
  };
}

/** Whether two URLs share scheme, host and port. */
export function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

export interface ReplicaView {
  id: number;
  publicUrl: string;
  site: string;
  version: string;
  state: ReplicaState;
  /** Why the state is not `up` (null when it is). */
  reason: string | null;
  enabled: boolean;
  weight: number;
  heartbeatIntervalMs: number;
  firstSeenAt: string;
  lastHeartbeatAt: string;
  lastSyncAt: string | null;
  lastCheckAt: string | null;
  lastCheck: string | null;
  /** Packages it reports as verified by its own checks. */
  verified: number;
  /** Packages this mirror holds that it does not (or whose copy failed a probe), by digest. */
  lacks: string[];
  /** Packages it claims whose bytes a probe found to differ from this mirror's. */
  badCopies: string[];
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());

export function listReplicas(deps: DbDeps): Promise<ReplicaView[]> {
  return replicaViews(deps);
}

/** Every replica, or only the one with id `only` (each heartbeat reads its own replica, not all of them). */
async function replicaViews(deps: DbDeps, only?: number): Promise<ReplicaView[]> {
  const [rows, claims, blobs] = await Promise.all([
    only === undefined ? listReplicaRows(deps.db) : getReplicaRow(deps.db, only).then((row) => (row ? [row] : [])),
    listReplicaClaims(deps.db, only),
    listBlobs(deps.db),
  ]);
  const ours = blobs.filter((b) => b.state === 'ok').map((b) => b.sha256);
  const claimsOf = new Map<number, typeof claims>();
  for (const claim of claims) {
    const list = claimsOf.get(claim.replica_id);
    if (list) list.push(claim);
    else claimsOf.set(claim.replica_id, [claim]);
  }
  const now = deps.clock.now();
  return rows.map((row) => {
    const mine = claimsOf.get(row.id) ?? [];
    const good = new Set(mine.filter((c) => c.bad === 0).map((c) => c.sha256));
    const { state, reason } = replicaState(row, now);
    return {
      id: row.id,
      publicUrl: row.public_url,
      site: row.site,
      version: row.version,
      state,
      reason,
      enabled: row.enabled === 1,
      weight: row.weight,
      heartbeatIntervalMs: Number(row.heartbeat_ms),
      firstSeenAt: iso(row.first_seen_at)!,
      lastHeartbeatAt: iso(row.last_heartbeat_at)!,
      lastSyncAt: iso(row.last_sync_at),
      lastCheckAt: iso(row.checked_at),
      lastCheck: row.check_state === 'pending' ? null : (row.check_detail ?? 'passed'),
      verified: mine.length,
      lacks: ours.filter((sha) => !good.has(sha)),
      badCopies: mine.filter((c) => c.bad === 1).map((c) => c.sha256),
    };
  });
}

export async function getReplica(deps: DbDeps, id: number): Promise<ReplicaView> {
  const [view] = await replicaViews(deps, id);
  if (!view) throw new AppError('NOT_FOUND', `no replica with id ${id}`);
  return view;
}

/** An admin's changes to a replica. */
export const replicaChanges = z
  .object({
    enabled: z.boolean({ error: 'must be true or false' }).optional(),
    weight: z
      .number({ error: 'must be a number' })
      .int('must be a whole number')
      .min(1, 'must be from 1 to 1000')
      .max(1000, 'must be from 1 to 1000')
      .optional(),
  })
  .strict();

/** An admin's switches: `enabled` false takes the replica out of every decision; `weight` shares Macs among a site's replicas. */
export async function updateReplica(deps: DbDeps, actor: Actor, id: number, input: unknown): Promise<ReplicaView> {
  const row = await getReplicaRow(deps.db, id);
  if (!row) throw new AppError('NOT_FOUND', `no replica with id ${id}`);
  const changes = parseInput(replicaChanges, input, 'replica');
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await updateReplicaRow(trx, id, {
      ...(changes.enabled !== undefined ? { enabled: changes.enabled ? 1 : 0 } : {}),
      ...(changes.weight !== undefined ? { weight: changes.weight } : {}),
    });
    await recordAudit(trx, {
      actor,
      action: 'replica.update',
      target: `replica:${row.public_url}`,
      at: now,
      details: changes,
    });
  });
  return getReplica(deps, id);
}

/** Forgets a replica (one that moved or was retired); a replica still running reappears with its next heartbeat. */
export async function deleteReplica(deps: DbDeps, actor: Actor, id: number): Promise<void> {
  const row = await getReplicaRow(deps.db, id);
  if (!row) throw new AppError('NOT_FOUND', `no replica with id ${id}`);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await deleteReplicaRow(trx, id);
    await recordAudit(trx, {
      actor,
      action: 'replica.delete',
      target: `replica:${row.public_url}`,
      at: now,
      details: {},
    });
  });
}

/** The packages this mirror itself reports as verified, for its own heartbeat (as a replica). */
export async function verifiedPackages(deps: Pick<DbDeps, 'db'>): Promise<Sha256[]> {
  const rows = await listBlobs(deps.db);
  return rows
    .filter((b) => b.state === 'ok')
    .slice(0, MAX_CLAIMED_PACKAGES)
    .map((b) => b.sha256 as Sha256);
}
