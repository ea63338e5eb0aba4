/**
 * A read-only data dir: `goldmirror serve` (and a writing command) must stop
 * at once with one clear line, not a stack trace, and never start listening.
 * Root ignores chmod, so as root the data dir is a tmpfs remounted read-only;
 * otherwise a chmod 0555 directory.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, testBytes } from '../helpers/env.js';
import { freePort, isRoot, killAllChildren, mirrorEnv, remount, tryMountTmpfs, unmount } from './helpers.js';

const work = await makeTempDir('goldmirror-faults-ro-');
const mountPoint = path.join(work, 'mnt');
await fs.mkdir(mountPoint);
// As root the only honest read-only dir is a read-only mount; without root, chmod works.
const mountProblem = isRoot ? tryMountTmpfs(mountPoint, '16m') : null;
const skipReason = mountProblem ? `read-only data dir tests skipped: ${mountProblem}` : '';
if (skipReason) console.warn(skipReason);

async function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe.skipIf(mountProblem !== null)(`a read-only data dir${skipReason ? ` (${skipReason})` : ''}`, () => {
  const dataDir = mountPoint;
  const env = mirrorEnv(dataDir);
  const pkg = path.join(work, 'pkg.pvmp');

  beforeAll(async () => {
    await fs.writeFile(pkg, testBytes(64 * 1024, 'ro'));
    // A real, initialised data dir with one package in it, then made read-only.
    const res = await runCli(['import', pkg], env);
    expect(res.code, res.stderr).toBe(0);
    if (isRoot) remount(mountPoint, 'ro');
    else await fs.chmod(mountPoint, 0o555);
  });

  afterAll(async () => {
    await killAllChildren();
    if (isRoot) {
      if (!mountProblem) unmount(mountPoint);
    } else await fs.chmod(mountPoint, 0o755).catch(() => undefined);
    await fs.rm(work, { recursive: true, force: true });
  });

  it('really is read-only', async () => {
    await expect(fs.writeFile(path.join(dataDir, 'probe'), 'x')).rejects.toMatchObject({
      code: isRoot ? 'EROFS' : 'EACCES',
    });
  });

  it('serve exits non-zero within seconds with one line naming the data dir, and never listens', async () => {
    const port = await freePort();
    const started = Date.now();
    const res = await runCli(['serve'], {
      ...env,
      MIRROR_HOST: '127.0.0.1',
      MIRROR_PORT: String(port),
      MIRROR_LOG_LEVEL: 'info',
    });
    const took = Date.now() - started;
    expect(res.code).toBe(1);
    expect(took).toBeLessThan(20_000);
    const lines = res.stderr.trim().split('\n');
    expect(lines, res.stderr).toHaveLength(1);
    expect(lines[0]).toBe(
      `goldmirror: error: data directory ${dataDir} is not writable (${isRoot ? 'EROFS' : 'EACCES'})`,
    );
    expect(res.stdout).toBe('');
    expect(await refused(port)).toBe(true);
  });

  it('serve on a data dir still to be created inside a read-only filesystem fails the same way', async () => {
    const nested = path.join(dataDir, 'new-data');
    const res = await runCli(['serve'], {
      ...env,
      MIRROR_DATA_DIR: nested,
      MIRROR_HOST: '127.0.0.1',
      MIRROR_PORT: String(await freePort()),
    });
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toBe(
      `goldmirror: error: data directory ${nested} is not writable (${isRoot ? 'EROFS' : 'EACCES'})\n`,
    );
  });

  it('a writing command (import) fails with the same one line', async () => {
    const res = await runCli(['import', pkg], env);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/^goldmirror: error: data directory .* is not writable \((EROFS|EACCES)\)\n$/);
  });
});

if (mountProblem) {
  describe('a read-only data dir', () => {
    it.skip(skipReason, () => undefined);
  });
}
