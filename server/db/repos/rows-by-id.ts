/** Reading and writing one row of a table keyed by a generated integer `id`, the shape several tables share. */
import type { Generated, Insertable, Kysely, Selectable, Updateable } from 'kysely';
import type { Db } from '../open.js';
import type { Database } from '../schema.js';

/** The tables whose key is an `id` the database generates. */
export type IdTable = {
  [T in keyof Database]: Database[T] extends { id: Generated<number> } ? T : never;
}[keyof Database];

/** Get, insert (answering the new id), update and delete by id for `table`; each takes the db or a transaction first. */
export function rowsById<T extends IdTable>(table: T) {
  // kysely cannot type a query over a table chosen by a type parameter; the signatures below are the check.
  const loose = (db: Db) => db as unknown as Kysely<Record<string, { id: number } & Record<string, unknown>>>;
  const name: string = table;
  return Object.freeze({
    async get(db: Db, id: number): Promise<Selectable<Database[T]> | undefined> {
      const row = await loose(db).selectFrom(name).selectAll().where('id', '=', id).executeTakeFirst();
      return row as Selectable<Database[T]> | undefined;
    },
    async insert(db: Db, row: Insertable<Database[T]>): Promise<number> {
      return (await loose(db).insertInto(name).values(row).returning('id').executeTakeFirstOrThrow()).id;
    },
    async update(db: Db, id: number, values: Updateable<Database[T]>): Promise<void> {
      await loose(db).updateTable(name).set(values).where('id', '=', id).execute();
    },
    async delete(db: Db, id: number): Promise<void> {
      await loose(db).deleteFrom(name).where('id', '=', id).execute();
    },
  });
}
