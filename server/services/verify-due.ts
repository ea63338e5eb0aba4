/**
 * Which blobs are due for their periodic re-hash. Each blob is due once per
 * interval after its last check, shifted by a fixed per-blob offset of up to
 * a tenth of the interval, so blobs ingested together do not all come due
 * together. Corrupt and missing blobs are not re-checked: re-importing is the cure.
 */
import type { Sha256 } from '../../storage/digest.js';
import { listVerifyCandidates } from '../db/repos/blobs.js';
import type { DbDeps } from './deps.js';

/** Up to `limit` blobs due now (by the deps' clock), least recently verified first. */
export async function dueForVerification(deps: DbDeps, intervalMs: number, limit: number): Promise<Sha256[]> {
  const nowMs = deps.clock.now();
  // Coarse filter in the query, exact per-blob offset in code.
  const rows = await listVerifyCandidates(deps.db, nowMs - Math.floor(intervalMs * 0.9), limit * 4);
  return rows
    .filter((r) => (r.verified_at ?? r.created_at - intervalMs) + dueAfter(r.sha256, intervalMs) <= nowMs)
    .slice(0, limit)
    .map((r) => r.sha256 as Sha256);
}

/** Interval × (0.9 … 1.0), fixed per digest. */
export function dueAfter(sha256: string, intervalMs: number): number {
  const fraction = parseInt(sha256.slice(0, 8), 16) / 0xffffffff;
  return Math.floor(intervalMs * (0.9 + 0.1 * fraction));
}
