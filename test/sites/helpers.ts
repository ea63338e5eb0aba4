/**
 * The sites suite's pieces: real `goldmirror serve` processes (a primary and
 * its replicas, each on its own port of 127.0.0.1 with that URL as its public
 * URL, restartable on the same port and data dir, killable with -9), the
 * primary's setup through its API, and a Mac's GET from a chosen loopback
 * source address (127.0.0.x: the address a site's networks match).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'vitest';
import { ROUTING_TABLE_TTL_MS } from '../../server/services/routing.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { freePort, makeTempDir, sha256Hex, TEST_FETCH_ALLOW } from '../helpers/env.js';
import { httpRequest, type HttpReply } from '../helpers/http.js';
import { waitFor, waitForValue } from '../helpers/wait.js';

/** Replicas heartbeat and the primary probes every second (the minimum), so states change within a few seconds. */
export const INTERVAL_MS = 1000;
/** How long the primary decides with the rows it read before reading them again. */
export const TABLE_TTL_MS = ROUTING_TABLE_TTL_MS;

export interface Node {
  name: string;
  port: number;
  /** http://127.0.0.1:<port>: where it listens; its public URL unless the test set another. */
  url: string;
  dataDir: string;
  /** Its environment, for `runCli` against the same data dir. */
  env: Record<string, string>;
  child: ChildProcess | null;
  /** What it logged since its last start. */
  log(): string;
  start(): Promise<void>;
  kill9(): Promise<void>;
}

/** A directory for one file's nodes and the processes they run; close() kills what still runs and removes it. */
export interface Cluster {
  dir: string;
  node(name: string, env?: Record<string, string>): Promise<Node>;
  /** What every node logged since its last start, but its request lines (for a failed test's report). */
  logs(): string;
  close(): Promise<void>;
}

export async function cluster(): Promise<Cluster> {
  const dir = await makeTempDir('goldmirror-sites-');
  const nodes: Node[] = [];
  return {
    dir,
    async node(name, extra = {}) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const dataDir = path.join(dir, name);
      const env: Record<string, string> = {
        MIRROR_DATA_DIR: dataDir,
        MIRROR_MIN_FREE_BYTES: '0',
        MIRROR_PUBLIC_URL: url,
        MIRROR_FETCH_ALLOW: TEST_FETCH_ALLOW,
        MIRROR_HEARTBEAT_INTERVAL: String(INTERVAL_MS),
        MIRROR_REPLICA_CHECK_INTERVAL: String(INTERVAL_MS),
        MIRROR_LOG_LEVEL: 'info',
        ...extra,
      };
      const node = newNode(name, port, url, dataDir, env);
      nodes.push(node);
      return node;
    },
    logs() {
      return nodes
        .map((n) => {
          // Without the per-request lines: what the jobs (sync, heartbeat, probes) said.
          const lines = n
            .log()
            .split('\n')
            .filter((l) => l !== '' && !l.includes('"msg":"request"'));
          return `--- ${n.name} (${n.url})\n${lines.join('\n')}`;
        })
        .join('\n');
    },
    async close() {
      await Promise.all(nodes.map((n) => n.kill9()));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

function newNode(name: string, port: number, url: string, dataDir: string, env: Record<string, string>): Node {
  let output = '';
  const node: Node = {
    name,
    port,
    url,
    dataDir,
    env,
    child: null,
    log: () => output,
    async start() {
      output = '';
      const child = spawnCli(['serve'], { ...env, MIRROR_HOST: '127.0.0.1', MIRROR_PORT: String(port) });
      node.child = child;
      child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const healthy = async (): Promise<boolean> => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`${name} exited early (${child.exitCode ?? child.signalCode}):\n${output}`);
        try {
          const res = await fetch(`${url}/healthz`);
          await res.arrayBuffer();
          return res.status === 200;
        } catch {
          return false; // not listening yet
        }
      };
      await waitFor(healthy, { what: `${name} to answer /healthz`, timeoutMs: 60_000, intervalMs: 100 });
    },
    async kill9() {
      const child = node.child;
      node.child = null;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    },
  };
  return node;
}

/** `goldmirror token create NAME --scope SCOPE` on a node's data dir (before or while it runs). */
export async function cliToken(node: Node, name: string, scope: 'admin' | 'sync'): Promise<string> {
  const res = await runCli(['token', 'create', name, '--scope', scope], node.env);
  expect(res.code, res.stderr).toBe(0);
  return res.stdout.trim().split('\n').pop()!.trim();
}

