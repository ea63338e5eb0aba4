/**
 * Readiness: a terse verdict for anyone (the container HEALTHCHECK, load
 * balancers: /healthz) and the full report for admins (GET /api/v1/health),
 * because free bytes and database error text help an attacker more than a
 * stranger needs them.
 */
import fs from 'node:fs/promises';
import type { BlobStore } from '../../storage/blob-store.js';
import { pingDatabase } from '../db/repos/database.js';
import type { ServiceDeps } from './deps.js';
import { isError } from '../errors.js';

/** Why the mirror is unhealthy, as a stable code; the first failing check wins. */
export type HealthReason =
  'DB_UNAVAILABLE' | 'STORAGE_UNAVAILABLE' | 'DATA_DIR_UNWRITABLE' | 'DISK_LOW' | 'DISK_UNKNOWN';

/** A bucket's answer is reused this long, so every balancer and node checking often costs the bucket little. */
const BUCKET_PROBE_TTL_MS = 5_000;
/** A bucket silent this long counts as down (the S3 client alone would retry for far longer). */
const BUCKET_PROBE_TIMEOUT_MS = 3_000;

export interface HealthReport {
  ok: boolean;
  reason: HealthReason | null;
  /** `storage` only with a bucket (MIRROR_STORAGE=s3); `dataDir` and `disk` are the local data directory's. */
  checks: { database: string; storage?: string; dataDir: string; disk: string };
  freeBytes: number | null;
  minFreeBytes: number;
}

/** What /healthz may tell a stranger. */
export interface PublicHealth {
  status: 'ok' | 'unhealthy';
  reason: HealthReason | null;
}

export async function checkHealth(
  deps: Pick<ServiceDeps, 'db' | 'store'> & { minFreeBytes: number },
): Promise<HealthReport> {
  const checks: HealthReport['checks'] = { database: 'ok', dataDir: 'ok', disk: 'ok' };
  const reasons: HealthReason[] = [];
  let freeBytes: number | null = null;
  try {
    await pingDatabase(deps.db);
  } catch (err) {
    // The admins' report names the driver's own reason, which the error carries as its cause.
    const reason = isError(err) && err.cause instanceof Error ? err.cause.message : (err as Error).message;
    if (isError(err, 'DATABASE_BUSY')) {
      // Every connection is in use: the node is loaded, not broken; a load balancer should keep sending to it.
      checks.database = `busy: ${reason}`;
    } else {
      checks.database = `unreachable: ${reason}`;
      reasons.push('DB_UNAVAILABLE');
    }
  }
  if (deps.store.kind === 's3') {
    const failure = await bucketFailure(deps.store);
    checks.storage = failure ?? 'ok';
    if (failure) reasons.push('STORAGE_UNAVAILABLE');
  }
  try {
    await fs.access(deps.store.layout.tmpDir, fs.constants.W_OK);
  } catch (err) {
    checks.dataDir = `not writable: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
    reasons.push('DATA_DIR_UNWRITABLE');
  }
  try {
    freeBytes = (await deps.store.diskUsage()).freeBytes;
    if (freeBytes < deps.minFreeBytes) {
      checks.disk = `low: ${freeBytes} bytes free, minimum ${deps.minFreeBytes}`;
      reasons.push('DISK_LOW');
    }
  } catch (err) {
    checks.disk = `unknown: ${(err as Error).message}`;
    reasons.push('DISK_UNKNOWN');
  }
  return { ok: reasons.length === 0, reason: reasons[0] ?? null, checks, freeBytes, minFreeBytes: deps.minFreeBytes };
}

export function publicHealth(report: HealthReport): PublicHealth {
  return { status: report.ok ? 'ok' : 'unhealthy', reason: report.reason };
}

const bucketProbes = new WeakMap<BlobStore, { at: number; failure: Promise<string | null> }>();

/** Why the bucket does not answer (null: it does), probed at most once per BUCKET_PROBE_TTL_MS per store. */
function bucketFailure(store: BlobStore): Promise<string | null> {
  const now = performance.now();
  const cached = bucketProbes.get(store);
  if (cached && now - cached.at < BUCKET_PROBE_TTL_MS) return cached.failure;
  const failure = (async () => {
    try {
      await store.checkBucket?.({ write: false, signal: AbortSignal.timeout(BUCKET_PROBE_TIMEOUT_MS) });
      return null;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  })();
  bucketProbes.set(store, { at: now, failure });
  return failure;
}
