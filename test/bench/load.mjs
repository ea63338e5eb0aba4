#!/usr/bin/env node
// Load figure: sustained download throughput and API latency while 64 clients
// download and an integrity check runs. Loopback only, bounded in time.
//
//   npm run bench:load [-- --seconds 30 --clients 64 --size-mib 512 --workers 2]
//
// Starts the built goldmirror (dist/) on a free 127.0.0.1 port with a temp data
// dir, imports a generated package, creates an API token, keeps integrity checks
// of every package running, and lets N clients download the package in full,
// over and over, while one client polls GET /api/v1/images every 100 ms.
// --workers N runs `serve --workers N` (peak RSS is then of the whole process tree).
// Writes test/bench/results/load-latest.{json,md} (load-latest-workersN.* with --workers N > 1).
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const args = Object.fromEntries(
  process.argv
    .slice(2)
    .reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
const seconds = Math.min(Number(args.seconds ?? 30), 300);
const clients = Math.min(Number(args.clients ?? 64), 256);
const sizeMiB = Math.min(Number(args['size-mib'] ?? 512), 4096);
const workers = args.workers === 'auto' ? os.availableParallelism() : Math.min(Number(args.workers ?? 1), 64);
if (!Number.isInteger(workers) || workers < 1) throw new Error('--workers: a whole number from 1 to 64, or auto');

/** VmRSS (bytes) of `root` and all its descendants (Linux /proc; 0 elsewhere). */
function treeRss(root) {
  const parentOf = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const inTree = (pid) => pid === root || (parentOf.has(pid) && pid !== 1 && inTree(parentOf.get(pid)));
  let bytes = 0;
  for (const pid of parentOf.keys()) {
    if (!inTree(pid)) continue;
    try {
      bytes += Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      // exited meanwhile
    }
  }
  return bytes;
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(cmd, argv, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${argv.join(' ')}: ${err}`))));
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  if (!fs.existsSync(path.join(root, 'dist/server/cli/run.js'))) await run('npm', ['run', 'build'], {});
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'goldmirror-load-'));
  const dataDir = path.join(work, 'data');
  const file = path.join(work, 'load.pvmp');
  const cipher = createCipheriv(
    'aes-256-ctr',
    createHash('sha256').update('goldmirror-load').digest(),
    Buffer.alloc(16),
  );
  const fd = fs.openSync(file, 'w');
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < sizeMiB; i += 1) fs.writeSync(fd, cipher.update(zeros));
  fs.closeSync(fd);

  const port = await freePort();
  // Every client is 127.0.0.1: the per-client download cap (16) would refuse most of them.
  const env = {
    MIRROR_DATA_DIR: dataDir,
    MIRROR_HOST: '127.0.0.1',
    MIRROR_PORT: String(port),
    MIRROR_MIN_FREE_BYTES: '0',
    MIRROR_LOG_LEVEL: 'warn',
    MIRROR_MAX_DOWNLOADS_PER_CLIENT: '0',
    MIRROR_WORKERS: String(workers),
  };
  const cli = (argv) => run(process.execPath, ['bin/goldmirror.js', ...argv], env);
  const { sha256 } = JSON.parse(await cli(['import', file, '--json']));
  const token = (await cli(['token', 'create', 'load'])).trim().split('\n').pop();
  const server = spawn(process.execPath, ['bin/goldmirror.js', 'serve'], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: 'ignore',
  });
  const base = `http://127.0.0.1:${port}`;
  const stop = () => {
    server.kill('SIGTERM');
    fs.rmSync(work, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    stop();
    process.exit(130);
  });
  try {
    for (let i = 0; ; i += 1) {
      const ok = await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (i > 300) throw new Error('server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Every worker up before the clock starts (each answers with its X-Goldmirror-Worker on a fresh connection).
    for (let i = 0, seen = new Set(); workers > 1 && seen.size < workers; i += 1) {
      if (i > 300) throw new Error(`only ${seen.size} of ${workers} workers answered`);
      const worker = await new Promise((resolve) =>
        http
          .get(`${base}/healthz`, { agent: false }, (res) => {
            res.resume();
            resolve(res.headers['x-goldmirror-worker']);
          })
          .on('error', () => resolve(undefined)),
      );
      if (worker) seen.add(worker);
      await new Promise((r) => setTimeout(r, 100));
    }
    const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    await fetch(`${base}/api/v1/images`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ name: 'Load', arm64: { enabled: true, sha256 } }),
    });

    const deadline = Date.now() + seconds * 1000;
    let bytes = 0;
    let downloads = 0;
    let errors = 0;
    const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
    const downloader = async () => {
      while (Date.now() < deadline) {
        await new Promise((resolve) => {
          const req = http.get(`${base}/d/${sha256}/load.pvmp`, { agent }, (res) => {
            if (res.statusCode !== 200) errors += 1;
            res.on('data', (c) => (bytes += c.length));
            res.on('end', () => {
              downloads += 1;
              resolve();
            });
            res.on('error', () => resolve());
          });
          req.setTimeout(Math.max(1000, deadline - Date.now() + 1000), () => req.destroy());
          req.on('error', () => {
            if (Date.now() < deadline) errors += 1;
            resolve();
          });
        });
      }
    };
    const latencies = [];
    const apiPoller = async () => {
      while (Date.now() < deadline) {
        const t = performance.now();
        const res = await fetch(`${base}/api/v1/images`, { headers: auth }).catch(() => null);
        if (!res || !res.ok) errors += 1;
        else await res.arrayBuffer();
        latencies.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    let checks = 0;
    const checker = async () => {
      while (Date.now() < deadline) {
        const res = await fetch(`${base}/api/v1/verify`, {
          method: 'POST',
          headers: auth,
          body: JSON.stringify({ all: true, wait: true }),
        }).catch(() => null);
        if (res?.ok) {
          const body = await res.json();
          if (Object.values(body.results).every((r) => r === 'ok')) checks += 1;
          else errors += 1;
        }
      }
    };
    let peakRss = 0;
    const sampler = setInterval(() => {
      try {
        peakRss = Math.max(peakRss, treeRss(server.pid));
      } catch {
        // not on Linux
      }
    }, 200);
    const started = performance.now();
    await Promise.all([...Array.from({ length: clients }, downloader), apiPoller(), checker()]);
    const elapsed = (performance.now() - started) / 1000;
    clearInterval(sampler);
    agent.destroy();
    latencies.sort((a, b) => a - b);
    const result = {
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        cpu: os.cpus()[0]?.model,
        memoryGiB: Math.round(os.totalmem() / 2 ** 30),
        node: process.version,
      },
      settings: { seconds, clients, sizeMiB, workers },
      downloadMBps: Math.round(bytes / elapsed / 1e6),
      completedDownloads: downloads,
      integrityChecksCompleted: checks,
      apiLatencyMs: {
        p50: +percentile(latencies, 50).toFixed(1),
        p99: +percentile(latencies, 99).toFixed(1),
        samples: latencies.length,
      },
      serverPeakRssMiB: Math.round(peakRss / 2 ** 20),
      errors,
    };
    const out = path.join(here, 'results');
    fs.mkdirSync(out, { recursive: true });
    const name = workers > 1 ? `load-latest-workers${workers}` : 'load-latest';
    fs.writeFileSync(path.join(out, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
    const md = [
      '# goldmirror load figure',
      '',
      `${result.date}, ${result.machine.cpus} × ${result.machine.cpu}, ${result.machine.memoryGiB} GiB, Node ${result.machine.node}.`,
      `goldmirror as \`serve --workers ${workers}\`${workers > 1 ? ' (RSS of the whole process tree)' : ' (one process)'}.`,
      `${clients} clients downloading a ${sizeMiB} MiB package in full, over and over, for ${seconds} s, while integrity checks of every`,
      'package run back to back and one client polls GET /api/v1/images every 100 ms (all on loopback, client and server share the cores).',
      '',
      '| figure | value |',
      '| --- | --- |',
      `| sustained download throughput | ${result.downloadMBps} MB/s |`,
      `| completed downloads | ${downloads} |`,
      `| integrity checks completed (all ok) | ${checks} |`,
      `| API latency p50 / p99 | ${result.apiLatencyMs.p50} / ${result.apiLatencyMs.p99} ms (${latencies.length} requests) |`,
      `| server peak RSS | ${result.serverPeakRssMiB} MiB |`,
      `| errors | ${errors} |`,
      '',
    ].join('\n');
    fs.writeFileSync(path.join(out, `${name}.md`), md);
    process.stdout.write(md);
    if (errors > 0) process.exitCode = 1;
  } finally {
    stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
