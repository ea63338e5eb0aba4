/** The `api_tokens` table: scoped API tokens, stored as hashes. */
import type { Db } from '../open.js';
import type { ApiTokensTable } from '../schema.js';
import type { Selectable } from 'kysely';
import { inByteOrder } from '../dialect.js';

export type ApiTokenRow = Selectable<ApiTokensTable>;

export async function tokenNameTaken(db: Db, name: string): Promise<boolean> {
  return (await db.selectFrom('api_tokens').select('id').where('name', '=', name).executeTakeFirst()) !== undefined;
}

export async function insertApiToken(
  db: Db,
  token: { name: string; scope: ApiTokenRow['scope']; tokenHash: string; createdAt: number },
): Promise<void> {
  await db
    .insertInto('api_tokens')
    .values({
      name: token.name,
      scope: token.scope,
      token_hash: token.tokenHash,
      created_at: token.createdAt,
      last_used_at: null,
    })
    .execute();
}

/** Deletes the token of that name; false when there was none. */
export async function deleteApiTokenByName(db: Db, name: string): Promise<boolean> {
  return (await db.deleteFrom('api_tokens').where('name', '=', name).executeTakeFirst()).numDeletedRows > 0n;
}

/** Deletes every token; returns how many there were. */
export async function deleteAllApiTokens(db: Db): Promise<number> {
  return Number((await db.deleteFrom('api_tokens').executeTakeFirst()).numDeletedRows);
}

export function listApiTokenRows(
  db: Db,
): Promise<Array<Pick<ApiTokenRow, 'name' | 'scope' | 'created_at' | 'last_used_at'>>> {
  return db
    .selectFrom('api_tokens')
    .select(['name', 'scope', 'created_at', 'last_used_at'])
    .orderBy(inByteOrder(db, 'name'))
    .execute();
}

export function findApiTokenByHash(
  db: Db,
  tokenHash: string,
): Promise<Pick<ApiTokenRow, 'id' | 'name' | 'scope' | 'last_used_at'> | undefined> {
  return db
    .selectFrom('api_tokens')
    .select(['id', 'name', 'scope', 'last_used_at'])
    .where('token_hash', '=', tokenHash)
    .executeTakeFirst();
}

export async function setApiTokenLastUsed(db: Db, id: number, at: number): Promise<void> {
  await db.updateTable('api_tokens').set({ last_used_at: at }).where('id', '=', id).execute();
}
