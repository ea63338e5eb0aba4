/**
 * WHAT DIFFERS BETWEEN SQLITE AND POSTGRESQL LIVES HERE, and nowhere else in the data layer.
 *
 * Everything in server/db/repos is portable kysely; this module holds what is not: how a connection is tuned and
 * checked, how a transaction takes its lock, how the schema's types are spelled, how a name is folded the way the
 * unique index folds it, and how a lost server connection is recognised. Both dialects give the same guarantee to the
 * code above them: transactions run one at a time across every process that shares the database.
 */
import type SQLite from 'better-sqlite3';
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresDialect,
  PostgresDriver,
  PostgresQueryCompiler,
  sql,
  SqliteDialect,
  SqliteDriver,
  type DataTypeNode,
  type DatabaseConnection,
  type Driver,
  type QueryExecutorProvider,
  type PostgresDialectConfig,
  type QueryCompiler,
  type RawBuilder,
  type SqliteDialectConfig,
  type TransactionSettings,
} from 'kysely';
import { AppError } from '../errors.js';

export type DialectName = 'sqlite' | 'postgres';

/** Which engine a Kysely instance (or a transaction of one) talks to. */
export function dialectOf(db: QueryExecutorProvider): DialectName {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

// ---------------------------------------------------------------- SQLite

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

/** The database's own consistency check: 'ok', or what is wrong. PostgreSQL checks itself, so a round trip is the check. */
export async function quickCheck(db: QueryExecutorProvider): Promise<string> {
  if (dialectOf(db) === 'postgres') {
    await sql`select 1`.execute(db);
    return 'ok';
  }
  const { rows } = await sql<{ quick_check: string }>`pragma quick_check`.execute(db);
  return String(rows[0]?.quick_check ?? 'unknown');
}

/**
 * Text folded the way the unique index on group names folds it (migration 0007): ASCII letters only. SQLite's
 * lower() does exactly that; PostgreSQL's does so under the "C" collation (its default one would also fold "É").
 * `foldedColumn` for a column, `foldedValue` for a parameter.
 */
export function foldedColumn(db: QueryExecutorProvider, column: string): RawBuilder<string> {
  return dialectOf(db) === 'postgres'
    ? sql<string>`lower(${sql.ref(column)} collate "C")`
    : sql<string>`lower(${sql.ref(column)})`;
}

export function foldedValue(db: QueryExecutorProvider, value: string): RawBuilder<string> {
  return dialectOf(db) === 'postgres' ? sql<string>`lower(${value} collate "C")` : sql<string>`lower(${value})`;
}

/** The index expression of the same folding, for the migration that creates it. */
export function foldedIndexExpression(db: QueryExecutorProvider, column: string): RawBuilder<string> {
  return dialectOf(db) === 'postgres'
    ? sql<string>`lower(${sql.raw(column)} collate "C")`
    : sql`lower(${sql.raw(column)})`;
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

// ---------------------------------------------------------------- PostgreSQL

/**
 * The advisory lock every transaction takes first: a fixed number (it spells "gmtx") and the schema, so two
 * catalogs in one database do not wait for each other.
 * It gives PostgreSQL SQLite's rule of one writing transaction at a time across every process and node, which the
 * services are written for (read, decide, write, and move a file, as one step). Transactions are short, and
 * downloads never open one, so the serialisation costs nothing that matters.
 */
const TRANSACTION_LOCK_KEY = 0x676d7478;

/** int8 (sizes, timestamps, counts) as a JS number; a value beyond 2^53 would be silently rounded, so refuse it. */
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`the database returned ${text}, beyond JavaScript's safe integers`);
  return n;
}

/** numeric (what sum() of int8 gives) as a number, by the same rule when it is whole. */
function parseNumeric(text: string): number {
  const n = Number(text);
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) throw new Error(`the database returned ${text}, too large`);
  return n;
}

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/** pg's per-pool type parsers: only int8 and numeric differ from its defaults (which give strings). */
export function postgresTypeParsers(fallback: (oid: number, format: 'text' | 'binary') => unknown) {
  return {
    getTypeParser: (oid: number, format?: 'text' | 'binary') => {
      if (oid === INT8_OID) return parseInt8;
      if (oid === NUMERIC_OID) return parseNumeric;
      return fallback(oid, format ?? 'text');
    },
  };
}

/**
 * The schema is written once for both engines; SQLite's `integer` is 64-bit, so it is `bigint` here, and an
 * auto-incremented key is an identity column.
 */
class PortablePostgresCompiler extends PostgresQueryCompiler {
  protected override getAutoIncrement(): string {
    return 'generated by default as identity';
  }
  protected override visitDataType(node: DataTypeNode): void {
    this.append(node.dataType === 'integer' ? 'bigint' : String(node.dataType));
  }
}

/** True for errors that mean the server or the connection to it is gone, not that the query was wrong. */
export function isConnectionFailure(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    // SQLSTATE class 08: connection exception; 57P01-03: the server is shutting down or starting; 53300: no slots.
    if (/^08/.test(code) || /^57P0[123]$/.test(code) || code === '53300') return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH'].includes(code))
      return true;
  }
  return (
    typeof message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect|not queryable|Connection ended/i.test(message)
  );
}

/**
 * Waits that ran out: a lock (lock_timeout), a statement (statement_timeout, or the driver's query timeout) or a
 * free connection of this process's pool. The server is there, but too busy to answer now.
 */
