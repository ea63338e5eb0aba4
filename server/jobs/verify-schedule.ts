/** The verify scheduler's step: hands the blobs that are due (services/verify-due.ts) to the checker, a few at a time. */
import type { Sha256 } from '../../storage/digest.js';
import type { DbDeps } from '../services/deps.js';
import { dueForVerification } from '../services/verify-due.js';
import type { IntegrityChecker } from './integrity-checker.js';

/** One scheduler step: queue due blobs, keeping at most `concurrency` checks waiting. */
export async function queueDueChecks(deps: DbDeps, checker: IntegrityChecker, intervalMs: number): Promise<Sha256[]> {
  const status = checker.status();
  const room = Math.max(0, status.concurrency * 2 - status.running.length - status.queued.length);
  if (room === 0) return [];
  const due = (await dueForVerification(deps, intervalMs, room + status.running.length + status.queued.length)).filter(
    (sha) => !checker.isBusyWith(sha),
  );
  const queued = due.slice(0, room);
  for (const sha of queued) void checker.check(sha).catch(() => undefined);
  return queued;
}
