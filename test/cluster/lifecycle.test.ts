/**
 * How `goldmirror serve --workers` starts and stops, with the real CLI:
 * SIGTERM drains every worker (an in-flight download completes, the primary
 * exits 0), a drain longer than the shutdown timeout is cut, workers that
 * cannot start stop the primary with an error, and one worker means today's
 * single process (no cluster, no worker header).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../helpers/cli.js';
import { freePort, makeTempDir, sha256Hex, testBytes } from '../helpers/env.js';
import { httpRequest } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { WORKER_HEADER, childrenOf, startCluster, startDownload } from './helpers.js';

const MiB = 1024 * 1024;
const big = testBytes(12 * MiB, 'cluster-drain');

async function importBig(env: Record<string, string>): Promise<void> {
  await fs.promises.mkdir(env.MIRROR_DATA_DIR!, { recursive: true });
  const file = path.join(path.dirname(env.MIRROR_DATA_DIR!), 'big.pvmp');
  await fs.promises.writeFile(file, big);
  const imported = await runCli(['import', file, '--json'], env);
  expect(imported.code, imported.stderr).toBe(0);
}

/**
 * Whether a new connection is refused (nothing accepts on the port any more). A connection the primary accepted
 * just as the workers closed waits until the primary lets go of the port, so one try gives up after a second.
 */
function refused(url: string): Promise<boolean> {
  const attempt = httpRequest(url).then(
    () => false,
    (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
  );
  return Promise.race([attempt, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000))]);
}

describe('serve --workers: start and stop', () => {
  it('SIGTERM drains: new connections are refused, the running download completes, the primary exits 0', async () => {
    // 3 MiB/s per worker: the download takes about 4 s, well inside the 20 s shutdown timeout.
    const c = await startCluster(
      2,
      { MIRROR_MAX_BYTES_PER_SEC: String(3 * MiB), MIRROR_SHUTDOWN_TIMEOUT: '20s' },
      importBig,
    );
    try {
      const url = `${c.base}/d/${sha256Hex(big)}/big.pvmp`;
      const download = startDownload(url);
      expect(await download.status).toBe(200);
      const signalledAt = Date.now();
      c.primary.kill('SIGTERM');
      await waitFor(() => refused(`${c.base}/healthz`), { what: 'the port to stop accepting', timeoutMs: 5000 });
      const result = await download.done;
      expect(result).toMatchObject({ complete: true, bytes: big.length, sha256: sha256Hex(big) });
      expect(await c.exited).toEqual({ code: 0, signal: null });
      expect(Date.now() - signalledAt).toBeLessThan(20_000);
      const stopped = c.lines().filter((l) => l.msg === 'worker stopped');
      expect(stopped.map((l) => l.code)).toEqual([0, 0]);
      expect(c.lines().some((l) => l.msg === 'all workers stopped' && l.exitCode === 0)).toBe(true);
    } finally {
      await c.stop();
    }
  });

  it('a drain longer than the shutdown timeout is cut, and the primary still exits 0', async () => {
    const c = await startCluster(
      2,
      { MIRROR_MAX_BYTES_PER_SEC: String(MiB), MIRROR_SHUTDOWN_TIMEOUT: '1s' },
      importBig,
    );
    try {
      const download = startDownload(`${c.base}/d/${sha256Hex(big)}/big.pvmp`);
      expect(await download.status).toBe(200);
      const signalledAt = Date.now();
      c.primary.kill('SIGTERM');
      const result = await download.done;
      expect(result.complete).toBe(false);
      expect(result.bytes).toBeLessThan(big.length);
      expect(await c.exited).toEqual({ code: 0, signal: null });
      // The 12 s download was cut at the 1 s timeout, not waited for.
      expect(Date.now() - signalledAt).toBeLessThan(8_000);
    } finally {
      await c.stop();
    }
  });

  it('workers that cannot start (the port is taken) stop the primary with exit code 1', async () => {
    const dir = await makeTempDir('goldmirror-cluster-');
    const blocker = net.createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const primary = spawnCli(['serve'], {
        MIRROR_DATA_DIR: path.join(dir, 'data'),
        MIRROR_HOST: '127.0.0.1',
        MIRROR_PORT: String(port),
        MIRROR_WORKERS: '2',
        MIRROR_MIN_FREE_BYTES: '0',
        MIRROR_ADMIN_PASSWORD: 'cluster-test-password',
      });
      let stderr = '';
      primary.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => primary.on('exit', resolve));
      expect(code, stderr).toBe(1);
      expect(stderr).toContain('EADDRINUSE');
      expect(stderr).toContain('a worker failed to start: stopping');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  });

  it('with one worker it is a single process: no cluster, no worker header or log field', async () => {
    const c = await startCluster(1, { MIRROR_ADMIN_PASSWORD: 'cluster-test-password' });
    try {
      const reply = await httpRequest(`${c.base}/healthz`, { headers: { 'X-Request-Id': 'single' } });
      expect(reply.status).toBe(200);
      expect(reply.headers[WORKER_HEADER]).toBeUndefined();
      expect(childrenOf(c.primary.pid!)).toEqual([]);
      await waitFor(() => c.lines().some((l) => l.reqId === 'single'), { what: 'the request log line' });
      const line = c.lines().find((l) => l.reqId === 'single')!;
      expect(line.worker).toBeUndefined();
      expect(c.lines().some((l) => l.msg === 'starting workers')).toBe(false);
    } finally {
      await c.stop();
    }
    expect((await c.exited).code).toBe(0);
  });
});