/** One JSON API call with an admin (or sync) token. */
export async function api<T = unknown>(
  base: string,
  token: string,
  method: string,
  route: string,
  json?: unknown,
): Promise<{ status: number; body: T; text: string }> {
  const res = await fetch(`${base}/api/v1${route}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(json === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: json === undefined ? undefined : JSON.stringify(json),
    redirect: 'manual',
  });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (a 204)
  }
  return { status: res.status, body: body as T, text };
}

const BOUNDARY = '----goldmirror-sites-test';

/** Uploads a package through the admin upload form (API token) and makes a golden image of it, so sync copies it. */
export async function addPackage(primary: Node, token: string, data: Buffer, imageName: string): Promise<string> {
  const sha256 = sha256Hex(data);
  const form = Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="package"; filename="${imageName}.pvmp"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
    data,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
  const upload = await fetch(`${primary.url}/admin/upload`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}` },
    body: form,
    redirect: 'manual',
  });
  expect(upload.status, await upload.text()).toBe(303);
  const image = await api(primary.url, token, 'POST', '/images', {
    name: imageName,
    arm64: { enabled: true, sha256 },
  });
  expect(image.status, image.text).toBe(201);
  return sha256;
}

export interface ReplicaView {
  id: number;
  publicUrl: string;
  site: string;
  state: string;
  reason: string | null;
  verified: number;
  lacks: string[];
  badCopies: string[];
}

export interface Candidate {
  id: number;
  publicUrl: string;
  state: string;
  excluded: string | null;
  detail: string | null;
}

export interface RouteView {
  client: string;
  site: string | null;
  replica: { id: number; publicUrl: string } | null;
  reason: string | null;
  candidates: Candidate[];
}

export async function replicas(primary: Node, token: string): Promise<ReplicaView[]> {
  const res = await api<ReplicaView[]>(primary.url, token, 'GET', '/replicas');
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/** The primary's decision for a client and package (GET /api/v1/sites/route). */
export async function route(primary: Node, token: string, ip: string, sha256: string): Promise<RouteView> {
  const res = await api<RouteView>(primary.url, token, 'GET', `/sites/route?ip=${ip}&sha256=${sha256}`);
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/** Waits until the primary lists `replica` as up and holding every one of `packages` (a verified copy). */
export async function waitUpWith(
  primary: Node,
  token: string,
  replica: Node,
  packages: string[],
  timeoutMs = 30_000,
): Promise<ReplicaView> {
  return waitForValue(
    async () => {
      const view = (await replicas(primary, token)).find((r) => r.publicUrl === replica.url);
      return view?.state === 'up' && packages.every((p) => !view.lacks.includes(p)) ? view : undefined;
    },
    { what: `${replica.name} to be up with ${packages.length} package(s)`, timeoutMs, intervalMs: 200 },
  );
}

export interface Got extends HttpReply {
  sha256: string;
}

/** A GET from `from` (a loopback source address: the Mac's address), on a fresh connection, its body hashed. */
export async function get(url: string, from: string, headers: Record<string, string> = {}): Promise<Got> {
  const reply = await httpRequest(url, { localAddress: from, headers });
  return { ...reply, sha256: sha256Hex(reply.bytes) };
}

/** Where the primary sends a GET from `from`: the Location of its 302, or null when it serves it (200). */
export async function sentTo(primary: Node, sha256: string, from: string): Promise<string | null> {
  const res = await get(`${primary.url}/d/${sha256}/golden.pvmp`, from);
  if (res.status === 200) return null;
  expect(res.status).toBe(302);
  return res.headers.location!;
}

/** The node a Location points at (its base URL), or null. */
export function baseOf(location: string | null): string | null {
  return location === null ? null : location.slice(0, location.indexOf('/d/'));
}

/**
 * A TCP relay on 127.0.0.1:<port> to `target`, whose outbound connection keeps the client's own source address: a
 * misconfigured "replica" URL that leads back to the primary as a transparent proxy would, the Mac's address intact.
 */
export async function transparentRelay(target: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: target, localAddress: client.remoteAddress });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Runs a download tool to its end; never rejects (the exit code is in the result). */
export function tool(
  command: string,
  args: string[],
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `curl -L` from `from` into `file`: its status, redirects followed and the URL it ended at. */
export async function curlFollow(
  url: string,
  from: string,
  file: string,
  extra: string[] = [],
): Promise<{ code: number | null; status: number; redirects: number; finalUrl: string; stderr: string }> {
  const res = await tool(
    'curl',
    [
      '--silent',
      '--show-error',
      '--location',
      '--max-redirs',
      '10',
      '--interface',
      from,
      '--output',
      file,
      '--write-out',
      '%{http_code} %{num_redirects} %{url_effective}',
      ...extra,
      url,
    ],
    path.dirname(file),
  );
  const [status, redirects, finalUrl] = res.stdout.trim().split(' ');
  return {
    code: res.code,
    status: Number(status),
    redirects: Number(redirects),
    finalUrl: finalUrl ?? '',
    stderr: res.stderr,
  };
}
