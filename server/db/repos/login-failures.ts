/**
 * The `login_failures` table: sign-in attempts counted per throttle key. Every change is one statement,
 * atomic on its own on SQLite and PostgreSQL alike, so processes sharing the database count exactly
 * without holding a transaction open across awaits.
 */
import { sql, type Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { LoginFailuresTable } from '../schema.js';

export type LoginFailureRow = Selectable<LoginFailuresTable>;

/** How attempts are counted: what the throttle service decides, handed to the query as data. */
export interface AttemptCounting {
  /** A key whose first failure is older than this starts counting afresh. */
  windowMs: number;
  /** The count at which the first lock is set. */
  lockAt: number;
  /** Lock lengths: `lockMs[i]` at count `lockAt + i`, the last one for every count beyond. */
  lockMs: readonly number[];
}

export function listLoginFailures(db: Db, keys: readonly string[]): Promise<LoginFailureRow[]> {
  return db.selectFrom('login_failures').selectAll().where('key', 'in', keys).execute();
}

/**
 * Counts one attempt under every key that is not locked at `now` (one INSERT … ON CONFLICT DO UPDATE … WHERE
 * for all keys), setting the lock when the count reaches it. Returns the keys it counted; a key left out was
 * locked and is unchanged.
 */
export async function countLoginAttempt(
  db: Db,
  keys: readonly string[],
  now: number,
  counting: AttemptCounting,
): Promise<string[]> {
  const { windowMs, lockAt, lockMs } = counting;
  const lockFor = (count: number): number => {
    if (count < lockAt) return 0;
    return now + (lockMs[Math.min(count - lockAt, lockMs.length - 1)] ?? 0);
  };
  const count = sql<number>`case when login_failures.first_failure_at < ${now - windowMs} then 1 else login_failures.failures + 1 end`;
  // Longest lock first: the first threshold the new count reaches wins.
  const thresholds = lockMs
    .map((_, i) => sql`when ${count} >= ${lockAt + i} then cast(${lockFor(lockAt + i)} as bigint)`)
    .reverse();
  const lockedUntil = sql<number>`case ${sql.join(thresholds, sql` `)} else 0 end`;
  const counted = await db
    .insertInto('login_failures')
    .values(keys.map((key) => ({ key, failures: 1, first_failure_at: now, locked_until: lockFor(1) })))
    .onConflict((oc) =>
      oc
        .column('key')
        .doUpdateSet({
          failures: count,
          first_failure_at: sql<number>`case when login_failures.first_failure_at < ${now - windowMs} then cast(${now} as bigint) else login_failures.first_failure_at end`,
          locked_until: lockedUntil,
        })
        .where('login_failures.locked_until', '<=', now),
    )
    .returning('key')
    .execute();
  return counted.map((r) => r.key);
}

/** Takes one counted attempt back from each key; a key below `lockAt` again loses its lock, one at 0 its row. */
export async function uncountLoginAttempt(db: Db, keys: readonly string[], lockAt: number): Promise<void> {
  if (keys.length === 0) return;
  await db
    .updateTable('login_failures')
    .set({
      failures: sql<number>`case when failures > 0 then failures - 1 else 0 end`,
      locked_until: sql<number>`case when failures - 1 < ${lockAt} then 0 else locked_until end`,
    })
    .where('key', 'in', keys)
    .execute();
  // A key back at nothing is the same as no record; the condition keeps a count another attempt made meanwhile.
  await db.deleteFrom('login_failures').where('key', 'in', keys).where('failures', '<=', 0).execute();
}

export async function deleteLoginFailures(db: Db, keys: readonly string[]): Promise<void> {
  await db.deleteFrom('login_failures').where('key', 'in', keys).execute();
}
