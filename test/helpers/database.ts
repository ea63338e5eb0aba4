/**
 * Which database the suites run on. Without MIRROR_TEST_DATABASE_URL: embedded SQLite in each test's data dir, as a
 * user gets by default. With it (a PostgreSQL URL; `.ci/run` starts a throwaway server and sets it): every data dir a
 * test makes gets its own schema in that database, named after the dir, so an in-process mirror and the CLI children
 * a test spawns on the same dir share one catalog, and no two tests see each other's rows.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';

export const testDatabaseServer = process.env.MIRROR_TEST_DATABASE_URL ?? '';
export const onPostgres = testDatabaseServer !== '';

/** Prefix of the schemas the suites make. */
export const TEST_SCHEMA_PREFIX = 'gm_t_';
/**
 * This run's part of the name (set by the global setup before the test processes start, so they inherit it): the
 * teardown drops only this run's schemas, never those of another run on the same server.
 */
export const RUN_ENV = 'GOLDMIRROR_TEST_RUN';
export const runSchemaPrefix = (run: string): string => `${TEST_SCHEMA_PREFIX}${run}_`;

const created = new Set<string>();

/** The schema for a data dir (created once per process), as a URL to put in MIRROR_DATABASE_URL; '' on SQLite. */
export function testDatabaseUrl(dataDir: string): string {
  if (!onPostgres) return '';
  const run = process.env[RUN_ENV] ?? 'norun';
  const schema = runSchemaPrefix(run) + createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 20);
  if (!created.has(schema)) {
    psql(`create schema if not exists ${schema}`);
    created.add(schema);
  }
  // Not URLSearchParams: it writes the space as '+', which pg's URL parser keeps as a plus sign.
  const separator = testDatabaseServer.includes('?') ? '&' : '?';
  return `${testDatabaseServer}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

/** `env` for a child goldmirror, with the database of its MIRROR_DATA_DIR added when the suites run on PostgreSQL. */
export function withTestDatabase(env: Record<string, string>): Record<string, string> {
  if (!onPostgres || env.MIRROR_DATABASE_URL !== undefined || env.MIRROR_DATA_DIR === undefined) return env;
  return { ...env, MIRROR_DATABASE_URL: testDatabaseUrl(env.MIRROR_DATA_DIR) };
}

/** Runs one statement on the test server with psql (synchronous, so that testConfig can stay synchronous). */
export function psql(statement: string, url = testDatabaseServer): string {
  return execFileSync('psql', ['--no-psqlrc', '-qAt', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', statement], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Rows of one query, read straight from the catalog of a data dir while a server may be using it: from the SQLite file
 * (read-only; WAL lets it share the file), or from the data dir's schema on PostgreSQL. Values come back as text on
 * PostgreSQL and as stored on SQLite; callers compare with that in mind or use numbers for both.
 */
export async function catalogRows<T extends object>(dataDir: string, query: string): Promise<T[]> {
  if (onPostgres) {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: testDatabaseUrl(dataDir) });
    await client.connect();
    try {
      return (await client.query<Record<string, unknown>>(query)).rows.map((row) => numbersParsed(row) as T);
    } finally {
      await client.end();
    }
  }
  const { default: SQLite } = await import('better-sqlite3');
  const reader = new SQLite(path.join(dataDir, 'goldmirror.db'), { readonly: true, fileMustExist: true });
  try {
    return reader.prepare<[], T>(query).all();
  } finally {
    reader.close();
  }
}

/** pg gives int8 and numeric as text; the catalog's numbers are all safe integers, so compare them as numbers. */
function numbersParsed(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(row).map(([k, v]) => [k, typeof v === 'string' && /^-?\d{1,15}$/.test(v) ? Number(v) : v]),
  );
}
