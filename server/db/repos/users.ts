/** The `users` table: admins who sign in to the pages, with scrypt password hashes. */
import type { Db } from '../open.js';
import type { UserRow } from '../schema.js';

export async function anyUserExists(db: Db): Promise<boolean> {
  return (await db.selectFrom('users').select('id').limit(1).executeTakeFirst()) !== undefined;
}

export function findUserByName(db: Db, username: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
}

export async function passwordHashOf(db: Db, userId: number): Promise<string | null> {
  return (
    (await db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirst())?.password_hash ??
    null
  );
}

export async function insertUser(db: Db, user: { username: string; passwordHash: string; at: number }): Promise<void> {
  await db
    .insertInto('users')
    .values({
      username: user.username,
      password_hash: user.passwordHash,
      created_at: user.at,
      password_changed_at: user.at,
    })
    .execute();
}

export async function setPasswordHash(db: Db, userId: number, passwordHash: string, at: number): Promise<void> {
  await db
    .updateTable('users')
    .set({ password_hash: passwordHash, password_changed_at: at })
    .where('id', '=', userId)
    .execute();
}
