/** The database as a whole: reachability, the migrations applied, row counts (health and doctor). */
import { sql } from 'kysely';
import type { Db } from '../open.js';

/** Throws when the database cannot answer a trivial query. */
export async function pingDatabase(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}

/** Names of the applied migrations, from kysely's own bookkeeping table. */
export async function appliedMigrations(db: Db): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return rows.map((r) => String(r.name));
}

export async function countRows(db: Db, table: 'blobs' | 'images' | 'groups' | 'users'): Promise<number> {
  return Number(
    (
      await db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirst()
    )?.n ?? 0,
  );
}
