/** The `workers` setting: MIRROR_WORKERS, the config file and `serve --workers`, with "auto" and the bad values named. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, problemsOf } from '../helpers/env.js';

describe('the workers setting', () => {
  it('defaults to 1 and reads a count or "auto" (the cores this process may use)', () => {
    expect(loadConfig({ env: {} }).workers).toBe(1);
    expect(loadConfig({ env: { MIRROR_WORKERS: '4' } }).workers).toBe(4);
    expect(loadConfig({ env: { MIRROR_WORKERS: 'auto' } }).workers).toBe(os.availableParallelism());
    expect(loadConfig({ env: {}, overrides: { workers: '3' } }).workers).toBe(3);
  });

  it('takes a number or "auto" from the config file', async () => {
    const dir = await makeTempDir();
    try {
      for (const [value, want] of [
        [2, 2],
        ['auto', os.availableParallelism()],
      ] as const) {
        const file = path.join(dir, 'c.json');
        await fs.writeFile(file, JSON.stringify({ workers: value }));
        expect(loadConfig({ configPath: file, env: {} }).workers).toBe(want);
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('names a bad value with where it came from', () => {
    for (const bad of ['0', '-1', 'many', '1.5', '257']) {
      expect(problemsOf(() => loadConfig({ env: { MIRROR_WORKERS: bad } }))).toEqual([
        'MIRROR_WORKERS: must be "auto" or a whole number from 1 to 256',
      ]);
    }
  });

  it('refuses a bad --workers before anything starts (exit code 2)', async () => {
    const dir = await makeTempDir();
    try {
      const res = await runCli(['serve', '--workers', 'lots'], { MIRROR_DATA_DIR: path.join(dir, 'data') });
      expect(res.code).toBe(2);
      expect(res.stderr).toContain('--workers: must be "auto" or a whole number from 1 to 256');
      await expect(fs.access(path.join(dir, 'data'))).rejects.toThrow();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
