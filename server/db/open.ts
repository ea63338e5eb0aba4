/**
 * Opens the database and brings its schema up to date: embedded SQLite (one better-sqlite3 connection per process,
 * WAL so that the CLI and a running server can share the file, a busy timeout so that their writes wait for each
 * other) or a PostgreSQL server shared by every process and node (a pg pool).
 */
import fs from 'node:fs';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, sql } from 'kysely';
import pg from 'pg';
import { createFile, FILE_MODE } from '../../storage/file-modes.js';
import { AppError, isError } from '../errors.js';
import {
  dialectOf,
  ImmediateSqliteDialect,
  PortablePostgresDialect,
  postgresTypeParsers,
  tuneSqliteConnection,
} from './dialect.js';
import { migrationProvider } from './migrations/index.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

/** Where the catalog lives: a SQLite file, or a PostgreSQL URL (`postgres://user:pass@host:5432/db?sslmode=…`). */
export type DatabaseTarget =
  | { file: string; busyTimeoutMs?: number }
  | { url: string; poolSize?: number; connectTimeoutMs?: number; lockTimeoutMs?: number };

export function openDatabase(target: DatabaseTarget): Promise<Db> {
  return 'url' in target ? openPostgres(target) : openSqlite(target.file, target);
}

/** A URL with its passwords replaced (the user-info one and a `password`/`sslpassword` parameter), for messages and logs. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of ['password', 'sslpassword'])
      if (parsed.searchParams.has(key)) parsed.searchParams.set(key, '***');
    return parsed.toString();
  } catch {
    return '(an unparsable URL)';
  }
}

async function openPostgres(target: Extract<DatabaseTarget, { url: string }>): Promise<Db> {
  const pool = new pg.Pool({
    connectionString: target.url,
    max: target.poolSize ?? 10,
    // Fail a request fast (503) while the server is down, rather than queueing it behind a connect that hangs.
    connectionTimeoutMillis: target.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    // Bounds, so that one stuck process (a hung file system under a transaction, a frozen box) cannot hold the
    // transaction lock, and so every writer everywhere, for longer than a minute; a dead peer is noticed by TCP.
    keepAlive: true,
    lock_timeout: target.lockTimeoutMs ?? 15_000,
    statement_timeout: 60_000,
    idle_in_transaction_session_timeout: 60_000,
    query_timeout: 65_000,
    types: postgresTypeParsers((oid, format) => pg.types.getTypeParser(oid, format)),
  });
  // An idle connection that the server drops (restart, failover) is reported here; without a listener it would
  // crash the process. The pool replaces it on the next query.
  pool.on('error', () => {});
  // The same for a connection in use: its query fails (DATABASE_UNAVAILABLE), and the pool drops it when released.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<Database>({ dialect: new PortablePostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy().catch(() => {});
    const reason = isError(err) && err.cause instanceof Error ? err.cause.message : (err as Error).message;
    throw new AppError(
      'DATABASE_UNAVAILABLE',
      `cannot open database ${redactedUrl(target.url)}: ${reason}`,
      {},
      { cause: err },
    );
  }
  try {
    // On the same pool, without the transaction lock: kysely's migration lock serialises the migrations, and a
    // process starting (a CLI command, say) must not wait behind a running server's transaction just to find
    // nothing to migrate. Never destroyed: that would end the shared pool.
    await migrate(new Kysely<Database>({ dialect: new PortablePostgresDialect({ pool }, { serialised: false }) }));
  } catch (err) {
    await db.destroy().catch(() => {});
    throw err;
  }
  return db;
}

async function openSqlite(file: string, options: { busyTimeoutMs?: number }): Promise<Db> {
  let sqlite: SQLite.Database;
  try {
    // It holds password and token hashes: a new database file is created here with mode 0600 whatever the
    // umask, before SQLite opens it, and SQLite gives its -wal and -shm files the mode of the database file.
    const created = await createDatabaseFile(file);
    // SQLite treats an empty file as a new database, so a catalog truncated to
    // 0 bytes (interrupted restore, disk full during a copy) would be silently
    // replaced by an empty one, and GC would then collect every package as an
    // orphan. Refuse it instead.
    if (!created && fs.statSync(file, { throwIfNoEntry: false })?.size === 0) {
      throw new Error(
        'the file is empty (0 bytes), probably truncated; restore it from a backup, or delete it to start with an empty database',
      );
    }
    sqlite = new SQLite(file);
    const check = tuneSqliteConnection(sqlite, options.busyTimeoutMs ?? 10_000);
    if (check !== 'ok') throw new Error(`integrity check failed: ${check}`);
  } catch (err) {
    throw new AppError(
      'DATABASE_UNAVAILABLE',
      `cannot open database ${file}: ${(err as Error).message}`,
      {},
      { cause: err },
    );
  }
  const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: sqlite }) });
  try {
    await migrate(db);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
}

/** Creates `file` empty with mode 0600 unless it exists (or is SQLite's in-memory name); true when created. */
async function createDatabaseFile(file: string): Promise<boolean> {
  if (file === ':memory:' || file === '') return false;
  try {
    await (await createFile(file, FILE_MODE)).close();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

async function migrate(db: Db): Promise<void> {
  // kysely looks for its bookkeeping tables in every schema it can see; on PostgreSQL pin them to the schema the
  // connection writes to (the first of its search_path), so two catalogs in one database never share them.
  const migrationTableSchema =
    dialectOf(db) === 'postgres'
      ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema
      : undefined;
  const migrator = new Migrator({ db, provider: migrationProvider, migrationTableSchema });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new AppError(
      'DATABASE_UNAVAILABLE',
      `database migration ${failed} failed: ${(error as Error).message}`,
      {},
      {
        cause: error,
      },
    );
  }
}
