/**
 * Column definitions several migrations share. Frozen like the migrations that use them: never change one
 * (test/unit/migrations-schema.test.ts holds the schema each migration makes); add a new helper instead.
 */
import { sql, type ColumnDefinitionBuilder } from 'kysely';

type Column = (col: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;

/** A boolean as a 0/1 integer with a CHECK (the same on SQLite and PostgreSQL), 0 unless set. */
export const flag =
  (name: string): Column =>
  (col) =>
    col
      .notNull()
      .defaultTo(0)
      .check(sql`${sql.raw(name)} in (0, 1)`);

/** Text limited to `values` by a CHECK, `fallback` unless set. */
export const oneOf =
  (name: string, values: readonly string[], fallback: string): Column =>
  (col) =>
    col
      .notNull()
      .defaultTo(fallback)
      .check(sql`${sql.raw(name)} in (${sql.raw(values.map((v) => `'${v}'`).join(', '))})`);
