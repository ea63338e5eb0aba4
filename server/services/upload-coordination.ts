/**
 * What the processes serving one database share about tus uploads: who
 * may touch an upload right now (a lock row with an expiry its holder
 * renews), who is storing a complete one, and what came of that, so that
 * an upload started on one process continues, finishes and reports on any.
 */
import { AppError, errorRegistry, type ErrorCode } from '../errors.js';
import {
  claimUploadFinish,
  dropExpiredUploadFinishes,
  getUploadFinish,
  recordUploadFinish,
  renewUploadFinish,
  uploadsFinishing,
} from '../db/repos/upload-finishes.js';
import {
  askUploadLockRelease,
  dropExpiredUploadLocks,
  dropUploadLock,
  heldUploadLocks,
  renewUploadLock,
  takeUploadLock,
  uploadLockHeld,
} from '../db/repos/upload-locks.js';
import type { DbDeps } from './deps.js';

/** A lock or a claim its holder stopped renewing is free after this long (a dead process's, or one stuck this long). */
export const UPLOAD_CLAIM_TTL_MS = 15_000;
/** How long the outcome of storing an upload is remembered for clients asking late (HEAD). */
export const UPLOAD_OUTCOME_MS = 60 * 60 * 1000;

export function takeUploadLockFor(deps: DbDeps, uploadId: string, holder: string): Promise<boolean> {
  const now = deps.clock.now();
  return takeUploadLock(deps.db, { uploadId, holder, now, expiresAt: now + UPLOAD_CLAIM_TTL_MS });
}

export function askUploadRelease(deps: DbDeps, uploadId: string, waiter: string): Promise<void> {
  return askUploadLockRelease(deps.db, uploadId, waiter);
}

/** undefined when the lock was lost; else whether another request waits for it. */
export function renewUploadLockFor(
  deps: DbDeps,
  uploadId: string,
  holder: string,
): Promise<{ releaseRequested: boolean } | undefined> {
  return renewUploadLock(deps.db, uploadId, holder, deps.clock.now() + UPLOAD_CLAIM_TTL_MS);
}

export function releaseUploadLock(deps: DbDeps, uploadId: string, holder: string): Promise<void> {
  return dropUploadLock(deps.db, uploadId, holder);
}

/** Whether a request of some process holds the upload now. */
export function isUploadLocked(deps: DbDeps, uploadId: string): Promise<boolean> {
  return uploadLockHeld(deps.db, uploadId, deps.clock.now());
}

/** Uploads some process is receiving (a request holds the lock) or storing right now. */
export async function busyUploads(deps: DbDeps): Promise<{ receiving: Set<string>; finishing: Set<string> }> {
  const now = deps.clock.now();
  // Rows of dead holders that nobody took over are of no use after a while.
  await dropExpiredUploadLocks(deps.db, now - UPLOAD_OUTCOME_MS);
  await dropExpiredUploadFinishes(deps.db, now);
  const [receiving, finishing] = await Promise.all([heldUploadLocks(deps.db, now), uploadsFinishing(deps.db, now)]);
  return { receiving, finishing };
}

export interface StoredUpload {
  sha256: string;
  size: number;
  /** Null while no public address is set. */
  url: string | null;
}

export type UploadOutcome =
  { state: 'finishing' } | ({ state: 'stored' } & StoredUpload) | { state: 'failed'; error: AppError };

/** Whether storing `uploadId` is running somewhere (a live claim), or what came of it; undefined: neither. */
export async function uploadOutcome(deps: DbDeps, uploadId: string): Promise<UploadOutcome | undefined> {
  const row = await getUploadFinish(deps.db, uploadId);
  if (!row || row.expires_at <= deps.clock.now()) return undefined;
  if (row.state === 'finishing') return { state: 'finishing' };
  if (row.state === 'stored' && row.sha256 !== null && row.size !== null)
    return { state: 'stored', sha256: row.sha256, size: Number(row.size), url: row.url };
  const code = row.error_code !== null && row.error_code in errorRegistry ? (row.error_code as ErrorCode) : 'INTERNAL';
  return { state: 'failed', error: new AppError(code, row.error_message ?? undefined) };
}

/** Claims storing `uploadId` (true), unless another process stores it or did (false). */
export function claimUploadFinishFor(deps: DbDeps, uploadId: string, holder: string): Promise<boolean> {
  const now = deps.clock.now();
  return claimUploadFinish(deps.db, { uploadId, holder, now, expiresAt: now + UPLOAD_CLAIM_TTL_MS });
}

export function renewUploadFinishFor(deps: DbDeps, uploadId: string, holder: string): Promise<boolean> {
  return renewUploadFinish(deps.db, uploadId, holder, deps.clock.now() + UPLOAD_CLAIM_TTL_MS);
}

export async function recordUploadStored(
  deps: DbDeps,
  uploadId: string,
  holder: string,
  stored: StoredUpload,
): Promise<void> {
  const now = deps.clock.now();
  await recordUploadFinish(deps.db, uploadId, holder, {
    state: 'stored',
    sha256: stored.sha256,
    size: stored.size,
    url: stored.url,
    error_code: null,
    error_message: null,
    now,
    expiresAt: now + UPLOAD_OUTCOME_MS,
  });
  await dropExpiredUploadFinishes(deps.db, now);
}

export async function recordUploadFailed(
  deps: DbDeps,
  uploadId: string,
  holder: string,
  error: AppError,
): Promise<void> {
  const now = deps.clock.now();
  await recordUploadFinish(deps.db, uploadId, holder, {
    state: 'failed',
    sha256: null,
    size: null,
    url: null,
    error_code: error.code,
    error_message: error.message,
    now,
    expiresAt: now + UPLOAD_OUTCOME_MS,
  });
  await dropExpiredUploadFinishes(deps.db, now);
}
