/**
 * `goldmirror migrate-db`: a SQLite mirror with a catalog in every table moves to PostgreSQL, and a server started
 * on the copy answers exactly what the SQLite one answered. Needs a PostgreSQL server (MIRROR_TEST_DATABASE_URL).
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../server/db/open.js';
import { catalogTables, countTableRows } from '../../server/db/repos/database.js';
import { createLogger } from '../../server/log.js';
import { openRuntime } from '../../server/runtime.js';
import { startServer } from '../../server/serve.js';
import { anyNumber, bootstrapTestAdmin, call, issueToken, matching, mustSignIn, type Session } from '../helpers/api.js';
import { runCli } from '../helpers/cli.js';
import { onPostgres, testDatabaseUrl } from '../helpers/database.js';
import { makeTempDir, putBlob, startMirror, testBytes, testConfig, type TestMirror } from '../helpers/env.js';

describe.skipIf(!onPostgres)('goldmirror migrate-db', () => {
  let sqliteMirror: TestMirror;
  let dir: string;
  let target: string;
  let token: string;
  let sqliteCounts: Record<string, number>;
  const answers: Record<string, unknown> = {};
  const READS = ['/api/v1/images', '/api/v1/groups', '/api/v1/blobs', '/api/v1/tokens', '/api/v1/audit?limit=100'];
  const env = (): Record<string, string> => ({
    MIRROR_DATA_DIR: dir,
    MIRROR_DATABASE_URL: '',
    MIRROR_LOG_LEVEL: 'warn',
  });

  beforeAll(async () => {
    // A mirror on SQLite (the default a user starts with), with rows in images, groups, users, sessions, tokens,
    // audit, blobs, download stats and the download log.
    sqliteMirror = await startMirror({ databaseUrl: '', publicUrl: 'http://mirror.test:8080' });
    dir = sqliteMirror.dir;
    await bootstrapTestAdmin(sqliteMirror);
    token = await issueToken(sqliteMirror, 'kept-across');
    const session = await mustSignIn(sqliteMirror.url);
    const arm = await putBlob(sqliteMirror, testBytes(50_000, 'mig-arm'), 'Win11-arm.pvmp');
    const x86 = await putBlob(sqliteMirror, testBytes(40_000, 'mig-x86'), 'Win11-x86.pvmp');
    const api = (method: string, path: string, json?: unknown, s: Session = session) =>
      call<{ id: number }>(sqliteMirror.url, method, path, { session: s, json });
    const image = (await api('POST', '/api/v1/images', { name: 'Win 11', arm64: { enabled: true, sha256: arm } })).body;
    await api('POST', '/api/v1/images', { name: 'Win 11 Intel', x86_64: { enabled: true, sha256: x86 } });
    for (const name of ['Sales', 'HQ', 'Support'])
      await api('POST', '/api/v1/groups', {
        name,
        imageId: name === 'Support' ? null : image.id,
        primary: name === 'HQ',
      });
    const link = `${sqliteMirror.url}/d/${arm}/Win11-arm.pvmp`;
    expect((await fetch(link)).status).toBe(200);
    await sqliteMirror.server.close(1000);
    await sqliteMirror.runtime.close(); // flushes the download counts

    // What the SQLite catalog answers at rest: the PostgreSQL copy must answer the same.
    await readAnswers(testConfig(dir, { databaseUrl: '', publicUrl: 'http://mirror.test:8080' }), answers);
    const sqlite = await openDatabase({ file: `${dir}/goldmirror.db` });
    sqliteCounts = {};
    for (const table of await catalogTables(sqlite)) sqliteCounts[table] = await countTableRows(sqlite, table);
    await sqlite.destroy();
    target = testDatabaseUrl(await makeTempDir('goldmirror-migrate-target-'));
  });

  async function readAnswers(config: ReturnType<typeof testConfig>, into: Record<string, unknown>): Promise<void> {
    const runtime = await openRuntime(config, createLogger('silent'));
    const server = await startServer(runtime);
    try {
      for (const path of READS) into[path] = (await call(server.url, 'GET', path, { token })).body;
    } finally {
      await server.close(1000);
      await runtime.close();
    }
  }

  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('copies every table, says what to set next, and a server on the copy answers as the SQLite one did', async () => {
    for (const table of ['images', 'groups', 'users', 'sessions', 'api_tokens', 'audit_log', 'blobs', 'download_log'])
      expect({ table, rows: sqliteCounts[table] }).toEqual({ table, rows: anyNumber() });
    expect(sqliteCounts.groups).toBe(3);

    const text = await runCli(['migrate-db', '--to', target], env());
    expect({ code: text.code, stderr: text.stderr }).toEqual({ code: 0, stderr: '' });
    expect(text.stdout).toMatch(/every table has the same number of rows/);
    expect(text.stdout).toMatch(/set MIRROR_DATABASE_URL=postgres/);
    expect(text.stdout).toMatch(new RegExp(`MIRROR_DATA_DIR=${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

    const copied = await openDatabase({ url: target });
    try {
      for (const [table, rows] of Object.entries(sqliteCounts))
        expect({ table, rows: await countTableRows(copied, table) }).toEqual({ table, rows });
    } finally {
      await copied.destroy();
    }

    const onPostgresCopy = testConfig(dir, { databaseUrl: target, publicUrl: 'http://mirror.test:8080' });
    const copiedAnswers: Record<string, unknown> = {};
    await readAnswers(onPostgresCopy, copiedAnswers);
    expect(copiedAnswers).toEqual(answers);
    const runtime = await openRuntime(onPostgresCopy, createLogger('silent'));
    const server = await startServer(runtime);
    try {
      // The admin's password and the packages' files came along: sign in, download.
      const session = await mustSignIn(server.url);
      const images = answers['/api/v1/images'] as Array<{ id: number; arm64: { sha256: string | null } }>;
      const arm = images.find((i) => i.arm64.sha256)!.arm64.sha256!;
      expect((await fetch(`${server.url}/d/${arm}/Win11-arm.pvmp`)).status).toBe(200);
      // New rows continue above the copied ids.
      const created = await call<{ id: number }>(server.url, 'POST', '/api/v1/groups', {
        session,
        json: { name: 'New' },
      });
      expect(created.status, created.text).toBe(201);
      const maxId = Math.max(...(answers['/api/v1/groups'] as Array<{ id: number }>).map((g) => g.id));
      expect(created.body.id).toBeGreaterThan(maxId);
    } finally {
      await server.close(1000);
      await runtime.close();
    }
  });

  it('refuses a target that holds rows unless --force, and then replaces them', async () => {
    const refused = await runCli(['migrate-db', '--to', target], env());
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already holds \d+ row\(s\); give --force/);
    const db = await openDatabase({ url: target });
    try {
      expect(await countTableRows(db, 'groups')).toBe(4); // the group made on PostgreSQL is still there
      const forced = await runCli(['migrate-db', '--to', target, '--force', '--json'], env());
      expect({ code: forced.code, stderr: forced.stderr }).toEqual({ code: 0, stderr: '' });
      const report = JSON.parse(forced.stdout) as {
        tables: Array<{ table: string; rows: number }>;
        replacedRows: number;
      };
      expect(report.replacedRows).toBeGreaterThan(0);
      expect(Object.fromEntries(report.tables.map((t) => [t.table, t.rows]))).toEqual(sqliteCounts);
      expect(await countTableRows(db, 'groups')).toBe(3);
    } finally {
      await db.destroy();
    }
  });

  it('refuses bad input with one clear line and changes nothing', async () => {
    const noUrl = await runCli(['migrate-db'], env());
    expect({ code: noUrl.code, err: noUrl.stderr }).toEqual({
      code: 2,
      err: matching(/give --to postgres:\/\//),
    });
    const mysql = await runCli(['migrate-db', '--to', 'mysql://x@127.0.0.1/db'], env());
    expect(mysql.code).toBe(2);
    const empty = await makeTempDir();
    const noCatalog = await runCli(['migrate-db', '--to', target], { ...env(), MIRROR_DATA_DIR: empty });
    expect(noCatalog.code).toBe(1);
    expect(noCatalog.stderr).toMatch(/no SQLite catalog at .*goldmirror\.db/);
    expect(await fs.readdir(empty)).toEqual([]);
    const down = await runCli(['migrate-db', '--to', 'postgres://nobody@127.0.0.1:1/none'], env());
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot open database postgres:\/\/nobody@127\.0\.0\.1:1\/none/);
    expect(down.stderr).not.toMatch(/\n\s+at /);
  });
});
