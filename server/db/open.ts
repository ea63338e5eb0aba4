/**
 * Opens the database: one better-sqlite3 connection per process, WAL so that
 * the CLI and a running server can share the file, a busy timeout so that
 * their writes wait for each other instead of failing.
 */
import fs from 'node:fs';
import SQLite from 'better-sqlite3';
import { CompiledQuery, Kysely, Migrator, SqliteDialect, SqliteDriver, type DatabaseConnection, type Driver, type SqliteDialectConfig } from 'kysely';
import { createFile, FILE_MODE } from '../../storage/file-modes.js';
import { AppError } from '../errors.js';
import { migrationProvider } from './migrations/index.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

export async function openDatabase(file: string, options: { busyTimeoutMs?: number } = {}): Promise<Db> {
  let sqlite: SQLite.Database;
  try {
    // It holds password and token hashes: a new database file is created here with mode 0600 whatever the
    // umask, before SQLite opens it, and SQLite gives its -wal and -shm files the mode of the database file.
    const created = await createDatabaseFile(file);
    // SQLite treats an empty file as a new database, so a catalog truncated to
    // 0 bytes (interrupted restore, disk full during a copy) would be silently
    // replaced by an empty one, and GC would then collect every package as an
    // orphan. Refuse it instead (found by the fault suite, test/faults/corrupt-db.test.ts).
    if (!created && fs.statSync(file, { throwIfNoEntry: false })?.size === 0) {
      throw new Error('the file is empty (0 bytes), probably truncated; restore it from a backup, or delete it to start with an empty database');
    }
    sqlite = new SQLite(file);
    sqlite.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 10_000)}`);
    sqlite.pragma('journal_mode = WAL');
    // NORMAL is durable across application crashes in WAL mode; a power cut
    // can lose the last transactions but never corrupts the file.
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    const check = sqlite.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new Error(`integrity check failed: ${String(check)}`);
  } catch (err) {
    throw new AppError('DATABASE_UNAVAILABLE', `cannot open database ${file}: ${(err as Error).message}`, {}, { cause: err });
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

/**
 * Transactions start with BEGIN IMMEDIATE, taking the write lock up front.
 * Kysely's plain BEGIN is deferred: a transaction that reads and then writes
 * must upgrade its lock, and when another process committed in between SQLite
 * fails that upgrade at once with "database is locked" (SQLITE_BUSY_SNAPSHOT)
 * without consulting the busy timeout. Found by the fault suite
 * (test/faults/sqlite-busy.test.ts: 20 concurrent `group create` runs).
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

async function migrate(db: Db): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new AppError('DATABASE_UNAVAILABLE', `database migration ${failed} failed: ${(error as Error).message}`, {}, {
      cause: error,
    });
  }
}
