/**
 * Sign-in throttling kept in the database, so it holds across processes
 * (workers, nodes) on one database. An attempt reserves its place BEFORE the
 * password is hashed: the reservation counts as a failure at once, and only
 * a successful sign-in clears it. The count is one atomic statement per
 * attempt (repos/login-failures.ts), so a burst of N parallel guesses spread
 * over any number of processes gets at most FREE_FAILURES tries and 429 for
 * the rest, without any of those extra guesses reaching scrypt.
 */
import { isIPv6 } from 'node:net';
import {
  countLoginAttempt,
  deleteLoginFailures,
  listLoginFailures,
  uncountLoginAttempt,
  type AttemptCounting,
} from '../db/repos/login-failures.js';
import { AppError } from '../errors.js';
import type { DbDeps, ServiceDeps } from './deps.js';

const FAILURE_WINDOW_MS = 15 * 60 * 1000;
/** Wrong passwords allowed per key within the window before the first lock. */
export const FREE_FAILURES = 5;
const BASE_LOCK_MS = 30_000;
const MAX_LOCK_MS = 15 * 60 * 1000;

/** The lock doubles from 30 s with each attempt beyond the allowance, up to 15 min. */
const COUNTING: AttemptCounting = {
  windowMs: FAILURE_WINDOW_MS,
  lockAt: FREE_FAILURES,
  lockMs: lockLengths(),
};

function lockLengths(): number[] {
  const lengths = [BASE_LOCK_MS];
  while (lengths.at(-1)! < MAX_LOCK_MS) lengths.push(Math.min(MAX_LOCK_MS, lengths.at(-1)! * 2));
  return lengths;
}

/**
 * Reserves one attempt under every key, or throws TOO_MANY_REQUESTS (with
 * retryAfterSeconds) when any key is locked. The attempt that uses up the
 * allowance sets the lock, doubling from 30 s to 15 min with each further one.
 */
export async function reserveSignInAttempt(deps: DbDeps, keys: readonly string[]): Promise<void> {
  const now = deps.clock.now();
  const counted = await countLoginAttempt(deps.db, keys, now, COUNTING);
  if (counted.length === keys.length) return;
  // A locked key refuses the attempt; the keys it was counted under give it back, since nothing was checked.
  await uncountLoginAttempt(deps.db, counted, FREE_FAILURES);
  const rows = await listLoginFailures(deps.db, keys);
  const lockedUntil = Math.max(0, ...rows.map((r) => Number(r.locked_until)));
  throw new AppError('TOO_MANY_REQUESTS', 'too many failed sign-ins; wait before trying again', {
    retryAfterSeconds: Math.max(1, Math.ceil((lockedUntil - now) / 1000)),
  });
}

/** Gives a reservation back when the password was never checked (the hashing queue was full). */
export async function releaseSignInAttempt(deps: Pick<ServiceDeps, 'db'>, keys: readonly string[]): Promise<void> {
  await uncountLoginAttempt(deps.db, keys, FREE_FAILURES);
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
