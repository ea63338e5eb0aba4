/** The `transfer_jobs` table: pulls from a URL, written by the process running each, read by all. */
import type { Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { TransferJobsTable } from '../schema.js';

export type TransferJobRow = Selectable<TransferJobsTable>;

const UNFINISHED = ['queued', 'running'] as const;
type Outcome = Pick<TransferJobRow, 'state' | 'sha256' | 'error_code' | 'error_message'>;

export async function insertTransferJob(
  db: Db,
  job: { id: string; sourceUrl: string; holder: string; now: number },
): Promise<void> {
  await db
    .insertInto('transfer_jobs')
    .values({
      id: job.id,
      kind: 'fetch',
      source_url: job.sourceUrl,
      state: 'queued',
      holder: job.holder,
      created_at: job.now,
      updated_at: job.now,
    })
    .execute();
}

export function listTransferJobs(db: Db): Promise<TransferJobRow[]> {
  return db.selectFrom('transfer_jobs').selectAll().orderBy('created_at').orderBy('id').execute();
}

export function getTransferJob(db: Db, id: string): Promise<TransferJobRow | undefined> {
  return db.selectFrom('transfer_jobs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** queued → running for its holder, unless it was cancelled or given up meanwhile; true when it may run. */
export async function markTransferRunning(db: Db, id: string, holder: string, now: number): Promise<boolean> {
  const { numUpdatedRows } = await db
    .updateTable('transfer_jobs')
    .set({ state: 'running', updated_at: now })
    .where('id', '=', id)
    .where('holder', '=', holder)
    .where('state', '=', 'queued')
    .where('cancel_requested', '=', 0)
    .executeTakeFirst();
  return numUpdatedRows > 0n;
}

/**
 * The holder's heartbeat with its progress; undefined when the job is no longer its to run
 * (ended elsewhere, given up as interrupted), else whether a cancel was asked for.
 */
export async function beatTransferJob(
  db: Db,
  id: string,
  holder: string,
  progress: { bytesDone: number; totalBytes: number | null; now: number },
): Promise<{ cancelRequested: boolean } | undefined> {
  const row = await db
    .updateTable('transfer_jobs')
    .set({ bytes_done: progress.bytesDone, total_bytes: progress.totalBytes, updated_at: progress.now })
    .where('id', '=', id)
    .where('holder', '=', holder)
    .where('state', 'in', UNFINISHED)
    .returning('cancel_requested')
    .executeTakeFirst();
  return row && { cancelRequested: Number(row.cancel_requested) === 1 };
}

/** Ends a job its holder ran (no effect once it was ended elsewhere). */
export async function endTransferJob(
  db: Db,
  id: string,
  holder: string,
  end: Outcome & { bytesDone: number; totalBytes: number | null; now: number },
): Promise<void> {
  const { bytesDone, totalBytes, now, ...outcome } = end;
  await db
    .updateTable('transfer_jobs')
    .set({ ...outcome, bytes_done: bytesDone, total_bytes: totalBytes, updated_at: now, finished_at: now })
    .where('id', '=', id)
    .where('holder', '=', holder)
    .where('state', 'in', UNFINISHED)
    .execute();
}

/** Ends a job that has not started yet, whoever holds it; true when it was still queued. */
export async function cancelQueuedTransferJob(
  db: Db,
  id: string,
  end: Pick<TransferJobRow, 'error_code' | 'error_message'> & { now: number },
): Promise<boolean> {
  const { numUpdatedRows } = await db
    .updateTable('transfer_jobs')
    .set({
      state: 'cancelled',
      cancel_requested: 1,
      error_code: end.error_code,
      error_message: end.error_message,
      updated_at: end.now,
      finished_at: end.now,
    })
    .where('id', '=', id)
    .where('state', '=', 'queued')
    .executeTakeFirst();
  return numUpdatedRows > 0n;
}

/** Flags a running job for its holder to stop; true when it was running. */
export async function requestTransferCancel(db: Db, id: string): Promise<boolean> {
  const { numUpdatedRows } = await db
    .updateTable('transfer_jobs')
    .set({ cancel_requested: 1 })
    .where('id', '=', id)
    .where('state', '=', 'running')
    .executeTakeFirst();
  return numUpdatedRows > 0n;
}

/**
 * Ends as failed every unfinished job whose holder has not written since `staleBefore`,
 * except `aliveIds` (the caller's own, which it knows it is running).
 */
export async function failStaleTransferJobs(
  db: Db,
  staleBefore: number,
  aliveIds: readonly string[],
  end: Pick<TransferJobRow, 'error_code' | 'error_message'> & { now: number },
): Promise<number> {
  let query = db
    .updateTable('transfer_jobs')
    .set({
      state: 'failed',
      error_code: end.error_code,
      error_message: end.error_message,
      updated_at: end.now,
      finished_at: end.now,
    })
    .where('state', 'in', UNFINISHED)
    .where('updated_at', '<', staleBefore);
  if (aliveIds.length > 0) query = query.where('id', 'not in', aliveIds);
  return Number((await query.executeTakeFirst()).numUpdatedRows);
}

/** Deletes ended jobs beyond the `keep` most recently ended. */
export async function pruneEndedTransferJobs(db: Db, keep: number): Promise<void> {
  await db
    .deleteFrom('transfer_jobs')
    .where('state', 'not in', UNFINISHED)
    .where('id', 'not in', (eb) =>
      eb
        .selectFrom('transfer_jobs')
        .select('id')
        .where('state', 'not in', UNFINISHED)
        .orderBy('updated_at', 'desc')
        .orderBy('id', 'desc')
        .limit(keep),
    )
    .execute();
}
