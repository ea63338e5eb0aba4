/** Temp data dirs, a running goldmirror on port 0, and deterministic test data. */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash, type Cipher } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../../config/load.js';
import { isError } from '../../server/errors.js';
import { createLogger } from '../../server/log.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import { startServer, type ServerHandle } from '../../server/serve.js';
import type { Clock } from '../../server/services/deps.js';
import { ingest } from '../../server/services/ingest.js';
import { testDatabaseUrl } from './database.js';
import { testStorageOverrides } from './s3.js';

/**
 * A port that was free a moment ago on 127.0.0.1 (for servers started in child processes, or whose URL must
 * be known before they start). It is drawn from below the kernel's ephemeral range, so a listener on port 0
 * or an outgoing connection elsewhere cannot take it between this check and the server's listen.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const top = Math.min(low, 32768);
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = 10_000 + Math.floor(Math.random() * (top - 10_000));
    if (await canListen(port)) return port;
  }
  throw new Error('no free port found below the ephemeral range');
}

function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high && low > 10_000 + 1000) return [low, high];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function makeTempDir(prefix = 'goldmirror-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Test peers (upstreams, other mirrors) listen on loopback, which outbound fetches refuse unless opened. */
export const TEST_FETCH_ALLOW = '127.0.0.0/8';

export function testConfig(dataDir: string, overrides: Record<string, unknown> = {}): Config {
  return loadConfig({
    env: {},
    overrides: {
      dataDir,
      // On PostgreSQL (MIRROR_TEST_DATABASE_URL) each data dir has its own schema; '' means SQLite in the dir.
      databaseUrl: testDatabaseUrl(dataDir),
      host: '127.0.0.1',
      port: 0,
      minFreeBytes: 0,
      logLevel: 'silent',
      fetchAllow: TEST_FETCH_ALLOW,
      // With MIRROR_TEST_STORAGE=s3 the blobs go to the run's bucket, under this data dir's prefix.
      ...testStorageOverrides(dataDir),
      ...overrides,
    },
  });
}

/** The problems a CONFIG_INVALID error of `fn` names (every bad key at once); fails when it throws nothing or else. */
export function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (isError(err, 'CONFIG_INVALID')) return err.details.problems;
    throw err;
  }
  throw new Error('expected a CONFIG_INVALID error');
}

export interface TestMirror {
  dir: string;
  runtime: Runtime;
  server: ServerHandle;
  url: string;
  close(): Promise<void>;
}

/**
 * A real goldmirror listening on 127.0.0.1:<ephemeral> over a fresh data dir, or over `dir` (kept on close);
 * with `clock`, its services read that clock.
 */
export async function startMirror(
  overrides: Record<string, unknown> = {},
  options: { clock?: Clock; dir?: string } = {},
): Promise<TestMirror> {
  const dir = options.dir ?? (await makeTempDir());
  const config = testConfig(dir, overrides);
  const runtime = await openRuntime(config, createLogger('silent'), { clock: options.clock });
  const server = await startServer(runtime);
  return {
    dir,
    runtime,
    server,
    url: server.url,
    async close() {
      await server.close(1000);
      await runtime.close();
      if (!options.dir) await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Deterministic incompressible bytes: the AES-256-CTR keystream of `seed`.
 * The same (size, seed) always gives the same content, generated in the test
 * at memory speed; testStream() yields exactly the same bytes in chunks.
 */
export function testBytes(size: number, seed = 'goldmirror'): Buffer {
  return keystream(seed).update(Buffer.alloc(size));
}

/** Streams testBytes(size, seed) in chunks of `chunkBytes` without holding them all. */
export async function* testStream(size: number, seed = 'goldmirror', chunkBytes = 1 << 20): AsyncGenerator<Buffer> {
  const cipher = keystream(seed);
  const zeros = Buffer.alloc(chunkBytes);
  for (let produced = 0; produced < size; produced += chunkBytes) {
    const n = Math.min(chunkBytes, size - produced);
    yield cipher.update(n === chunkBytes ? zeros : zeros.subarray(0, n));
  }
}

function keystream(seed: string): Cipher {
  return createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Stores `data` in a mirror through the real ingest path and returns its digest. */
export async function putBlob(mirror: TestMirror, data: Buffer, fileName = 'test.pvmp'): Promise<string> {
  const { blob } = await ingest(mirror.runtime.ingestDeps, { source: [data], fileName });
  return blob.sha256;
}

/** A self-signed certificate for 127.0.0.1 (openssl), written into `dir`; valid for a day. */
export function selfSignedCert(dir: string): { certFile: string; keyFile: string } {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const subject = ['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'];
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', ...subject, '-keyout', keyFile, '-out', certFile],
    {
      stdio: 'ignore',
    },
  );
  return { certFile, keyFile };
}
