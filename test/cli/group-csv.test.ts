/** `goldmirror group export|import`: the real CLI on a running mirror's data dir, files and stdin/stdout. */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGroup } from '../../server/services/groups.js';
import { cliArgs, repoRoot, runCli } from '../helpers/cli.js';
import { startMirror, type TestMirror } from '../helpers/env.js';
import { withTestDatabase } from '../helpers/database.js';
import { withTestStorage } from '../helpers/s3.js';

describe('goldmirror group export and import', () => {
  let mirror: TestMirror;
  let env: Record<string, string>;
  const names = async () =>
    (await mirror.runtime.db.selectFrom('groups').select('name').orderBy('id').execute()).map((g) => g.name);

  beforeAll(async () => {
    mirror = await startMirror();
    env = { MIRROR_DATA_DIR: mirror.dir, MIRROR_MIN_FREE_BYTES: '0', USER: 'csv-tester' };
    await createGroup(
      mirror.runtime,
      { kind: 'system', name: 'test' },
      { name: 'Sales', licenseKey: 'K-1', primary: true },
    );
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it('exports to a file or standard output', async () => {
    const file = path.join(mirror.dir, 'groups.csv');
    const toFile = await runCli(['group', 'export', file], env);
    expect({ code: toFile.code, stderr: toFile.stderr }).toEqual({ code: 0, stderr: `wrote 1 group to ${file}\n` });
    expect(await fs.readFile(file, 'utf8')).toBe('\uFEFFname,license_key,primary,image\r\nSales,K-1,yes,\r\n');
    const toStdout = await runCli(['group', 'export'], env);
    expect(toStdout.stdout).toBe('\uFEFFname,license_key,primary,image\r\nSales,K-1,yes,\r\n');
  });

  it('imports a file (dry run first), and from standard input', async () => {
    const file = path.join(mirror.dir, 'new.csv');
    await fs.writeFile(file, 'name,license_key,primary\nSales,K-1,no\nSupport,,yes\n');
    const dry = await runCli(['group', 'import', file, '--dry-run', '--json'], env);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toEqual({ dryRun: true, created: ['Support'], updated: ['Sales'], unchanged: [] });
    expect(await names()).toEqual(['Sales']);
    const real = await runCli(['group', 'import', file], env);
    expect({ code: real.code, stdout: real.stdout }).toEqual({
      code: 0,
      stdout: 'created 1: Support\nupdated 1: Sales\nunchanged 0\n',
    });
    expect(await names()).toEqual(['Sales', 'Support']);

    const child = spawn(process.execPath, cliArgs(['group', 'import', '-', '--json']), {
      cwd: repoRoot,
      env: { ...process.env, ...withTestStorage(withTestDatabase(env)) },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.end('name\r\nFrom stdin\r\n');
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ created: ['From stdin'] });
  });

  it('fails with exit code 1 and every bad line on one line of stderr, changing nothing', async () => {
    const file = path.join(mirror.dir, 'bad.csv');
    await fs.writeFile(file, 'name,primary\nOK,no\nBad,sometimes\n,no\n');
    const before = await names();
    const res = await runCli(['group', 'import', file], env);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      'goldmirror: error: nothing was imported: line 3 (primary): "sometimes" is neither yes nor no; line 4 (name): must not be empty\n',
    );
    expect(await names()).toEqual(before);
    const missing = await runCli(['group', 'import', path.join(mirror.dir, 'nope.csv')], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^goldmirror: error: ENOENT/);
  });
});
