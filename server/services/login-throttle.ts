/**
 * Sign-in throttling kept in the database, so it holds across processes on
 * one file. An attempt reserves its place BEFORE the password is hashed: the
 * reservation counts as a failure at once (in one BEGIN IMMEDIATE
 * transaction), and only a successful sign-in clears it. A burst of N
 * parallel guesses therefore gets at most FREE_FAILURES tries and 429 for
 * the rest, without any of those extra guesses reaching scrypt.
 */
import { isIPv6 } from 'node:net';
import {
  deleteLoginFailures,
  getLoginFailure,
  listLoginFailures,
  saveLoginFailure,
} from '../db/repos/login-failures.js';
import { AppError } from '../errors.js';
import type { DbDeps, ServiceDeps } from './deps.js';

const FAILURE_WINDOW_MS = 15 * 60 * 1000;
/** Wrong passwords allowed per key within the window before the first lock. */
export const FREE_FAILURES = 5;
const BASE_LOCK_MS = 30_000;
const MAX_LOCK_MS = 15 * 60 * 1000;

/**
 * Reserves one attempt under every key, or throws TOO_MANY_REQUESTS (with
 * retryAfterSeconds) when any key is locked. The attempt that uses up the
 * allowance sets the lock, doubling from 30 s to 15 min with each further one.
 */
export async function reserveSignInAttempt(deps: DbDeps, keys: readonly string[]): Promise<void> {
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    const rows = await listLoginFailures(trx, keys);
    const lockedUntil = Math.max(0, ...rows.map((r) => r.locked_until));
    if (lockedUntil > now) {
      throw new AppError('TOO_MANY_REQUESTS', 'too many failed sign-ins; wait before trying again', {
        retryAfterSeconds: Math.ceil((lockedUntil - now) / 1000),
      });
    }
    for (const key of keys) {
      const row = rows.find((r) => r.key === key);
      const fresh = !row || now - row.first_failure_at > FAILURE_WINDOW_MS;
      const failures = fresh ? 1 : row.failures + 1;
      const firstFailureAt = fresh ? now : row.first_failure_at;
      const over = failures - FREE_FAILURES;
      const locked = over >= 0 ? now + Math.min(MAX_LOCK_MS, BASE_LOCK_MS * 2 ** over) : 0;
      await saveLoginFailure(trx, { key, failures, first_failure_at: firstFailureAt, locked_until: locked });
    }
  });
}

/** Gives a reservation back when the password was never checked (the hashing queue was full). */
export async function releaseSignInAttempt(deps: Pick<ServiceDeps, 'db'>, keys: readonly string[]): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    for (const key of keys) {
      const row = await getLoginFailure(trx, key);
      if (!row) continue;
      const failures = Math.max(0, row.failures - 1);
      // Below the allowance again: the lock this reservation set no longer applies.
      const locked = failures < FREE_FAILURES ? 0 : row.locked_until;
      await saveLoginFailure(trx, { ...row, failures, locked_until: locked });
    }
  });
}

/** A successful sign-in clears the record of its keys. */
export async function clearSignInFailures(deps: Pick<ServiceDeps, 'db'>, keys: readonly string[]): Promise<void> {
  await deleteLoginFailures(deps.db, keys);
}

/**
 * The key sign-in throttling counts under: an IPv4 address as is, an IPv6
 * address by its /64 (one subscriber usually holds a whole /64, so counting
 * single addresses would give an attacker 2^64 fresh allowances).
 */
export function throttleKey(address: string): string {
  if (!isIPv6(address)) return address;
  return `${ipv6Groups(address)
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail converted). */
function ipv6Groups(address: string): number[] {
  const text = address.replace(
    /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
    (_, a: string, b: string, c: string, d: string) =>
      `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
  );
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
