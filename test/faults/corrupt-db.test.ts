/**
 * A corrupt or truncated database: serve and list stop with one line naming
 * the database file, and leave the file exactly as it was (never "repaired"
 * or silently recreated as an empty catalog).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, testBytes } from '../helpers/env.js';
import { freePort, killAllChildren, listDir, mirrorEnv } from './helpers.js';
import { onPostgres } from '../helpers/database.js';

async function fileHash(file: string): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex');
}

type Damage = (dbFile: string) => Promise<void>;

const damages: Array<[string, Damage, RegExp]> = [
  [
    'header overwritten with garbage',
    async (f) => {
      const handle = await fs.open(f, 'r+');
      await handle.write(Buffer.alloc(100, 'this is not the SQLite header but garbage; '), 0, 100, 0);
      await handle.close();
    },
    /file is not a database/,
  ],
  ['truncated to two pages', (f) => fs.truncate(f, 8192), /malformed|corrupt|integrity check failed/],
  [
    'truncated in the middle of a page',
    (f) => fs.truncate(f, 3 * 4096 + 1234),
    /malformed|corrupt|integrity check failed/,
  ],
  ['truncated to zero bytes', (f) => fs.truncate(f, 0), /empty \(0 bytes\)/],
];

// A damaged file is SQLite's failure; a PostgreSQL server that is down is tested in test/postgres/.
describe.skipIf(onPostgres)('a corrupt database file', () => {
  let work: string;
  let base: string;
  let digest: string;

  beforeAll(async () => {
    work = await makeTempDir('goldmirror-faults-db-');
    base = path.join(work, 'base');
    const pkg = path.join(work, 'pkg.pvmp');
    const data = testBytes(200_000, 'corrupt-db');
    digest = createHash('sha256').update(data).digest('hex');
    await fs.writeFile(pkg, data);
    const env = mirrorEnv(base);
    expect((await runCli(['import', pkg], env)).code).toBe(0);
    for (let i = 0; i < 3; i++) expect((await runCli(['group', 'create', `group-${i}`], env)).code).toBe(0);
    // Closed cleanly: the WAL is checkpointed into the main file and removed.
    expect(await listDir(base)).not.toContain('goldmirror.db-wal');
  });

  afterAll(async () => {
    await killAllChildren();
    await fs.rm(work, { recursive: true, force: true });
  });

  it.each(damages)(
    '%s: serve and list exit 1 with one line naming the file, which stays byte for byte',
    async (name, damage, reason) => {
      const dataDir = path.join(work, name.replace(/\W+/g, '-'));
      await fs.cp(base, dataDir, { recursive: true });
      const dbFile = path.join(dataDir, 'goldmirror.db');
      await damage(dbFile);
      const before = {
        hash: await fileHash(dbFile),
        size: (await fs.stat(dbFile)).size,
        entries: await listDir(dataDir),
      };
      const env = mirrorEnv(dataDir);

      const started = Date.now();
      const [list, serve] = await Promise.all([
        runCli(['list'], env),
        runCli(['serve'], {
          ...env,
          MIRROR_HOST: '127.0.0.1',
          MIRROR_PORT: String(await freePort()),
          MIRROR_LOG_LEVEL: 'info',
        }),
      ]);
      expect(Date.now() - started).toBeLessThan(30_000);
      for (const res of [list, serve]) {
        expect(res.code, res.stderr).toBe(1);
        const lines = res.stderr.trim().split('\n');
        expect(lines, res.stderr).toHaveLength(1);
        expect(lines[0]).toContain(`goldmirror: error: cannot open database ${dbFile}: `);
        expect(lines[0]).toMatch(reason);
      }
      expect(list.stdout).toBe('');
      // Untouched: same bytes, same size, and no new database created beside it.
      expect(await fileHash(dbFile)).toBe(before.hash);
      expect((await fs.stat(dbFile)).size).toBe(before.size);
      expect((await listDir(dataDir)).filter((e) => !/^goldmirror\.db-(wal|shm)$/.test(e))).toEqual(before.entries);
      expect(await listDir(path.join(dataDir, 'blobs', 'sha256', digest.slice(0, 2)))).toEqual([digest]);
    },
  );

  it('the undamaged copy still opens: the errors above came from the damage alone', async () => {
    const res = await runCli(['list', '--json'], mirrorEnv(base));
    expect(res.code, res.stderr).toBe(0);
    expect((JSON.parse(res.stdout) as Array<{ sha256: string }>).map((b) => b.sha256)).toEqual([digest]);
  });
});
