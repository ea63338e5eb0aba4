/**
 * Shared pieces of the fault suite: spawned `goldmirror serve` processes that
 * can be SIGKILLed, raw tus requests, and one consistency check of a data dir
 * that every crash test ends with.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'vitest';
import { runCli, spawnCli } from '../helpers/cli.js';
import { freePort, testStream } from '../helpers/env.js';
import { httpRequest, type HttpReply } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { catalogRows } from '../helpers/database.js';

export { freePort };
/** The shared raw HTTP client (test/helpers/http.ts) under the names the fault tests use. */
export const request = httpRequest;
export type RawResponse = HttpReply;

/** Every child a fault test starts; killAllChildren() in afterEach/afterAll ends them by pid. */
const children = new Set<ChildProcess>();

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export async function killAllChildren(): Promise<void> {
  await Promise.all([...children].map((c) => kill9(c)));
}

/** SIGKILL one child and wait until it is gone. */
export async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

export function waitExit(
  child: ChildProcess,
  timeoutMs = 60_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null)
      return resolve({ code: child.exitCode, signal: child.signalCode });
    const timer = setTimeout(
      () => reject(new Error(`child ${child.pid} did not exit within ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** The environment every CLI call and server of a fault test gets. */
export function mirrorEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    MIRROR_DATA_DIR: dataDir,
    MIRROR_MIN_FREE_BYTES: '0',
    MIRROR_PUBLIC_URL: 'http://mirror.test:8080',
    MIRROR_LOG_LEVEL: 'warn',
    MIRROR_FETCH_ALLOW: '127.0.0.0/8',
    ...extra,
  };
}

export interface ServeProc {
  child: ChildProcess;
  url: string;
  output(): { stdout: string; stderr: string };
}

/** `goldmirror serve` in a child process on 127.0.0.1:<free port>; resolves once /healthz answers 200. */
export async function startServe(env: Record<string, string>, timeoutMs = 30_000): Promise<ServeProc> {
  const port = await freePort();
  const child = track(
    spawnCli(['serve'], {
      ...env,
      MIRROR_HOST: '127.0.0.1',
      MIRROR_PORT: String(port),
    }),
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const healthy = async (): Promise<boolean> => {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`goldmirror serve exited early (${child.exitCode ?? child.signalCode}): ${stderr}`);
    }
    try {
      const res = await fetch(`${url}/healthz`);
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false; // not listening yet
    }
  };
  await waitFor(healthy, { what: 'goldmirror serve to become healthy', timeoutMs, intervalMs: 100 }).catch(
    (err: unknown) => {
      if (child.exitCode !== null || child.signalCode !== null) throw err;
      throw new Error(`goldmirror serve did not become healthy within ${timeoutMs} ms: ${stderr}`);
    },
  );
  return { child, url, output: () => ({ stdout, stderr }) };
}

/** `goldmirror token create NAME`; the token is the last stdout line. */
export async function createToken(env: Record<string, string>, name: string): Promise<string> {
  const res = await runCli(['token', 'create', name], env);
  expect(res.code, res.stderr).toBe(0);
  const token = res.stdout.trim().split('\n').pop()!.trim();
  expect(token.length).toBeGreaterThan(16);
  return token;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function listDir(dir: string): Promise<string[]> {
  return (await fs.readdir(dir).catch(() => [] as string[])).sort();
}

/** Writes testBytes(size, seed) to `file` without holding it in memory. */
export async function writeTestFile(file: string, size: number, seed: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(
    Readable.from(testStream(size, seed)),
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk);
        yield chunk;
      }
    },
    createWriteStream(file),
  );
  return hash.digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** GETs `url` and hashes the body as it streams; never buffers it. */
export function downloadSha256(
  url: string,
  headers: Record<string, string> = {},
  agent?: http.Agent,
): Promise<{ status: number; sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        hash.update(d);
        bytes += d.length;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          sha256: hash.digest('hex'),
          bytes,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

// ---- tus (raw HTTP, protocol 1.0.0) ----

export const TUS = { 'Tus-Resumable': '1.0.0' };

export function tusMetadata(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
    .join(',');
}

/** POST /api/v1/uploads; resolves with the absolute upload URL (or the failed response). */
export async function tusCreate(
  baseUrl: string,
  token: string,
  options: { length?: number; filename?: string; checksum?: string },
): Promise<{ res: RawResponse; uploadUrl: string | null }> {
  const meta: Record<string, string> = {
    filename: options.filename ?? 'upload.pvmp',
  };
  if (options.checksum) meta.checksum = options.checksum;
  const headers: Record<string, string | number> = {
    ...TUS,
    Authorization: `Bearer ${token}`,
    'Upload-Metadata': tusMetadata(meta),
    'Content-Length': 0,
  };
  if (options.length === undefined) headers['Upload-Defer-Length'] = 1;
  else headers['Upload-Length'] = options.length;
  const res = await request(`${baseUrl}/api/v1/uploads`, {
    method: 'POST',
    headers,
  });
  const location = res.headers.location;
  return {
    res,
    uploadUrl: res.status === 201 && location ? new URL(location, baseUrl).href : null,
  };
}

export function tusPatchHeaders(
  token: string,
  offset: number,
  extra: Record<string, string | number> = {},
): Record<string, string | number> {
  return {
    ...TUS,
    Authorization: `Bearer ${token}`,
    'Content-Type': 'application/offset+octet-stream',
    'Upload-Offset': offset,
    ...extra,
  };
}

// ---- data dir checks ----

export interface ListedBlob {
  sha256: string;
  size: number;
  state: string;
}

export interface ConsistencyReport {
  rows: ListedBlob[];
  files: string[];
  orphans: string[];
  doctor: {
    ok: boolean;
    problems: string[];
    files: {
      orphaned: string[];
      missing: string[];
      tmpFiles: number;
      unfinishedUploads: number;
    };
  };
}

/**
 * The invariants a crash must not break:
 * - every file under blobs/ is named by the sha256 of its content, in its fan-out dir (nothing partial is visible);
 * - tmp/ is empty (the restarted server removed dead writers' temp files);
 * - every database row has its file, of its size, in state ok;
 * - `goldmirror verify --all` exits 0;
 * - `goldmirror doctor --json` is ok, or (allowOrphans) reports only blob files without a row. Those are
 *   complete, correctly named blobs from a kill between the file rename and the row insert (ingest) or
 *   between the row delete and the unlink (gc); they are never served (no row) and gc removes them after
 *   the grace period, so they are the one leftover a crash may leave.
 * - with a server URL, every row downloads with exactly its digest.
 */
export async function checkConsistency(
  dataDir: string,
  env: Record<string, string>,
  options: {
    allowOrphans?: boolean;
    serverUrl?: string;
    maxDownloads?: number;
  } = {},
): Promise<ConsistencyReport> {
  const blobsDir = path.join(dataDir, 'blobs', 'sha256');
  const files: string[] = [];
  for (const fanout of await listDir(blobsDir)) {
    expect(fanout, `unexpected entry under blobs/sha256: ${fanout}`).toMatch(/^[0-9a-f]{2}$/);
    for (const name of await listDir(path.join(blobsDir, fanout))) {
      expect(name, `unexpected file name under blobs/sha256/${fanout}`).toMatch(/^[0-9a-f]{64}$/);
      expect(name.startsWith(fanout)).toBe(true);
      expect(await sha256File(path.join(blobsDir, fanout, name)), `blob file ${name} is not named by its content`).toBe(
        name,
      );
      files.push(name);
    }
  }
  expect(await listDir(path.join(dataDir, 'tmp')), 'temp files survived the restart').toEqual([]);

  // Rows straight from the catalog, beside a running server.
  const rows = await catalogRows<ListedBlob>(dataDir, 'select sha256, size, state from blobs order by sha256');
  // The two CLI runs are independent; in parallel they take half as long.
  const [verify, doctorRun] = await Promise.all([runCli(['verify', '--all'], env), runCli(['doctor', '--json'], env)]);
  const onDisk = new Set(files);
  for (const row of rows) {
    expect(row.state).toBe('ok');
    expect(onDisk.has(row.sha256), `row ${row.sha256} has no file`).toBe(true);
    const st = await fs.stat(path.join(blobsDir, row.sha256.slice(0, 2), row.sha256));
    expect(st.size).toBe(row.size);
  }
  const known = new Set(rows.map((r) => r.sha256));
  const orphans = files.filter((f) => !known.has(f));
  if (!options.allowOrphans) expect(orphans).toEqual([]);

  expect(verify.code, `verify --all: ${verify.stdout}\n${verify.stderr}`).toBe(0);

  const doctor = JSON.parse(doctorRun.stdout) as ConsistencyReport['doctor'];
  if (orphans.length === 0) {
    expect(doctor.problems).toEqual([]);
    expect(doctor.ok).toBe(true);
    expect(doctorRun.code).toBe(0);
  } else {
    // Only the orphan complaint is acceptable (see above).
    expect(doctor.problems).toHaveLength(1);
    expect(doctor.problems[0]).toMatch(/have no database row \(goldmirror gc removes them/);
    expect([...doctor.files.orphaned].sort()).toEqual([...orphans].sort());
  }
  expect(doctor.files.missing).toEqual([]);
  expect(doctor.files.tmpFiles).toBe(0);

  if (options.serverUrl) {
    for (const row of rows.slice(0, options.maxDownloads ?? rows.length)) {
      const got = await downloadSha256(`${options.serverUrl}/d/${row.sha256}/check.pvmp`);
      expect(got).toEqual({ status: 200, sha256: row.sha256, bytes: row.size });
    }
  }
  return { rows, files, orphans, doctor };
}

// ---- mounts (root only) ----

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Mounts a tmpfs of `size` on `dir`; returns null on success, else why it failed. */
export function tryMountTmpfs(dir: string, size: string): string | null {
  if (!isRoot) return 'not running as root, cannot mount a tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], {
      stdio: 'pipe',
    });
    return null;
  } catch (err) {
    return `mount -t tmpfs failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
}

export function remount(dir: string, mode: 'ro' | 'rw'): void {
  execFileSync('mount', ['-o', `remount,${mode}`, dir], { stdio: 'pipe' });
}

export function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // Busy (a child still holds a file): detach it lazily rather than leave it mounted.
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    } catch {
      // not mounted
    }
  }
}
