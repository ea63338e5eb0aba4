/** The `login_failures` table: sign-in attempts counted per throttle key. */
import type { Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { LoginFailuresTable } from '../schema.js';
import { upsertRow } from './upsert.js';

export type LoginFailureRow = Selectable<LoginFailuresTable>;

export function listLoginFailures(db: Db, keys: readonly string[]): Promise<LoginFailureRow[]> {
  return db.selectFrom('login_failures').selectAll().where('key', 'in', keys).execute();
}

export function getLoginFailure(db: Db, key: string): Promise<LoginFailureRow | undefined> {
  return db.selectFrom('login_failures').selectAll().where('key', '=', key).executeTakeFirst();
}

/** Writes the whole record of one key. */
export async function saveLoginFailure(db: Db, row: LoginFailureRow): Promise<void> {
  const { key, failures, first_failure_at, locked_until } = row;
  await upsertRow(db, 'login_failures', 'key', { key, failures, first_failure_at, locked_until });
}

export async function deleteLoginFailures(db: Db, keys: readonly string[]): Promise<void> {
  await db.deleteFrom('login_failures').where('key', 'in', keys).execute();
}
