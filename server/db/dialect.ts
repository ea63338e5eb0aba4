/**
 * SQLITE-ONLY CODE LIVES HERE, and nowhere else in the data layer.
 *
 * Everything in server/db/repos is portable kysely (it runs on SQLite and
 * PostgreSQL alike); what only SQLite understands is collected in this one
 * module so the PostgreSQL port replaces exactly this file: how a connection
 * is tuned (pragmas), how a transaction takes its lock (BEGIN IMMEDIATE), the
 * integrity check, and how a name is folded the way the unique index folds it.
 */
import type SQLite from 'better-sqlite3';
import {
  CompiledQuery,
  sql,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type RawBuilder,
  type SqliteDialectConfig,
} from 'kysely';
import type { Db } from './open.js';

/**
 * WAL so that the CLI and a running server can share the file, a busy
 * timeout so that their writes wait for each other instead of failing,
 * foreign keys on; then a quick check, whose answer ('ok' or the problem) is returned.
 */
export function tuneSqliteConnection(sqlite: SQLite.Database, busyTimeoutMs: number): string {
  sqlite.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
  sqlite.pragma('journal_mode = WAL');
  // NORMAL is durable across application crashes in WAL mode; a power cut
  // can lose the last transactions but never corrupts the file.
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  return String(sqlite.pragma('quick_check', { simple: true }));
}

/** SQLite's quick integrity check of an open database: 'ok', or what is wrong. */
export async function quickCheck(db: Db): Promise<string> {
  const { rows } = await sql<{ quick_check: string }>`pragma quick_check`.execute(db);
  return String(rows[0]?.quick_check ?? 'unknown');
}

/**
 * Text folded the way the unique index on group names folds it (migration
 * 0007): SQLite's lower() folds ASCII letters only. PostgreSQL's equivalent
 * is lower(x COLLATE "C"). `foldedColumn` for a column, `foldedValue` for a parameter.
 */
export function foldedColumn(column: string): RawBuilder<string> {
  return sql<string>`lower(${sql.ref(column)})`;
}

export function foldedValue(value: string): RawBuilder<string> {
  return sql<string>`lower(${value})`;
}

/**
 * Transactions start with BEGIN IMMEDIATE, taking the write lock up front.
 * Kysely's plain BEGIN is deferred: a transaction that reads and then writes
 * must upgrade its lock, and when another process committed in between SQLite
 * fails that upgrade at once with "database is locked" (SQLITE_BUSY_SNAPSHOT)
 * without consulting the busy timeout.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

export class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}
