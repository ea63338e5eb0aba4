/**
 * Column definitions several migrations share. Frozen like the migrations that use them: never change one
 * (test/unit/migrations-schema.test.ts holds the schema each migration makes); add a new helper instead.
 */
import { sql, type ColumnDefinitionBuilder, type CreateTableBuilder, type Kysely } from 'kysely';

type Column = (col: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;
/** One direction of a migration, as a plain function (kysely's Migration declares methods). */
type MigrationStep = (db: Kysely<any>) => Promise<void>;
/** A column's SQL type as kysely's addColumn takes it ('bigint', 'varchar(64)', …). */
type DataType = Parameters<CreateTableBuilder<string, string>['addColumn']>[1];

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

/** A column that must be given. */
export const required: Column = (col) => col.notNull();

/** The integer key the database numbers itself. */
export const idKey: Column = (col) => col.primaryKey().autoIncrement();

/** When a row was made and last changed (epoch milliseconds), both required: for `.$call(timestamps)`. */
export const timestamps = <T extends CreateTableBuilder<string, string>>(table: T): T =>
  table.addColumn('created_at', 'bigint', required).addColumn('updated_at', 'bigint', required) as T;

/** A plain index on one column, named `<table>_<column>`. */
export const indexOn = (db: Kysely<any>, table: string, column: string): Promise<void> =>
  db.schema.createIndex(`${table}_${column}`).on(table).column(column).execute();

/** A migration that only adds one column to an existing table (and drops it going down). */
export const addedColumn = (
  table: string,
  column: string,
  type: DataType,
  build: Column = (col) => col,
): { up: MigrationStep; down: MigrationStep } => ({
  up: (db: Kysely<any>) => db.schema.alterTable(table).addColumn(column, type, build).execute(),
  down: (db: Kysely<any>) => db.schema.alterTable(table).dropColumn(column).execute(),
});
