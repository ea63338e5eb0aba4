/**
 * One leader for the scheduled jobs among processes on one database: the
 * lease repository on a real database (two connections), then two
 * runtimes with servers over one data dir whose time a fake clock drives,
 * then a real `goldmirror serve` child killed with SIGKILL.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Sha256 } from '../../storage/digest.js';
import { findBlob } from '../../server/db/repos/blobs.js';
import { acquireLease, getLease, releaseLease, type LeaseClaim } from '../../server/db/repos/leases.js';
import { openDatabase, type Db } from '../../server/db/open.js';
import { createLogger } from '../../server/log.js';
import { databaseTarget, openRuntime, type Runtime } from '../../server/runtime.js';
import { startServer, type ServerHandle } from '../../server/serve.js';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { bootstrapAdmin } from '../../server/services/auth/bootstrap.js';
import { ingest } from '../../server/services/ingest.js';
import { JOBS_LEASE, type LeaderView } from '../../server/services/leadership.js';
import { ADMIN_PASSWORD, call, mustSignIn } from '../helpers/api.js';
import { spawnCli } from '../helpers/cli.js';
import { fakeClock, type FakeClock } from '../helpers/clock.js';
import { freePort, makeTempDir, testBytes, testConfig } from '../helpers/env.js';
import { waitFor, waitForValue } from '../helpers/wait.js';

const DAY = 24 * 60 * 60 * 1000;
const LEASE_MS = 30_000;
/** The verify scheduler's tick when the interval is a day (jobs/node-jobs.ts). */
const VERIFY_TICK_MS = 60_000;
const T0 = Date.parse('2026-12-01T08:00:00Z');

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('lease repository (a real database, two connections to it)', () => {
  const claim = (holder: string, now: number): LeaseClaim => ({
    name: JOBS_LEASE,
    holder,
    host: 'box',
    pid: 1,
    worker: null,
    listen: null,
    now,
    expiresAt: now + LEASE_MS,
  });

  async function twoConnections(): Promise<[Db, Db]> {
    const dir = await makeTempDir();
    // The database of this data dir: its SQLite file, or its schema when the suites run on PostgreSQL.
    const target = databaseTarget(testConfig(dir), path.join(dir, 'goldmirror.db'));
    const one = await openDatabase(target);
    const two = await openDatabase(target);
    cleanups.push(async () => {
      await one.destroy();
      await two.destroy();
      await fs.rm(dir, { recursive: true, force: true });
    });
    return [one, two];
  }

  it('gives a free lease to exactly one of many claims at once, and only its holder renews it before it runs out', async () => {
    const [one, two] = await twoConnections();
    const claims = Array.from({ length: 20 }, (_, i) =>
      acquireLease(i % 2 === 0 ? one : two, claim(`holder-${i}`, T0)),
    );
    const won = (await Promise.all(claims)).filter((row) => row !== undefined);
    expect(won).toHaveLength(1);
    const winner = won[0]!.holder;
    expect(await getLease(two, JOBS_LEASE)).toMatchObject({
      holder: winner,
      acquired_at: T0,
      expires_at: T0 + LEASE_MS,
    });

    // Another holder cannot take it while it runs, even at its last millisecond.
    const other = winner === 'holder-0' ? 'holder-1' : 'holder-0';
    expect(await acquireLease(one, claim(other, T0 + LEASE_MS))).toBeUndefined();
    // The holder renews: the expiry moves, the start of the hold stays.
    expect(await acquireLease(two, claim(winner, T0 + 10_000))).toMatchObject({
      holder: winner,
      acquired_at: T0,
      renewed_at: T0 + 10_000,
      expires_at: T0 + 10_000 + LEASE_MS,
    });
    // Once it ran out, the first other claim takes it, and the old holder cannot renew it back.
    const late = T0 + 10_000 + LEASE_MS + 1;
    expect(await acquireLease(one, claim(other, late))).toMatchObject({ holder: other, acquired_at: late });
    expect(await acquireLease(two, claim(winner, late + 1))).toBeUndefined();
    // Only the holder gives it back.
    expect(await releaseLease(two, JOBS_LEASE, winner)).toBe(false);
    expect(await releaseLease(two, JOBS_LEASE, other)).toBe(true);
    expect(await getLease(one, JOBS_LEASE)).toBeUndefined();
    expect(await acquireLease(two, claim(winner, late + 2))).toMatchObject({ holder: winner, acquired_at: late + 2 });
  });

  it('starts the hold anew when the holder itself comes back after its lease ran out', async () => {
    const [one] = await twoConnections();
    await acquireLease(one, claim('me', T0));
    expect(await acquireLease(one, claim('me', T0 + LEASE_MS + 5))).toMatchObject({ acquired_at: T0 + LEASE_MS + 5 });
  });
});

