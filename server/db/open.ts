/**
 * Opens the database: one better-sqlite3 connection per process, WAL so that
 * the CLI and a running server can share the file, a busy timeout so that
 * their writes wait for each other instead of failing.
 */
import fs from 'node:fs';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator } from 'kysely';
import { createFile, FILE_MODE } from '../../storage/file-modes.js';
import { AppError } from '../errors.js';
import { ImmediateSqliteDialect, tuneSqliteConnection } from './dialect.js';
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
  const migrator = new Migrator({ db, provider: migrationProvider });
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
