/**
 * A replica's side of sites: between syncs, and right after each one, it
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
import { HOP_HEADER, mirrorIdOf } from '../services/routing.js';
import { packageVersion } from '../version.js';

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
  const mirrorId = await mirrorIdOf(deps)();
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
      signal: options.signal ?? AbortSignal.timeout(30_000),
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
