import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrationProvider } from '../../server/db/migrations/index.js';

// Migrations are frozen in time: whatever shape their code takes, each step must leave the
// database with exactly the schema recorded in this fixture (taken from the migrations as released).
const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'migrations-schema.json');

/** Per step, the sqlite_master entries it added and those it removed. */
type Snapshot = Record<string, { added: string[]; removed: string[] }>;

function schemaOf(sqlite: SQLite.Database): string[] {
  const rows = sqlite
    .prepare(
      "select type, name, tbl_name, sql from sqlite_master where tbl_name not like 'kysely_%' order by type, name",
    )
    .all() as Array<{ type: string; name: string; tbl_name: string; sql: string | null }>;
  return rows.map((r) => `${r.type} ${r.name} on ${r.tbl_name}: ${r.sql ?? '(implicit)'}`);
}

/** What every migration changes in the schema going up, then going back down. */
async function takeSnapshot(): Promise<Snapshot> {
  const sqlite = new SQLite(':memory:');
  const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
  try {
    const migrator = new Migrator({ db, provider: migrationProvider });
    const names = Object.keys(await migrationProvider.getMigrations());
    const snapshot: Snapshot = {};
    let before = schemaOf(sqlite);
    const record = (step: string): void => {
      const after = schemaOf(sqlite);
      snapshot[step] = {
        added: after.filter((entry) => !before.includes(entry)),
        removed: before.filter((entry) => !after.includes(entry)),
      };
      before = after;
    };
    for (const name of names) {
      const { error } = await migrator.migrateTo(name);
      if (error) throw error as Error;
      record(`up ${name}`);
    }
    for (const name of [...names].reverse()) {
      const { error } = await migrator.migrateDown();
      if (error) throw error as Error;
      record(`down ${name}`);
    }
    return snapshot;
  } finally {
    await db.destroy();
  }
}

describe('migrations', () => {
  it('produce, step by step, the schema recorded when they were released', async () => {
    const snapshot = await takeSnapshot();
    if (process.env.WRITE_SCHEMA_SNAPSHOT === '1') fs.writeFileSync(FIXTURE, `${JSON.stringify(snapshot, null, 1)}\n`);
    const recorded = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as Snapshot;
    expect(Object.keys(snapshot)).toHaveLength(24);
    expect(snapshot).toEqual(recorded);
  });
});
