/**
 * `goldmirror import --arch`: the architecture is stored with the package
 * (and shown by `list`), bad values and non-.pvmp files are refused with
 * exit code 2 and one line, and the schema itself refuses other values.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../server/db/open.js';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, sha256Hex, testBytes } from '../helpers/env.js';

describe('goldmirror import --arch', () => {
  let dir: string;
  let env: Record<string, string>;
  let pkg: string;
  let txt: string;
  let data: Buffer;

  beforeAll(async () => {
    dir = await makeTempDir();
    env = {
      MIRROR_DATA_DIR: path.join(dir, 'data'),
      MIRROR_PUBLIC_URL: 'http://mirror.test:8080',
      MIRROR_MIN_FREE_BYTES: '0',
    };
    data = testBytes(200 * 1024, 'cli-arch');
    pkg = path.join(dir, 'Win11-arm.pvmp');
    txt = path.join(dir, 'Win11-arm.txt');
    await fs.writeFile(pkg, data);
    await fs.writeFile(txt, `${sha256Hex(data)}  Win11-arm.pvmp\n`.padEnd(95, ' '));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses a .txt given as the package and an unknown architecture, storing nothing', async () => {
    const asPackage = await runCli(['import', txt], env);
    expect(asPackage.code).toBe(2);
    expect(asPackage.stderr).toContain(
      'error: Win11-arm.txt is a checksum file, not a package: pick the .pvmp that "Prepare for Transfer" wrote, and Win11-arm.txt as its checksum file',
    );
    const badArch = await runCli(['import', pkg, '--arch', 'arm'], env);
    expect(badArch.code).toBe(2);
    expect(badArch.stderr.trim()).toBe(
      'goldmirror: error: --arch must be arm64 (Apple silicon), x86_64 (Intel) or unknown, not "arm"',
    );
    expect(JSON.parse((await runCli(['list', '--json'], env)).stdout)).toEqual([]);
  });

  it('stores the architecture, keeps it on a later import without --arch, and lists it', async () => {
    const first = await runCli(['import', pkg, '--arch', 'arm64', '--checksum-file', txt, '--json'], env);
    expect(first.stderr).toBe('');
    expect(JSON.parse(first.stdout)).toMatchObject({
      sha256: sha256Hex(data),
      arch: 'arm64',
      created: true,
      verified: true,
    });
    const again = await runCli(['import', pkg], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('arch:   arm64\n');
    const list = await runCli(['list'], env);
    expect(list.stdout.split('\n')[0]).toMatch(/^SHA256\s+SIZE\s+STATE\s+ARCH\s+STORED\s+NAME$/);
    expect(list.stdout).toMatch(new RegExp(`${sha256Hex(data)}\\s+\\S+ kB\\s+ok\\s+arm64\\s`));
    expect(JSON.parse((await runCli(['list', '--json'], env)).stdout)).toEqual([
      expect.objectContaining({ arch: 'arm64' }),
    ]);
    const corrected = await runCli(['import', pkg, '--arch', 'x86_64', '--json'], env);
    expect(JSON.parse(corrected.stdout)).toMatchObject({ arch: 'x86_64', created: false });
  });

  it('the schema (migration 0008) defaults to unknown and refuses any other value', async () => {
    const db = await openDatabase({ file: path.join(dir, 'schema-check.sqlite') });
    try {
      await db
        .insertInto('blobs')
        .values({ sha256: 'a'.repeat(64), size: 1, name: 'a.pvmp', created_at: 1, state: 'ok', verified_at: null })
        .execute();
      expect((await db.selectFrom('blobs').select('arch').executeTakeFirstOrThrow()).arch).toBe('unknown');
      await expect(sql`update blobs set arch = 'ppc'`.execute(db)).rejects.toThrow(/CHECK constraint failed/);
    } finally {
      await db.destroy();
    }
  });
});
