/**
 * What clients that stop reading cost the server in buffers, over plain HTTP
 * (bytes written straight to the socket) and over TLS (small copies through
 * the TLS stream): the buffer memory of the process stays within the read
 * pool's fixed size plus a few KiB per client, where each such client used to
 * pin two 1 MiB read buffers. Then the clients read after all and get every
 * byte right. The clients run in a child process, so only the server's
 * buffers are measured, and garbage is collected before each measurement, so
 * only what the server still holds counts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingest } from '../../server/services/ingest.js';
import { onS3 } from '../helpers/s3.js';
import { makeTempDir, selfSignedCert, startMirror, testStream, type TestMirror } from '../helpers/env.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const CLIENTS = 100;
const SIZE = 24 * MiB;
/**
 * The read pool (16 MiB, fixed) plus 64 KiB per client; before, it was 2 MiB per client (200 MiB here). From
 * a bucket, each stalled client also holds what its paused GET had already read off its socket, and that
 * varies with Node's HTTP client (up to about 300 KiB a client on Node 24): there the bound only guards against
 * pinning whole read buffers per client (512 KiB allowed). The README lists this gap of stalled clients on S3.
 */
const MAX_BUFFER_GROWTH = 16 * MiB + CLIENTS * (onS3 ? 512 : 64) * 1024;

/** Hundreds of sockets on a shared machine settle slowly; the memory settle check compares polls 25 ms apart. */
const WAIT = { timeoutMs: 20_000, intervalMs: 25 };

const clientScript = fileURLToPath(new URL('../helpers/stalled-clients.ts', import.meta.url));

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** Buffer memory still referenced once garbage is collected (twice: freeing some buffers waits for a turn). */
async function heldBuffers(): Promise<number> {
  collectGarbage();
  await new Promise((r) => setTimeout(r, 50));
  collectGarbage();
  return process.memoryUsage().arrayBuffers;
}

async function slotsUsed(mirror: TestMirror): Promise<number> {
  return (await mirror.runtime.metrics.downloadSlotsUsed.get()).values[0]?.value ?? 0;
}

interface Answer {
  status: number;
  length: number;
  sha256: string;
}

/** Starts CLIENTS stalled downloads in a child process; `read(k)` makes the first k read to the end. */
async function stallMany(
  mirror: TestMirror,
  mode: 'plain' | 'tls',
  urlPath: string,
): Promise<{ growth: number; read: (k: number) => Promise<Answer[]>; child: ChildProcess }> {
  const before = await heldBuffers();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', clientScript, new URL(mirror.url).port, urlPath, String(CLIENTS), mode],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const line = await lines.next();
    if (line.done) throw new Error('the client process ended early');
    return line.value;
  };
  expect(await next()).toBe('ready');
  await waitFor(async () => (await slotsUsed(mirror)) === CLIENTS, WAIT);
  // Let every transfer run into its full socket and settle.
  let last = -1;
  await waitFor(() => {
    const now = process.memoryUsage().arrayBuffers;
    const settled = Math.abs(now - last) < MiB;
    last = now;
    return settled;
  }, WAIT);
  await new Promise((r) => setTimeout(r, 500));
  const growth = (await heldBuffers()) - before;
  console.info(`${CLIENTS} stalled ${mode} clients: buffer memory +${(growth / MiB).toFixed(1)} MiB`);
  const read = async (k: number): Promise<Answer[]> => {
    child.stdin.write(`read ${k}\n`);
    return JSON.parse(await next()) as Answer[];
  };
  return { growth, read, child };
}

describe('buffer memory of clients that stop reading', () => {
  let dir: string;
  let plain: TestMirror;
  let secure: TestMirror;
  let sha256: string;
  let secureSha256: string;

  beforeAll(async () => {
    dir = await makeTempDir('goldmirror-memory-');
    const { certFile, keyFile } = selfSignedCert(dir);
    plain = await startMirror({ maxDownloadsPerClient: 0 });
    secure = await startMirror({ maxDownloadsPerClient: 0, tlsCert: certFile, tlsKey: keyFile });
    sha256 = (await ingest(plain.runtime.ingestDeps, { source: testStream(SIZE, 'memory'), fileName: 'm.pvmp' })).blob
      .sha256;
    secureSha256 = (await ingest(secure.runtime.ingestDeps, { source: testStream(SIZE, 'memory'), fileName: 'm.pvmp' }))
      .blob.sha256;
  });
  afterAll(async () => {
    await plain?.close();
    await secure?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('plain HTTP: a few KiB per stalled client, and each gets the whole file once it reads', async () => {
    const { growth, read, child } = await stallMany(plain, 'plain', `/d/${sha256}/m.pvmp`);
    try {
      expect(growth).toBeLessThan(MAX_BUFFER_GROWTH);
      const answers = await read(4);
      expect(answers).toHaveLength(4);
      for (const answer of answers) expect(answer).toEqual({ status: 200, length: SIZE, sha256 });
    } finally {
      child.kill();
    }
    await waitFor(async () => (await slotsUsed(plain)) === 0, WAIT);
  });

  it('TLS: the same bound through the TLS stream, and the same bytes', async () => {
    const { growth, read, child } = await stallMany(secure, 'tls', `/d/${secureSha256}/m.pvmp`);
    try {
      expect(growth).toBeLessThan(MAX_BUFFER_GROWTH);
      const answers = await read(4);
      expect(answers).toHaveLength(4);
      for (const answer of answers) expect(answer).toEqual({ status: 200, length: SIZE, sha256: secureSha256 });
    } finally {
      child.kill();
    }
    await waitFor(async () => (await slotsUsed(secure)) === 0, WAIT);
  });
});
