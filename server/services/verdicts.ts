/**
 * The rules of an integrity check's verdict: which blob a check reads, and
 * how what it found is recorded (state, audit, quarantine) in the blob lock.
 * The checker (jobs/integrity-checker.ts) runs the hashing and calls these.
 */
import type { Sha256 } from '../../storage/digest.js';
import type { VerifyOutcome } from '../../storage/verify.js';
import { withBlobLock } from '../db/blob-lock.js';
import { findBlob, listDigestsByVerifiedAt, setBlobState } from '../db/repos/blobs.js';
import type { BlobRow } from '../db/schema.js';
import { recordAudit, systemActor } from './audit.js';
import type { ServiceDeps } from './deps.js';

export type CheckResult = VerifyOutcome['kind'] | 'cancelled' | 'unknown';

/** What a check found: the verifier's outcome, or a read error of the disk. */
export type Verdict = VerifyOutcome | { kind: 'unreadable'; err: unknown };

/** The row's last ingest and the file's version when a check started. */
export interface Basis {
  ingestedAt: number | null;
  version: string | null;
}

/** A blob that could not be read at all: the state it is withheld in, and the reason kept with it. */
const UNREAD_FINDINGS = {
  missing: { state: 'missing', detail: 'the blob file is missing from the data directory' },
  unreadable: { state: 'corrupt', detail: 'read error (EIO) while re-hashing: the disk is failing' },
} as const;

/** Every finding that withholds a blob is audited as `blob.<state>`, in the same transaction as the state. */
function auditFinding(
  trx: Parameters<typeof recordAudit>[0],
  sha256: Sha256,
  state: 'missing' | 'corrupt',
  at: number,
  details: Record<string, unknown>,
): Promise<void> {
  return recordAudit(trx, { actor: systemActor, action: `blob.${state}`, target: `blob:${sha256}`, at, details });
}

/** The row a check starts from, or undefined when the blob is not stored. */
export function blobToCheck(deps: Pick<ServiceDeps, 'db'>, sha256: Sha256): Promise<BlobRow | undefined> {
  return findBlob(deps.db, sha256);
}

/** Every stored digest, least recently checked first (never checked first of all). */
export function digestsByLastCheck(deps: Pick<ServiceDeps, 'db'>): Promise<string[]> {
  return listDigestsByVerifiedAt(deps.db);
}

/**
 * Records a verdict, and quarantines a corrupt file, only while they are
 * still about the copy that was read: inside withBlobLock the row must show
 * no ingest since the check began and the file must be the version read.
 * Otherwise a repair (a re-import of the same content) landed meanwhile,
 * and acting would withhold or quarantine the good new copy: 'replaced'.
 */
export async function recordVerdict(
  deps: Pick<ServiceDeps, 'db' | 'store' | 'log' | 'clock'>,
  sha256: Sha256,
  outcome: Verdict,
  basis: Basis,
): Promise<CheckResult> {
  const { db, store, log } = deps;
  if (outcome.kind === 'replaced') {
    log.info({ sha256 }, 'blob was replaced during its check; the new copy will be checked on schedule');
    return 'replaced';
  }
  const now = deps.clock.now();
  const readVersion =
    outcome.kind === 'missing' ? null : outcome.kind === 'unreadable' ? basis.version : outcome.version;
  let quarantined: string | null = null;
  const verdict = await withBlobLock(db, async (trx): Promise<CheckResult> => {
    const row = await findBlob(trx, sha256);
    if (!row) return 'unknown';
    if (row.ingested_at !== basis.ingestedAt || (await store.version(sha256)) !== readVersion) return 'replaced';
    switch (outcome.kind) {
      case 'ok':
        await setBlobState(trx, sha256, 'ok', { verifiedAtMs: now });
        return 'ok';
      case 'missing':
      case 'unreadable': {
        const { state, detail } = UNREAD_FINDINGS[outcome.kind];
        await setBlobState(trx, sha256, state, { verifiedAtMs: now, detail });
        await auditFinding(trx, sha256, state, now, { detail });
        return state;
      }
      case 'corrupt': {
        // Withheld (links answer 503 once this commits) and moved aside in one step. A move that fails
        // (permissions, I/O) must not undo the withholding: it is logged and audited instead.
        const detail = `content hashes to ${outcome.actual}`;
        await setBlobState(trx, sha256, 'corrupt', { verifiedAtMs: now, detail });
        const moved = await store.quarantine(sha256, now).then(
          (file) => ({ file, error: null }),
          (err: unknown) => ({ file: null, error: err }),
        );
        quarantined = moved.file;
        if (moved.error)
          log.error(
            { err: moved.error, sha256 },
            'integrity check: could not move the corrupt blob to quarantine; it stays withheld',
          );
        const details = {
          detail,
          quarantined,
          ...(moved.error
            ? { quarantineError: moved.error instanceof Error ? moved.error.message : 'unknown error' }
            : {}),
        };
        await auditFinding(trx, sha256, 'corrupt', now, details);
        return 'corrupt';
      }
    }
  });
  switch (verdict) {
    case 'ok':
      log.info({ sha256 }, 'integrity check passed');
      break;
    case 'replaced':
      log.info({ sha256 }, 'blob was ingested again during its check; the new copy will be checked on schedule');
      break;
    case 'missing':
      log.error({ sha256 }, 'integrity check: blob file is missing; its links now answer 503');
      break;
    case 'corrupt':
      if (outcome.kind === 'unreadable')
        log.error({ err: outcome.err, sha256 }, 'integrity check: blob cannot be read; its links answer 503');
      else
        log.error(
          { sha256, actual: outcome.kind === 'corrupt' ? outcome.actual : null, quarantined },
          'integrity check: blob is corrupt; withheld, links answer 503',
        );
      break;
    default:
      break;
  }
  return verdict;
}
