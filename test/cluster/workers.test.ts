/**
 * `goldmirror serve` with MIRROR_WORKERS=2, the real CLI: both workers answer
 * on the one port, /metrics is the sum over them, what one worker writes the
 * other serves at once, and a worker killed mid-download costs only its own
 * downloads and is replaced.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { sha256Hex, testBytes } from '../helpers/env.js';
import { httpRequest, type HttpReply } from '../helpers/http.js';
import { waitFor, waitForValue } from '../helpers/wait.js';
import { WORKER_HEADER, downloadOnWorker, parentPid, startCluster, type RunningCluster } from './helpers.js';

const MiB = 1024 * 1024;
/** Per worker: the big download takes about 4 s, long enough to kill its worker in the middle. */
const BYTES_PER_SEC = 4 * MiB;
const small = testBytes(256 * 1024, 'cluster-small');
const big = testBytes(16 * MiB, 'cluster-big');

describe('serve --workers 2', () => {
  let c: RunningCluster;
  let token: string;
  const link = (data: Buffer, name = 'pkg.pvmp') => `${c.base}/d/${sha256Hex(data)}/${name}`;

  beforeAll(async () => {
    c = await startCluster(2, { MIRROR_MAX_BYTES_PER_SEC: String(BYTES_PER_SEC) }, async (env) => {
      await fs.mkdir(env.MIRROR_DATA_DIR!, { recursive: true });
      for (const [name, data] of [
        ['small.pvmp', small],
        ['big.pvmp', big],
      ] as const) {
        const file = path.join(path.dirname(env.MIRROR_DATA_DIR!), name);
        await fs.writeFile(file, data);
        const imported = await runCli(['import', file, '--json'], env);
        expect(imported.code, imported.stderr).toBe(0);
      }
      const created = await runCli(['token', 'create', 'cluster-test'], env);
      expect(created.code, created.stderr).toBe(0);
      token = created.stdout.trim().split('\n').at(-1)!;
    });
  });
  afterAll(async () => {
    await c?.stop();
  });

  const auth = () => ({ Authorization: `Bearer ${token}` });
  const workerOf = (reply: HttpReply) => Number(reply.headers[WORKER_HEADER]);

  /** Repeats a safe request on fresh connections until the worker `want` answers it. */
  async function onWorker(want: number, url: string, headers: Record<string, string> = {}): Promise<HttpReply> {
    for (let i = 0; i < 20; i += 1) {
      const reply = await httpRequest(url, { headers });
      if (workerOf(reply) === want) return reply;
    }
    throw new Error(`worker ${want} never answered ${url}`);
  }

  /** The sum of every sample of `name` in a Prometheus text exposition. */
  function total(text: string, name: string): number {
    return text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  }

  it('answers through both workers on one port, and their log lines name the worker', async () => {
    const workers = [...c.listening().keys()].sort();
    expect(workers).toEqual([1, 2]);
    const seen = new Set<number>();
    for (let i = 0; i < 8; i += 1) {
      const reply = await httpRequest(`${c.base}/healthz`, { headers: { 'X-Request-Id': `rr-${i}` } });
      expect(reply.status).toBe(200);
      seen.add(workerOf(reply));
    }
    expect([...seen].sort()).toEqual(workers);
    // Every request line carries the worker (and pid) that answered it, matching the header.
    await waitFor(() => c.lines().filter((l) => String(l.reqId).startsWith('rr-')).length === 8, {
      what: 'the 8 request log lines',
    });
    const logged = c.lines().filter((l) => String(l.reqId).startsWith('rr-'));
    expect(new Set(logged.map((l) => l.worker))).toEqual(seen);
    for (const l of logged) expect(l.pid).toBe(c.listening().get(l.worker!));
  });

  it('/metrics sums over the workers: the completed downloads equal the downloads made through both', async () => {
    const unauthenticated = await httpRequest(`${c.base}/metrics`);
    expect(unauthenticated.status).toBe(401);

    const downloads = 7;
    const served = new Set<number>();
    for (let i = 0; i < downloads; i += 1) {
      const reply = await httpRequest(link(small));
      expect(reply.status).toBe(200);
      expect(sha256Hex(reply.bytes)).toBe(sha256Hex(small));
      served.add(workerOf(reply));
    }
    expect(served.size).toBe(2);

    // Each scrape goes to one worker, which asks the primary for the sum; both must answer the same totals.
    for (const worker of served) {
      await waitFor(
        async () => {
          const scrape = await onWorker(worker, `${c.base}/metrics`, auth());
          expect(scrape.status).toBe(200);
          return total(scrape.body, 'goldmirror_downloads_completed_total') === downloads;
        },
        { what: `worker ${worker}'s scrape to count ${downloads} downloads`, timeoutMs: 10_000 },
      );
    }
    const scrape = await httpRequest(`${c.base}/metrics`, { headers: auth() });
    expect(total(scrape.body, 'goldmirror_downloads_started_total')).toBe(downloads);
    expect(total(scrape.body, 'goldmirror_download_bytes_total')).toBe(downloads * small.length);
    // Shared truths are reported once, not once per worker.
    expect(total(scrape.body, 'goldmirror_blob_bytes')).toBe(small.length + big.length);
    expect(total(scrape.body, 'goldmirror_corrupt_blobs')).toBe(0);
  });

  it('serves through one worker at once what was created through the other', async () => {
    const created = await httpRequest(`${c.base}/api/v1/images`, {
      method: 'POST',
      headers: { ...auth(), 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'Across workers', arm64: { enabled: true, sha256: sha256Hex(small) } }),
    });
    expect(created.status, created.body).toBe(201);
    const writer = workerOf(created);
    const other = writer === 1 ? 2 : 1;
    const { id } = JSON.parse(created.body) as { id: number };

    const portal = await onWorker(other, `${c.base}/api/v1/images/${id}/portal`, auth());
    expect(portal.status, portal.body).toBe(200);
    const values = JSON.parse(portal.body) as {
      ready: boolean;
      architectures: { arm64: { downloadUrl: string; sha256: string } };
    };
    expect(values.ready).toBe(true);
    for (const worker of [other, writer]) {
      const download = await onWorker(worker, values.architectures.arm64.downloadUrl);
      expect(download.status).toBe(200);
      expect(sha256Hex(download.bytes)).toBe(values.architectures.arm64.sha256);
    }

    // A package uploaded through one worker downloads through the other, no wait.
    const uploaded = testBytes(300 * 1024, 'cluster-upload');
    const boundary = '----goldmirror-cluster-test';
    const form = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="package"; filename="Up.pvmp"\r\n` +
          'Content-Type: application/octet-stream\r\n\r\n',
      ),
      uploaded,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const upload = await httpRequest(`${c.base}/admin/upload`, {
      method: 'POST',
      headers: { ...auth(), 'Content-Type': `multipart/form-data; boundary=${boundary}` },
      body: form,
    });
    expect(upload.status, upload.body).toBeLessThan(400);
    const otherThanUploader = workerOf(upload) === 1 ? 2 : 1;
    const fresh = await onWorker(otherThanUploader, link(uploaded, 'Up.pvmp'));
    expect(fresh.status).toBe(200);
    expect(sha256Hex(fresh.bytes)).toBe(sha256Hex(uploaded));
  });

  it('a worker killed mid-download breaks only its own download, and a replacement serves', async () => {
    const before = c.listening();
    const doomed = await downloadOnWorker(link(big), () => true);
    const victim = await doomed.worker;
    const survivor = await downloadOnWorker(link(big), (w) => w !== victim);
    expect(await survivor.status).toBe(200);
    const pid = before.get(victim)!;
    // Only a worker of this test's own primary is ever signalled.
    expect(parentPid(pid)).toBe(c.primary.pid);
    process.kill(pid, 'SIGKILL');

    const broken = await doomed.done;
    expect(broken.complete).toBe(false);
    expect(broken.bytes).toBeLessThan(big.length);
    const whole = await survivor.done;
    expect(whole).toMatchObject({ complete: true, bytes: big.length, sha256: sha256Hex(big) });

    const replacement = await waitForValue(() => [...c.listening().keys()].find((w) => !before.has(w)), {
      what: 'a replacement worker to listen',
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    const died = c.lines().find((l) => l.msg === 'worker exited: starting a replacement');
    expect(died).toMatchObject({ worker: victim, workerPid: pid, signal: 'SIGKILL' });
    const answer = await onWorker(replacement, link(small));
    expect(answer.status).toBe(200);
    expect(sha256Hex(answer.bytes)).toBe(sha256Hex(small));
    // The survivor never stopped.
    expect(c.listening().get(victim === 1 ? 2 : 1)).toBe(before.get(victim === 1 ? 2 : 1));
  });

  it('a worker that dies young is replaced after a back-off, not in a tight loop', async () => {
    const before = c.listening();
    const youngest = Math.max(...before.keys());
    const pid = before.get(youngest)!;
    expect(parentPid(pid)).toBe(c.primary.pid);
    process.kill(pid, 'SIGKILL');
    const died = await waitForValue(
      () => c.lines().find((l) => l.msg === 'worker exited: starting a replacement' && l.workerPid === pid),
      { what: 'the primary to log the death' },
    );
    // It had served for less than STABLE_AFTER_MS (10 s): its slot waits 1 s, or 2 s, 4 s… when its predecessor died young too.
    expect(died.livedMs).toBeLessThan(10_000);
    expect([1000, 2000]).toContain(died.restartInMs);
    const next = await waitForValue(
      () => c.lines().find((l) => l.msg === 'goldmirror listening' && l.worker !== undefined && !before.has(l.worker)),
      { what: 'the next replacement to listen', timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(Date.parse(String(next.time)) - Date.parse(String(died.time))).toBeGreaterThanOrEqual(
      Number(died.restartInMs),
    );
    expect((await onWorker(next.worker!, `${c.base}/healthz`)).status).toBe(200);
  });
  it('SIGTERM to one worker drains just that worker: its download completes, and a replacement takes its place', async () => {
    const before = c.listening();
    const download = await downloadOnWorker(link(big), () => true);
    const target = await download.worker;
    const pid = before.get(target)!;
    expect(parentPid(pid)).toBe(c.primary.pid);
    process.kill(pid, 'SIGTERM');
    expect(await download.done).toMatchObject({ complete: true, bytes: big.length, sha256: sha256Hex(big) });
    const exited = await waitForValue(
      () => c.lines().find((l) => l.msg === 'worker exited: starting a replacement' && l.workerPid === pid),
      { what: 'the primary to see the worker go', timeoutMs: 15_000 },
    );
    expect(exited).toMatchObject({ code: 0, signal: null });
    const replacement = await waitForValue(() => [...c.listening().keys()].find((w) => !before.has(w)), {
      what: 'a replacement worker to listen',
      timeoutMs: 40_000,
      intervalMs: 100,
    });
    expect((await onWorker(replacement, `${c.base}/healthz`)).status).toBe(200);
  });
});
