/** Writing a whole row by its key, the one upsert shape several tables share. */
import type { Insertable, Kysely } from 'kysely';
import type { Db } from '../open.js';
import type { Database } from '../schema.js';

/**
 * Inserts `row`, or, where a row with the same `key` column exists, overwrites its other columns with `row`'s
 * (ON CONFLICT … DO UPDATE, which SQLite and PostgreSQL both have).
 */
export async function upsertRow<T extends keyof Database>(
  db: Db,
  table: T,
  key: keyof Database[T] & string,
  row: Insertable<Database[T]>,
): Promise<void> {
  const others = Object.fromEntries(Object.entries(row).filter(([column]) => column !== key));
  // kysely cannot type a query over a table chosen by a type parameter; the signature above is the check.
  const loose = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
  const name: string = table;
  await loose
    .insertInto(name)
    .values(row)
    .onConflict((oc) => oc.column(key).doUpdateSet(others))
    .execute();
}
