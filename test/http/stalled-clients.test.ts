/**
 * Memory under clients that never read: goldmirror runs as a child process
 * (so its RSS is its own), a thousand sockets each request a 64 MiB package
 * and never read a byte, and the server's VmRSS may grow by at most 64 MiB.
 * Before the fix each such download pinned two 1 MiB read buffers.
 */
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli, waitForOk } from '../helpers/cli.js';
import { freePort, makeTempDir, testStream } from '../helpers/env.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const CLIENTS = 1000;
const PACKAGE_BYTES = 64 * MiB;
const MAX_ADDED_RSS = 64 * MiB;

function rssBytes(pid: number): number {
  const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (!kib) throw new Error(`no VmRSS for ${pid}`);
  return Number(kib) * 1024;
}

/** Both ends of every socket live on this machine: the test's and the server's. */
function openFileLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === 'unlimited' ? Infinity : Number(soft);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a thousand clients that never read', () => {
  let dir: string;
  let env: Record<string, string>;
  let sha256: string;
  let token: string;

  beforeAll(async () => {
    dir = await makeTempDir();
    env = { MIRROR_DATA_DIR: path.join(dir, 'data'), MIRROR_MIN_FREE_BYTES: '0', MIRROR_LOG_LEVEL: 'warn' };
    const file = path.join(dir, 'big.pvmp');
    const handle = await fs.open(file, 'w');
    for await (const chunk of testStream(PACKAGE_BYTES, 'stalled-clients', 4 * MiB)) await handle.write(chunk);
    await handle.close();
    const imported = await runCli(['import', file, '--json'], env);
    expect(imported.code, imported.stderr).toBe(0);
    sha256 = (JSON.parse(imported.stdout) as { sha256: string }).sha256;
    await fs.rm(file);
    const created = await runCli(['token', 'create', 'metrics'], env);
    expect(created.code, created.stderr).toBe(0);
    token = created.stdout.trim().split('\n').pop()!.trim();
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it(`${CLIENTS} stalled downloads of a 64 MiB package add at most 64 MiB to the server's RSS`, async () => {
    // Node raises its own soft limit to the hard limit at start; the test and the server each need a socket per client.
    expect(
      openFileLimit(),
      'raise the open-file limit (ulimit -n) to at least 2500 for this test',
    ).toBeGreaterThanOrEqual(CLIENTS * 2 + 200);
    const port = await freePort();
    // All clients share 127.0.0.1: the per-client cap is lifted; the total cap keeps its default.
    const server = spawnCli(['serve'], {
      ...env,
      MIRROR_HOST: '127.0.0.1',
      MIRROR_PORT: String(port),
      MIRROR_MAX_DOWNLOADS_PER_CLIENT: '0',
    });
    let logs = '';
    server.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
    const exited = new Promise<number | null>((r) => server.on('exit', (code) => r(code)));
    const base = `http://127.0.0.1:${port}`;
    const sockets: net.Socket[] = [];
    /** The sum over every series of a metric (0 when it has none yet). */
    const metric = async (name: string): Promise<number> => {
      const text = await (await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${token}` } })).text();
      const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) => Number(m[1]));
      return values.reduce((a, b) => a + b, 0);
    };
    try {
      await waitForOk(`${base}/healthz`);
      // A server that has served: one complete download first (page cache warm, read buffers allocated).
      const warm = await fetch(`${base}/d/${sha256}/big.pvmp`);
      expect((await warm.arrayBuffer()).byteLength).toBe(PACKAGE_BYTES);
      await metric('goldmirror_active_downloads');
      await sleep(1000);
      const before = rssBytes(server.pid!);

      for (let i = 0; i < CLIENTS; i += 1) {
        const socket = net.connect({ port, host: '127.0.0.1' });
        socket.on('error', () => undefined);
        // Never read: a paused socket whose reading never starts leaves every byte in the kernel.
        socket.pause();
        socket.write(`GET /d/${sha256}/big.pvmp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
        sockets.push(socket);
        if (i % 100 === 99) await sleep(10);
      }
      // Every one of them is a download in progress (nothing refused), not a connection still queued.
      await waitFor(async () => (await metric('goldmirror_active_downloads')) >= CLIENTS, {
        what: `all ${CLIENTS} downloads to start`,
        timeoutMs: 60_000,
        intervalMs: 200,
      });
      expect(await metric('goldmirror_download_slots_used')).toBe(CLIENTS);
      expect(await metric('goldmirror_downloads_refused_total')).toBe(0);
      // Let the server settle (reads in flight finish, buffers go back), then take the highest of a few samples.
      await sleep(2000);
      let after = 0;
      for (let i = 0; i < 8; i += 1) {
        after = Math.max(after, rssBytes(server.pid!));
        await sleep(250);
      }
      const added = after - before;
      // Visible in the test output: the figure itself, not only pass/fail.
      console.info(
        `stalled clients: server RSS ${(before / MiB).toFixed(1)} → ${(after / MiB).toFixed(1)} MiB (+${(added / MiB).toFixed(1)} MiB for ${CLIENTS})`,
      );
      expect(added).toBeLessThanOrEqual(MAX_ADDED_RSS);
      expect(await metric('goldmirror_active_downloads')).toBe(CLIENTS);
    } finally {
      for (const socket of sockets) socket.destroy();
      server.kill('SIGTERM');
    }
    expect(await exited, logs).toBe(0);
  });
});
