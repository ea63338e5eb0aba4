/**
 * A replica's side of sites: between syncs (from every serving process, so a
 * restarted one speaks at once), and right after each sync (the leader), it
 * tells its primary (MIRROR_SYNC_FROM) where its site's Macs reach it
 * (MIRROR_PUBLIC_URL), which site it serves (MIRROR_SITE), its version, and
 * the packages its own checks have verified. A package its check finds
 * corrupt drops out of the next heartbeat by itself (its state is no longer ok).
 */
import type { Config } from '../../config/load.js';
import type { OutboundFetch } from '../net/outbound.js';
import { AppError } from '../errors.js';
import { readCapped } from '../links.js';
import type { DbDeps } from '../services/deps.js';
import { verifiedPackages, type HeartbeatAnswer } from '../services/replicas.js';
import { getMirrorId } from '../db/repos/sites.js';
import { HOP_HEADER } from '../services/routing.js';
import { packageVersion } from '../version.js';
import type { CoreDeps } from '../app-deps.js';
import type { Clock } from '../services/deps.js';
import { every } from './scheduler.js';

export const HEARTBEAT_PATH = '/api/v1/replicas/heartbeat';

export interface HeartbeatDeps extends DbDeps {
  config: Pick<Config, 'syncFrom' | 'syncToken' | 'site' | 'publicUrl' | 'heartbeatIntervalMs'>;
  outbound: OutboundFetch;
}

/** Sends one heartbeat; resolves to the primary's answer, rejects with SOURCE_FAILED saying why it was not taken. */
export async function sendHeartbeat(
  deps: HeartbeatDeps,
  options: { syncedAt?: number | null; signal?: AbortSignal } = {},
): Promise<HeartbeatAnswer> {
  const { config } = deps;
  const base = config.syncFrom.replace(/\/+$/, '');
  const mirrorId = await getMirrorId(deps.db);
  const body = JSON.stringify({
    publicUrl: config.publicUrl,
    site: config.site,
    version: await packageVersion(),
    mirrorId,
    heartbeatMs: config.heartbeatIntervalMs,
    syncedAt: options.syncedAt ?? null,
    verified: await verifiedPackages(deps),
  });
  let res: Response;
  try {
    res = await deps.outbound(`${base}${HEARTBEAT_PATH}`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${config.syncToken}`,
        'Content-Type': 'application/json',
        [HOP_HEADER]: mirrorId,
      },
      body,
      redirect: 'manual',
      signal: AbortSignal.any([...(options.signal ? [options.signal] : []), AbortSignal.timeout(30_000)]),
    });
  } catch (err) {
    if (err instanceof AppError) throw err;
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new AppError('SOURCE_FAILED', `cannot reach the primary ${base}: ${cause}`);
  }
  const { bytes } = await readCapped(res, 1024 * 1024).catch(() => ({ bytes: Buffer.alloc(0) }));
  let answer: unknown;
  try {
    answer = JSON.parse(bytes.toString('utf8'));
  } catch {
    answer = null;
  }
  if (!res.ok) {
    const error = (answer as { error?: { code?: string; message?: string } } | null)?.error;
    throw new AppError(
      'SOURCE_FAILED',
      `the primary ${base} refused the heartbeat (HTTP ${res.status}${error?.code ? ` ${error.code}` : ''})${error?.message ? `: ${error.message}` : ''}`,
    );
  }
  return answer as HeartbeatAnswer;
}

/**
 * The heartbeats of one process of a replica (MIRROR_SITE with MIRROR_SYNC_FROM; nothing otherwise): every
 * MIRROR_HEARTBEAT_INTERVAL from the start (`start`), and one after each sync with its time (`afterSync`).
 * A failing primary is logged once per outage, not once per interval.
 */
export function createHeartbeats(
  runtime: Pick<CoreDeps, 'db' | 'clock' | 'config' | 'log' | 'ingestDeps'>,
  clock: Clock,
): { start(): { stop(): Promise<void> }; afterSync(at: number, signal: AbortSignal): Promise<void> } {
  const { db, config, log } = runtime;
  const isReplica = config.syncFrom !== '' && config.site !== '';
  const outbound = runtime.ingestDeps.outbound;
  let failing = false;
  let warnedSite = false;
  const beat = async (signal: AbortSignal, syncedAt: number | null): Promise<void> => {
    if (!isReplica || !outbound) return;
    let answer: HeartbeatAnswer;
    try {
      answer = await sendHeartbeat({ db, clock, config, outbound }, { syncedAt, signal });
    } catch (err) {
      if (signal.aborted) return;
      if (!failing) log.error({ err, primary: config.syncFrom }, 'heartbeat to the primary failed');
      failing = true;
      return;
    }
    if (failing) log.info({ primary: config.syncFrom }, 'heartbeat to the primary accepted again');
    failing = false;
    if (!answer.siteKnown && !warnedSite)
      log.warn(
        { site: config.site, primary: config.syncFrom },
        'the primary has no site of this name (MIRROR_SITE): no Mac is sent here until an admin creates it',
      );
    warnedSite = !answer.siteKnown;
  };
  return {
    start: () =>
      isReplica
        ? every(
            clock,
            config.heartbeatIntervalMs,
            (signal) => beat(signal, null),
            () => undefined,
            { atStart: true },
          )
        : { stop: () => Promise.resolve() },
    afterSync: (at, signal) => beat(signal, at),
  };
}