function isBusy(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  return code === '55P03' || code === '57014' || (typeof message === 'string' && /Query read timeout/i.test(message));
}

function unavailable(err: unknown): never {
  // The reason (host, port, server message) stays in the cause, for the log: clients of any route may see this one.
  if (isBusy(err)) throw new AppError('DATABASE_BUSY', 'the database is busy; try again shortly', {}, { cause: err });
  if (!isConnectionFailure(err)) throw err;
  throw new AppError(
    'DATABASE_UNAVAILABLE',
    'the database server cannot be reached; try again shortly',
    {},
    { cause: err },
  );
}

/**
 * The same connection, but lost-server errors of its queries become DATABASE_UNAVAILABLE (503 in the API, exit 1 in
 * the CLI). A proxy, because kysely's driver calls private symbol methods on the connection object it made.
 */
function reporting(connection: DatabaseConnection): DatabaseConnection {
  return new Proxy(connection, {
    get(target, prop) {
      if (prop === 'executeQuery') return (query: CompiledQuery) => target.executeQuery(query).catch(unavailable);
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

class SerialPostgresDriver extends PostgresDriver {
  readonly #pool: PoolCounts | undefined;
  constructor(
    config: PostgresDialectConfig,
    readonly serialised: boolean,
  ) {
    super(config);
    this.#pool = typeof config.pool === 'function' ? undefined : (config.pool as unknown as PoolCounts);
  }
  override async acquireConnection(): Promise<DatabaseConnection> {
    try {
      return reporting(await super.acquireConnection());
    } catch (err) {
      // pg-pool gives one message for "the server did not answer" and "every connection of the pool is in use".
      const pool = this.#pool;
      if (pool && pool.totalCount >= pool.options.max && /timeout exceeded/i.test((err as Error).message ?? ''))
        throw new AppError(
          'DATABASE_BUSY',
          `all ${pool.options.max} database connections of this process are in use; try again shortly`,
          { poolSize: pool.options.max },
          { cause: err },
        );
      return unavailable(err);
    }
  }
  override async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    await super.beginTransaction(connection, settings);
    if (!this.serialised) return;
    try {
      await connection.executeQuery(
        CompiledQuery.raw(`select pg_advisory_xact_lock(${TRANSACTION_LOCK_KEY}, hashtext(current_schema()))`),
      );
    } catch (err) {
      // The transaction is aborted now; end it, or the pool would hand out a connection that refuses everything.
      await connection.executeQuery(CompiledQuery.raw('rollback')).catch(() => undefined);
      throw err;
    }
  }
}

/** What the driver reads of pg's Pool to tell a full pool from a lost server. */
interface PoolCounts {
  totalCount: number;
  options: { max: number };
}

/**
 * `serialised: false` leaves out the transaction lock: for the migrations, which kysely serialises with its own
 * advisory lock and which must not wait behind (or hold up) the transactions of running servers.
 */
export class PortablePostgresDialect extends PostgresDialect {
  readonly #config: PostgresDialectConfig;
  readonly #serialised: boolean;
  constructor(config: PostgresDialectConfig, options: { serialised?: boolean } = {}) {
    super(config);
    this.#config = config;
    this.#serialised = options.serialised ?? true;
  }
  override createDriver(): Driver {
    return new SerialPostgresDriver(this.#config, this.#serialised);
  }
  override createQueryCompiler(): QueryCompiler {
    return new PortablePostgresCompiler();
  }
}

/** A SQLite table's rows in insertion order, `batch` at a time, by rowid so that a large table is never held whole. */
export async function* sqliteRowsInOrder(
  db: QueryExecutorProvider,
  table: string,
  batch: number,
): AsyncGenerator<Record<string, unknown>[]> {
  let after = Number.MIN_SAFE_INTEGER;
  for (;;) {
    const { rows } = await sql<Record<string, unknown> & { _rowid: number }>`
      select rowid as _rowid, * from ${sql.table(table)} where rowid > ${after} order by rowid limit ${batch}`.execute(
      db,
    );
    if (rows.length === 0) return;
    after = rows[rows.length - 1]!._rowid;
    yield rows.map(({ _rowid: _, ...row }) => row);
  }
}

/** The tables a SQLite table refers to by foreign key (they must be filled before it). */
export async function sqliteReferencedTables(db: QueryExecutorProvider, table: string): Promise<string[]> {
  const { rows } = await sql<{ table: string }>`select "table" from pragma_foreign_key_list(${table})`.execute(db);
  return [...new Set(rows.map((r) => r.table))];
}

/** After rows were copied with their ids, PostgreSQL's identity counters must continue above the highest one. */
export async function resumeIdentityCounters(db: QueryExecutorProvider): Promise<void> {
  const { rows } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns
    where table_schema = current_schema() and is_identity = 'YES'`.execute(db);
  for (const { table_name: table, column_name: column } of rows) {
    await sql`select setval(pg_get_serial_sequence(${table}, ${column}), coalesce(max(${sql.ref(column)}), 0) + 1, false)
      from ${sql.table(table)}`.execute(db);
  }
}

/**
 * A text column to sort by, compared byte by byte as SQLite does: PostgreSQL would otherwise sort by the
 * database's locale ("alpha" before "Zeta" under en_US), so the same data would list differently per engine.
 */
export function inByteOrder(db: QueryExecutorProvider, column: string): RawBuilder<string> {
  return dialectOf(db) === 'postgres' ? sql<string>`${sql.ref(column)} collate "C"` : sql<string>`${sql.ref(column)}`;
}
