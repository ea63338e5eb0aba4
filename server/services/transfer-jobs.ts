/**
 * Pull jobs as rows every process sees: the process running a job (its
 * holder) writes progress and a heartbeat about once a second and stops
 * when a cancel is flagged; any process lists them and cancels one. A job
 * whose holder stopped writing (the process died) is ended as interrupted
 * the next time anyone looks, instead of showing "running" forever.
 */
import {
  beatTransferJob,
  cancelQueuedTransferJob,
  endTransferJob,
  failStaleTransferJobs,
  getTransferJob,
  insertTransferJob,
  listTransferJobs,
  markTransferRunning,
  pruneEndedTransferJobs,
  requestTransferCancel,
  type TransferJobRow,
} from '../db/repos/transfer-jobs.js';
import type { TransferJobState } from '../db/schema.js';
import type { DbDeps } from './deps.js';

/** A job whose holder has not written for this long is taken as interrupted (its process died or hangs). */
export const TRANSFER_STALE_MS = 30_000;
/** Ended jobs kept for the list. */
const KEEP_ENDED = 50;

export interface TransferJob {
  id: string;
  url: string;
  state: TransferJobState;
  bytesDone: number;
  totalBytes: number | null;
  startedAt: string;
  finishedAt: string | null;
  sha256: string | null;
  error: { code: string; message: string } | null;
}

export interface JobError {
  code: string;
  message: string;
}

const UNFINISHED: readonly TransferJobState[] = ['queued', 'running'];

function viewOf(row: TransferJobRow): TransferJob {
  return {
    id: row.id,
    url: row.source_url,
    state: row.state,
    bytesDone: Number(row.bytes_done),
    totalBytes: row.total_bytes === null ? null : Number(row.total_bytes),
    startedAt: new Date(Number(row.created_at)).toISOString(),
    finishedAt: row.finished_at === null ? null : new Date(Number(row.finished_at)).toISOString(),
    sha256: row.sha256,
    error: row.error_code === null ? null : { code: row.error_code, message: row.error_message ?? '' },
  };
}

export async function createTransferJob(deps: DbDeps, job: { id: string; url: string; holder: string }): Promise<void> {
  await insertTransferJob(deps.db, { id: job.id, sourceUrl: job.url, holder: job.holder, now: deps.clock.now() });
}

/** Its holder starts a queued job; false when it was cancelled meanwhile. */
export function startTransferJob(deps: DbDeps, id: string, holder: string): Promise<boolean> {
  return markTransferRunning(deps.db, id, holder, deps.clock.now());
}

/** The holder's heartbeat; undefined when the job is no longer its own to run (ended elsewhere). */
export function beatTransfer(
  deps: DbDeps,
  id: string,
  holder: string,
  progress: { bytesDone: number; totalBytes: number | null },
): Promise<{ cancelRequested: boolean } | undefined> {
  return beatTransferJob(deps.db, id, holder, { ...progress, now: deps.clock.now() });
}

export async function endTransfer(
  deps: DbDeps,
  id: string,
  holder: string,
  end: {
    state: 'done' | 'failed' | 'cancelled';
    sha256: string | null;
    error: JobError | null;
    bytesDone: number;
    totalBytes: number | null;
  },
): Promise<void> {
  await endTransferJob(deps.db, id, holder, {
    state: end.state,
    sha256: end.sha256,
    error_code: end.error?.code ?? null,
    error_message: end.error?.message ?? null,
    bytesDone: end.bytesDone,
    totalBytes: end.totalBytes,
    now: deps.clock.now(),
  });
  await pruneEndedTransferJobs(deps.db, KEEP_ENDED);
}

/**
 * Cancels from any process: a queued job ends at once ('ended'); a running one is flagged for its
 * holder, which stops within a heartbeat ('flagged'); false when it is not running or queued.
 */
export async function cancelTransfer(deps: DbDeps, id: string, reason: string): Promise<'ended' | 'flagged' | false> {
  const now = deps.clock.now();
  if (await cancelQueuedTransferJob(deps.db, id, { error_code: 'INTERNAL', error_message: reason, now }))
    return 'ended';
  return (await requestTransferCancel(deps.db, id)) ? 'flagged' : false;
}

/** Every job, oldest first; jobs of a holder gone silent are ended as interrupted first. `aliveIds`: the caller's own. */
export async function listTransfers(deps: DbDeps, aliveIds: readonly string[]): Promise<TransferJob[]> {
  let rows = await listTransferJobs(deps.db);
  if (await failStale(deps, rows, aliveIds)) rows = await listTransferJobs(deps.db);
  return rows.map(viewOf);
}

export async function getTransfer(
  deps: DbDeps,
  id: string,
  aliveIds: readonly string[],
): Promise<TransferJob | undefined> {
  let row = await getTransferJob(deps.db, id);
  if (row && (await failStale(deps, [row], aliveIds))) row = await getTransferJob(deps.db, id);
  return row && viewOf(row);
}

/** Ends the unfinished jobs among `rows` whose holder is silent; true when there were any. */
async function failStale(deps: DbDeps, rows: readonly TransferJobRow[], aliveIds: readonly string[]): Promise<boolean> {
  const now = deps.clock.now();
  const staleBefore = now - TRANSFER_STALE_MS;
  const stale = rows.some(
    (r) => UNFINISHED.includes(r.state) && Number(r.updated_at) < staleBefore && !aliveIds.includes(r.id),
  );
  if (!stale) return false;
  await failStaleTransferJobs(deps.db, staleBefore, aliveIds, {
    error_code: 'TRANSFER_INTERRUPTED',
    error_message: `interrupted: the server process running it stopped (no progress for ${TRANSFER_STALE_MS / 1000} s); start it again`,
    now,
  });
  return true;
}
