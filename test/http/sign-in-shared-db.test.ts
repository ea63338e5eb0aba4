/**
 * Sign-in throttling across processes that share one database: a burst of
 * wrong passwords from one address, spread over two servers on one SQLite
 * file, gets at most the free allowance of 401s in total. First two runtimes
 * in this process (each its own connection), then two real `goldmirror
 * serve` processes.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/log.js';
import { openRuntime } from '../../server/runtime.js';
import { startServer } from '../../server/serve.js';
import { bootstrapAdmin } from '../../server/services/auth/bootstrap.js';
import { FREE_FAILURES } from '../../server/services/login-throttle.js';
import { hashingState } from '../../server/services/password-hashing.js';
import { ADMIN_PASSWORD } from '../helpers/api.js';
import { spawnCli, waitForOk } from '../helpers/cli.js';
import { freePort, makeTempDir, testConfig } from '../helpers/env.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** POST /api/v1/session as `admin` from `localAddress`; resolves with the status. */
function signInFrom(baseUrl: string, localAddress: string, password: string): Promise<number> {
  const body = JSON.stringify({ username: 'admin', password });
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${baseUrl}/api/v1/session`,
      {
        method: 'POST',
        localAddress,
        agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** `count` wrong passwords from one address at once, taking turns between the servers. */
async function burst(urls: string[], address: string, count: number): Promise<Record<number, number>> {
  const statuses = await Promise.all(
    Array.from({ length: count }, (_, i) => signInFrom(urls[i % urls.length]!, address, `wrong guess ${i}`)),
  );
  const counts: Record<number, number> = {};
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

async function tempDir(): Promise<string> {
  const dir = await makeTempDir();
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('sign-in throttling over several processes on one database', () => {
  it('two runtimes on one SQLite file: a 30-request burst gets at most the free allowance of 401s between them', async () => {
    const dir = await tempDir();
    const urls: string[] = [];
    for (let i = 0; i < 2; i += 1) {
      const runtime = await openRuntime(testConfig(dir), createLogger('silent'));
      cleanups.push(() => runtime.close());
      if (i === 0) await bootstrapAdmin(runtime, dir, ADMIN_PASSWORD);
      const server = await startServer(runtime);
      cleanups.push(() => server.close(1000));
      urls.push(server.url);
    }
    const hashedBefore = hashingState().hashesRun;
    const counts = await burst(urls, '127.0.0.21', 30);
    expect(counts[401] ?? 0).toBeGreaterThanOrEqual(1);
    expect(counts[401] ?? 0).toBeLessThanOrEqual(FREE_FAILURES);
    expect((counts[401] ?? 0) + (counts[429] ?? 0)).toBe(30);
    // Only the attempts answered about their password were hashed (both runtimes share this process's queue).
    expect(hashingState().hashesRun - hashedBefore).toBe(counts[401]);
    // Locked on both, whichever the next attempt reaches; another address signs in on both.
    for (const url of urls) {
      expect(await signInFrom(url, '127.0.0.21', ADMIN_PASSWORD)).toBe(429);
      expect(await signInFrom(url, '127.0.0.22', ADMIN_PASSWORD)).toBe(200);
    }
  });

  it('two `goldmirror serve` processes on one data dir: the same limit holds', async () => {
    const dir = await tempDir();
    const urls: string[] = [];
    for (let i = 0; i < 2; i += 1) {
      const port = await freePort();
      const child = spawnCli(['serve'], {
        MIRROR_DATA_DIR: dir,
        MIRROR_HOST: '127.0.0.1',
        MIRROR_PORT: String(port),
        MIRROR_MIN_FREE_BYTES: '0',
        MIRROR_LOG_LEVEL: 'warn',
        MIRROR_ADMIN_PASSWORD: ADMIN_PASSWORD,
      });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      cleanups.push(async () => {
        child.kill('SIGTERM');
        await exited;
      });
      const url = `http://127.0.0.1:${port}`;
      // One after the other: the first start creates the admin, the second finds it.
      await waitForOk(`${url}/healthz`, 30_000);
      urls.push(url);
    }
    const counts = await burst(urls, '127.0.0.23', 30);
    expect(counts[401] ?? 0).toBeGreaterThanOrEqual(1);
    expect(counts[401] ?? 0).toBeLessThanOrEqual(FREE_FAILURES);
    expect((counts[401] ?? 0) + (counts[429] ?? 0)).toBe(30);
    for (const url of urls) {
      expect(await signInFrom(url, '127.0.0.23', ADMIN_PASSWORD)).toBe(429);
      expect(await signInFrom(url, '127.0.0.24', ADMIN_PASSWORD)).toBe(200);
    }
  });
});
