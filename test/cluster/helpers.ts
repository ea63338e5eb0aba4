/**
 * A real `goldmirror serve` with MIRROR_WORKERS (the CLI through tsx, a
 * primary and its forked workers), its JSON log lines, the PIDs its workers
 * log, and downloads that report which worker streams them.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawnCli, waitForOk } from '../helpers/cli.js';
import { freePort, makeTempDir } from '../helpers/env.js';
import { waitForValue } from '../helpers/wait.js';

export const WORKER_HEADER = 'x-goldmirror-worker';

export interface LogLine {
  msg?: string;
  worker?: number;
  pid?: number;
  [key: string]: unknown;
}

export interface RunningCluster {
  dir: string;
  /** The data dir's environment, for `runCli` against the same data. */
  env: Record<string, string>;
  base: string;
  primary: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  lines(): LogLine[];
  /** Worker id → PID, from the workers' own "goldmirror listening" lines. */
  listening(): Map<number, number>;
  /** SIGTERM to the primary, then waits for it (SIGKILL to the primary if it is still there after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<void>;
}

/** A fresh data dir with `prepare` run against it (imports, tokens), then `serve` with `workers` workers, all listening. */
export async function startCluster(
  workers: number,
  extraEnv: Record<string, string> = {},
  prepare: (env: Record<string, string>) => Promise<void> = async () => {},
): Promise<RunningCluster> {
  const dir = await makeTempDir('goldmirror-cluster-');
  const port = await freePort();
  const env = {
    MIRROR_DATA_DIR: path.join(dir, 'data'),
    MIRROR_MIN_FREE_BYTES: '0',
    MIRROR_PUBLIC_URL: `http://127.0.0.1:${port}`,
    MIRROR_FETCH_ALLOW: '127.0.0.0/8',
    ...extraEnv,
  };
  await prepare(env);
  const primary = spawnCli(['serve'], {
    ...env,
    MIRROR_HOST: '127.0.0.1',
    MIRROR_PORT: String(port),
    MIRROR_WORKERS: String(workers),
    MIRROR_LOG_LEVEL: 'info',
  });
  let stderr = '';
  let stdout = '';
  primary.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  primary.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    primary.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const lines = (): LogLine[] =>
    stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
  const listening = (): Map<number, number> =>
    new Map(
      lines()
        .filter((l) => l.msg === 'goldmirror listening' && l.worker !== undefined && l.pid !== undefined)
        .map((l) => [l.worker!, l.pid!]),
    );
  // Under TLS the main port speaks HTTPS with a self-signed certificate; /healthz is asked on the plain port beside it.
  const tls = extraEnv.MIRROR_TLS_CERT !== undefined;
  const cluster: RunningCluster = {
    dir,
    env,
    base: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    primary,
    exited,
    stdout: () => stdout,
    lines,
    listening,
    async stop(timeoutMs = 30_000) {
      if (primary.exitCode === null && primary.signalCode === null) {
        primary.kill('SIGTERM');
        const timer = setTimeout(() => primary.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      await fs.promises.rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitForOk(tls ? `http://127.0.0.1:${extraEnv.MIRROR_HTTP_PORT}/healthz` : `${cluster.base}/healthz`, 60_000);
    // A single process (no cluster) logs no worker field.
    const wanted = workers > 1 ? workers : 0;
    await waitForValue(() => (listening().size >= wanted ? true : undefined), {
      what: `${workers} workers to listen`,
      timeoutMs: 60_000,
      intervalMs: 100,
    });
  } catch (err) {
    await cluster.stop(5000);
    throw new Error(`cluster did not start: ${String(err)}\n${stderr}`);
  }
  return cluster;
}

/** The parent PID of `pid` (from /proc), so a test signals only the workers of its own primary; null once it is gone. */
export function parentPid(pid: number | string): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** The live child processes of `pid`. */
export function childrenOf(pid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name) && parentPid(name) === pid)
    .map(Number);
}

export interface Download {
  /** The worker that answered (its X-Goldmirror-Worker), once the headers arrived. */
  worker: Promise<number>;
  status: Promise<number>;
  /** Ends when the body ended or broke: how many bytes arrived, their SHA-256, and whether the body completed. */
  done: Promise<{ bytes: number; sha256: string; complete: boolean }>;
  abort(): void;
}

/** A GET on a fresh connection (so round robin picks the worker), hashing the body as it arrives. */
export function startDownload(url: string): Download {
  let answered: (res: http.IncomingMessage) => void = () => {};
  let failed: (err: Error) => void = () => {};
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    answered = resolve;
    failed = reject;
  });
  const req = http.get(url, { agent: false }, answered);
  req.on('error', failed);
  const done = response.then(
    (res) =>
      new Promise<{ bytes: number; sha256: string; complete: boolean }>((resolve) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
        });
        // 'end' for a whole body; 'error' or 'close' when the connection broke first.
        let finished = false;
        const finish = (): void => {
          if (finished) return;
          finished = true;
          resolve({ bytes, sha256: hash.digest('hex'), complete: res.complete });
        };
        res.on('end', finish);
        res.on('error', finish);
        res.on('close', finish);
      }),
  );
  const worker = response.then((res) => Number(res.headers[WORKER_HEADER]));
  const status = response.then((res) => res.statusCode ?? 0);
  // Callers may look at only some of these; none of them may end as an unhandled rejection.
  for (const p of [done, worker, status]) p.catch(() => undefined);
  return { worker, status, done, abort: () => req.destroy() };
}

/** Starts downloads of `url` until one is answered by a worker `accept` likes; the others are aborted at once. */
export async function downloadOnWorker(
  url: string,
  accept: (worker: number) => boolean,
  tries = 20,
): Promise<Download> {
  for (let i = 0; i < tries; i += 1) {
    const download = startDownload(url);
    if (accept(await download.worker)) return download;
    download.abort();
    await download.done.catch(() => undefined);
  }
  throw new Error(`no worker accepted after ${tries} downloads of ${url}`);
}