interface Node {
  runtime: Runtime;
  server: ServerHandle;
  /** Scheduled or on-demand checks this process ran, by result. */
  verifyRuns(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** A runtime and server over `dir`, as one worker or node of a deployment sharing its database. */
async function startNode(dir: string, clock: FakeClock, overrides: Record<string, unknown> = {}): Promise<Node> {
  const config = testConfig(dir, { verifyIntervalMs: DAY, leaderLeaseMs: LEASE_MS, ...overrides });
  const runtime = await openRuntime(config, createLogger('silent'), { clock });
  const server = await startServer(runtime);
  let closed = false;
  const node: Node = {
    runtime,
    server,
    async verifyRuns() {
      const metric = await runtime.metrics.verifyRuns.get();
      return Object.fromEntries(metric.values.map((v) => [String(v.labels.result), v.value]));
    },
    async close() {
      if (closed) return;
      closed = true;
      await server.close(1000);
      await runtime.close();
    },
  };
  cleanups.push(() => node.close());
  return node;
}

async function sharedDir(): Promise<string> {
  const dir = await makeTempDir();
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Lets the lease attempts that the last advance fired land, as they would long before the next moment comes. */
async function settle(nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.runtime.leadership.idle()));
  await sleep(5);
}

/** Moves the clock of `nodes` on in steps shorter than a renewal interval, as real time would pass. */
async function advance(clock: FakeClock, nodes: Node[], ms: number, stepMs = 5_000): Promise<void> {
  for (let done = 0; done < ms; done += stepMs) {
    clock.advance(Math.min(stepMs, ms - done));
    await settle(nodes);
  }
}

async function storeBlob(node: Node, seed: string, size = 64 * 1024): Promise<Sha256> {
  const { blob } = await ingest(node.runtime.ingestDeps, { source: [testBytes(size, seed)], fileName: `${seed}.pvmp` });
  return blob.sha256 as Sha256;
}

/** Makes the blob due for its periodic check (last checked two intervals ago). */
async function makeDue(node: Node, sha: Sha256, clock: FakeClock): Promise<number> {
  const before = clock.now() - 2 * DAY;
  await node.runtime.db.updateTable('blobs').set({ verified_at: before }).where('sha256', '=', sha).execute();
  return before;
}

async function checkedSince(node: Node, sha: Sha256, since: number): Promise<void> {
  await waitFor(async () => ((await findBlob(node.runtime.db, sha))?.verified_at ?? 0) > since, {
    what: 'the scheduled check to record its verdict',
  });
}

async function leaderOf(node: Node): Promise<LeaderView | null> {
  return node.runtime.leadership.leader();
}

describe('two processes on one database (fake clock)', () => {
  it('runs the scheduled checks in exactly one of them, and both tell which one leads', async () => {
    const dir = await sharedDir();
    const clock = fakeClock(T0);
    const a = await startNode(dir, clock);
    const b = await startNode(dir, clock);
    expect([a.runtime.leadership.isLeader(), b.runtime.leadership.isLeader()]).toEqual([true, false]);

    const sha = await storeBlob(a, 'leader-one');
    for (let round = 0; round < 3; round += 1) {
      const before = await makeDue(a, sha, clock);
      await advance(clock, [a, b], VERIFY_TICK_MS);
      await checkedSince(a, sha, before);
    }
    expect(await a.verifyRuns()).toEqual({ ok: 3 });
    expect(await b.verifyRuns()).toEqual({});
    expect([a.runtime.leadership.isLeader(), b.runtime.leadership.isLeader()]).toEqual([true, false]);

    // Any process tells who leads, from the database: the health report of the follower names the leader.
    const token = (await createApiToken(b.runtime, cliActor, 'monitor', 'read')).token;
    const health = await call<{ leader: LeaderView }>(b.server.url, 'GET', '/api/v1/health', { token });
    expect(health.status).toBe(200);
    expect(health.body.leader).toEqual({
      holder: a.runtime.leadership.identity.holder,
      host: a.runtime.leadership.identity.host,
      pid: process.pid,
      worker: null,
      listen: `127.0.0.1:${new URL(a.server.url).port}`,
      since: new Date(T0).toISOString(),
      renewedAt: expect.any(String) as string,
      expiresAt: expect.any(String) as string,
      live: true,
      thisProcess: false,
    });
    expect(Date.parse(health.body.leader.expiresAt)).toBeGreaterThan(clock.now());
    expect((await leaderOf(a))?.thisProcess).toBe(true);
    // So do the dashboards: the follower's names the leader, the leader's says it is the one.
    await bootstrapAdmin(b.runtime, dir, ADMIN_PASSWORD);
    const session = await mustSignIn(b.server.url);
    const scheduledJobs = async (node: Node): Promise<string> => {
      const page = await call(node.server.url, 'GET', '/admin', { session });
      expect(page.status).toBe(200);
      const section = /<h2>Scheduled jobs<\/h2>\s*<div class="card" id="leader">([\s\S]*?)<\/div>/.exec(page.text);
      return (section?.[1] ?? '').replace(/<[^>]+>/g, '');
    };
    const listen = `127.0.0.1:${new URL(a.server.url).port}`;
    expect(await scheduledJobs(b)).toContain(
      `process ${process.pid}, listening on ${listen}, leading since 2026-12-01 08:00 UTC`,
    );
    expect(await scheduledJobs(b)).not.toContain('— the process showing this page');
    expect(await scheduledJobs(a)).toContain(`listening on ${listen} — the process showing this page`);
  });

  it('hands over when the leader shuts down: the lease is given back and the other runs the next due check', async () => {
    const dir = await sharedDir();
    const clock = fakeClock(T0);
    const a = await startNode(dir, clock);
    const b = await startNode(dir, clock);
    const sha = await storeBlob(a, 'leader-handover');
    await advance(clock, [a, b], 20_000);

    await a.close();
    expect(await leaderOf(b)).toBeNull();
    // The follower's next attempt (a third of the lease) takes it; no waiting for the lease to run out.
    await advance(clock, [b], b.runtime.leadership.renewEveryMs, b.runtime.leadership.renewEveryMs);
    expect(b.runtime.leadership.isLeader()).toBe(true);
    expect(await leaderOf(b)).toMatchObject({ holder: b.runtime.leadership.identity.holder, thisProcess: true });

    const before = await makeDue(b, sha, clock);
    await advance(clock, [b], VERIFY_TICK_MS);
    await checkedSince(b, sha, before);
    expect(await b.verifyRuns()).toEqual({ ok: 1 });
  });

  it('takes over when the lease of a leader that stopped answering runs out, not before', async () => {
    const dir = await sharedDir();
    const clock = fakeClock(T0);
    const a = await startNode(dir, clock);
    const b = await startNode(dir, clock);
    const sha = await storeBlob(a, 'leader-crash');
    await advance(clock, [a, b], 12_000);

    // A crash as the database sees it: the leader's connection goes away without giving the lease back.
    await a.runtime.db.destroy();
    const lease = await getLease(b.runtime.db, JOBS_LEASE);
    expect(lease?.holder).toBe(a.runtime.leadership.identity.holder);
    const expiresAt = lease!.expires_at;

    // Its next renewal fails, so it stops its own jobs at once.
    await advance(clock, [a, b], a.runtime.leadership.renewEveryMs);
    expect(a.runtime.leadership.isLeader()).toBe(false);
    // Up to the last millisecond of the lease, nobody else leads.
    await advance(clock, [a, b], expiresAt - clock.now() - 1);
    expect(clock.now()).toBe(expiresAt - 1);
    expect(b.runtime.leadership.isLeader()).toBe(false);
    // Right after it, the other process's attempt (timed to the lease's end) takes over.
    await advance(clock, [a, b], 2);
    expect(b.runtime.leadership.isLeader()).toBe(true);
    expect(await getLease(b.runtime.db, JOBS_LEASE)).toMatchObject({
      holder: b.runtime.leadership.identity.holder,
      acquired_at: expiresAt + 1,
    });

    const before = await makeDue(b, sha, clock);
    await advance(clock, [a, b], VERIFY_TICK_MS);
    await checkedSince(b, sha, before);
    expect(await b.verifyRuns()).toEqual({ ok: 1 });
    expect(await a.verifyRuns()).toEqual({});
  });

  it('stops the jobs of a leader at once when it finds the lease taken, cancelling its running check, which the new leader redoes', async () => {
    const dir = await sharedDir();
    // Two clocks: the first process stalls (its timers do not fire) while time passes for the second.
    const stalled = fakeClock(T0);
    const clock = fakeClock(T0);
    // 4 MiB at 256 KiB/s: the first leader's check runs for seconds, long enough to be cut off.
    const a = await startNode(dir, stalled, { verifyMaxBytesPerSec: 256 * 1024 });
    const b = await startNode(dir, clock);
    const sha = await storeBlob(a, 'leader-stall', 4 * 1024 * 1024);
    const before = await makeDue(a, sha, stalled);
    // Renewals keep the lease while the first leader's verify tick starts the check.
    stalled.advance(VERIFY_TICK_MS);
    await settle([a]);
    await waitFor(() => a.runtime.checker.status().running.length === 1, {
      what: 'the first leader to start its check',
    });

    // The second process's time runs past the lease (the first one renewed it last at T0 + 60 s).
    clock.set(stalled.now());
    await advance(clock, [b], LEASE_MS + b.runtime.leadership.renewEveryMs);
    expect(b.runtime.leadership.isLeader()).toBe(true);
    // The stalled one wakes up: its renewal finds the lease taken, and it stops everything it ran as leader.
    stalled.set(clock.now());
    await advance(stalled, [a], a.runtime.leadership.renewEveryMs);
    expect(a.runtime.leadership.isLeader()).toBe(false);
    await waitFor(() => a.runtime.checker.status().running.length === 0, { what: 'the cut-off check to stop' });
    expect(await a.verifyRuns()).toEqual({ cancelled: 1 });
    expect((await findBlob(b.runtime.db, sha))?.verified_at).toBe(before);
    // Only its lease attempts are left on its clock: no job ticks.
    expect(stalled.pending()).toHaveLength(1);

    // The interrupted check is still due in the database, so the new leader simply runs it again.
    await advance(clock, [b], VERIFY_TICK_MS);
    await checkedSince(b, sha, before);
    expect(await b.verifyRuns()).toEqual({ ok: 1 });
    expect((await findBlob(b.runtime.db, sha))?.state).toBe('ok');
  });
});

describe('leader killed with SIGKILL (real processes, real time)', () => {
  it('another process takes over within the lease time and runs the check the dead leader had started', async () => {
    const dir = await sharedDir();
    const leaseMs = 1000;
    const port = await freePort();
    // The leader: a real `goldmirror serve` whose scheduled checks run every 2 s, capped at 1 MB/s.
    const child = spawnCli(['serve'], {
      MIRROR_DATA_DIR: dir,
      MIRROR_HOST: '127.0.0.1',
      MIRROR_PORT: String(port),
      MIRROR_MIN_FREE_BYTES: '0',
      MIRROR_LOG_LEVEL: 'warn',
      MIRROR_ADMIN_PASSWORD: 'leader test password',
      MIRROR_LEADER_LEASE: `${leaseMs}ms`,
      MIRROR_VERIFY_INTERVAL: '2s',
      MIRROR_VERIFY_MAX_BYTES_PER_SEC: '1MB',
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });

    // The second process opens the same database and waits for the child to lead before it competes.
    const config = testConfig(dir, { leaderLeaseMs: leaseMs, verifyIntervalMs: 2000 });
    const runtime = await openRuntime(config, createLogger('silent'));
    cleanups.push(() => runtime.close());
    await waitFor(async () => (await getLease(runtime.db, JOBS_LEASE))?.pid === child.pid, {
      what: `the child to take the lease (${stderr})`,
      timeoutMs: 30_000,
    });
    const server = await startServer(runtime);
    cleanups.push(() => server.close(1000));
    expect(runtime.leadership.isLeader()).toBe(false);

    // 6 MB at 1 MB/s: the child's scheduled check is still running when it is killed.
    const { blob } = await ingest(runtime.ingestDeps, {
      source: [testBytes(6_000_000, 'sigkill')],
      fileName: 'k.pvmp',
    });
    const token = (await createApiToken(runtime, cliActor, 'leader-watch', 'read')).token;
    await waitFor(
      async () => {
        const status = await call<{ running: Array<{ sha256: string; bytesDone: number }> }>(
          `http://127.0.0.1:${port}`,
          'GET',
          '/api/v1/verify',
          { token },
        );
        return status.body.running.some((r) => r.sha256 === blob.sha256 && r.bytesDone > 0);
      },
      { what: "the child's scheduled check to be under way", timeoutMs: 15_000 },
    );

    child.kill('SIGKILL');
    const killedAt = Date.now();
    expect(await exited).toBe('SIGKILL');
    // The dead leader never gave its lease back: the other process takes it once it runs out.
    await waitFor(() => runtime.leadership.isLeader(), { what: 'the takeover', timeoutMs: 10_000, intervalMs: 10 });
    expect(Date.now() - killedAt).toBeLessThan(leaseMs + 1000);
    expect(await getLease(runtime.db, JOBS_LEASE)).toMatchObject({ holder: runtime.leadership.identity.holder });
    // The check the child was running left no verdict, so it is still due: the new leader runs it.
    expect((await findBlob(runtime.db, blob.sha256 as Sha256))?.verified_at).toBeLessThan(killedAt);
    const checked = await waitForValue(
      async () => {
        const row = await findBlob(runtime.db, blob.sha256 as Sha256);
        return (row?.verified_at ?? 0) > killedAt ? row : undefined;
      },
      { what: 'the new leader to check the package', timeoutMs: 15_000 },
    );
    expect(checked?.state).toBe('ok');
    const runs = await runtime.metrics.verifyRuns.get();
    expect(runs.values.find((v) => v.labels.result === 'ok')?.value).toBeGreaterThanOrEqual(1);
  });
});
