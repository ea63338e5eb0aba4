/**
 * The leader's Parallels Desktop update job on a fake clock: with MIRROR_PD_UPDATES_UPSTREAM set it syncs when the
 * process starts leading and again each MIRROR_PD_UPDATES_INTERVAL, and a broken upstream at one run does not stop
 * the next.
 */
import fs from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/log.js';
import { openRuntime } from '../../server/runtime.js';
import { startServer } from '../../server/serve.js';
import { listUpdates } from '../../server/services/pd-updates/versions.js';
import { fakeClock } from '../helpers/clock.js';
import { makeTempDir, testConfig } from '../helpers/env.js';
import { fakeDmg, feedXml, startFakeUpstream } from '../helpers/pd-upstream.js';
import { waitFor } from '../helpers/wait.js';

const HOUR = 60 * 60 * 1000;
const INTERVAL = 2 * HOUR;
const V1 = '26.3.2-57480';
const V2 = '26.3.3-57507';
const filePath = (version: string) => `/desktop/v26/${version}/ParallelsDesktop-${version}.dmg`;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('the scheduled update sync', () => {
  it('runs at the start of leadership and again after each interval, carrying on past a failed run', async () => {
    const upstream = await startFakeUpstream();
    cleanups.push(() => upstream.close());
    const v1 = fakeDmg(1024 * 1024 + 1, 'scheduled-26.3.2');
    const v2 = fakeDmg(1024 * 1024 + 2, 'scheduled-26.3.3');
    const entry = (version: string, bytes: Buffer) => ({
      version,
      filePath: upstream.setFile(filePath(version), bytes),
      fileSize: String(bytes.length),
    });
    upstream.setFeed(26, feedXml([entry(V1, v1)]));
    const feedGets = () => upstream.log.filter((r) => r.method === 'GET' && r.path.endsWith('.xml')).length;

    const dir = await makeTempDir();
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    const config = testConfig(dir, {
      publicUrl: 'http://mirror.example.lan:8080',
      pdUpdatesUpstream: [upstream.feedUrl(26)],
      pdUpdatesIntervalMs: INTERVAL,
      pdUpdatesAutoPublish: true,
      // Only the job under test: no checks or GC firing as the clock moves, and a lease no jump outlasts.
      verifyIntervalMs: 0,
      gcIntervalMs: 0,
      leaderLeaseMs: 365 * 24 * HOUR,
    });
    const t0 = Date.parse('2026-12-01T08:00:00Z');
    const clock = fakeClock(t0);
    const runtime = await openRuntime(config, createLogger('silent'), { clock });
    const server = await startServer(runtime);
    cleanups.push(async () => {
      await server.close(1000);
      await runtime.close();
    });
    const status = async () => (await listUpdates(runtime)).upstream[0];
    const version = async (v: string) => (await listUpdates(runtime)).versions.find((x) => x.version === v);
    /** Moves the clock on, firing what falls due, and waits until every job that fired has rescheduled itself. */
    const advance = async (ms: number) => {
      const jobs = clock.pending().length;
      clock.advance(ms);
      await expect.poll(() => clock.pending().length, { timeout: 10_000 }).toBeGreaterThanOrEqual(jobs);
      await runtime.leadership.idle();
    };
    const nextSync = () => clock.pending().filter((t) => t.ms === INTERVAL);

    // At start: read, fetched and (auto-)published, with the clock's time on the status.
    await waitFor(async () => (await version(V1))?.published === true, { what: 'the first scheduled sync' });
    await waitFor(() => nextSync().length === 1, { what: 'the next sync to be scheduled' });
    expect(await status()).toMatchObject({ checkedAt: new Date(t0).toISOString(), error: null });
    expect(feedGets()).toBe(1);
    expect(nextSync()[0]!.at).toBe(t0 + INTERVAL);

    // A new version upstream waits for the interval.
    upstream.setFeed(26, feedXml([entry(V2, v2), entry(V1, v1)]));
    await advance(INTERVAL - 1000);
    expect(feedGets()).toBe(1);
    expect(await version(V2)).toBeUndefined();
    await advance(1000);
    await waitFor(async () => (await version(V2))?.published === true, { what: 'the second scheduled sync' });
    expect(feedGets()).toBe(2);
    expect(await status()).toMatchObject({ checkedAt: new Date(t0 + INTERVAL).toISOString(), error: null });

    // Upstream fails at the third run: recorded, and the job is scheduled again all the same.
    upstream.setFeed(26, 503);
    await advance(INTERVAL);
    await waitFor(async () => (await status())?.error !== null, { what: 'the failed run to be recorded' });
    expect(await status()).toMatchObject({
      checkedAt: new Date(t0 + 2 * INTERVAL).toISOString(),
      okAt: new Date(t0 + INTERVAL).toISOString(),
      error: `${upstream.feedUrl(26)} answered HTTP 503`,
    });
    await waitFor(() => nextSync().length === 1, { what: 'the sync after a failure to be scheduled' });
    expect(nextSync()[0]!.at).toBe(t0 + 3 * INTERVAL);

    upstream.setFeed(26, feedXml([entry(V2, v2), entry(V1, v1)]));
    await advance(INTERVAL);
    await waitFor(async () => (await status())?.error === null, { what: 'the recovering run' });
    expect(await status()).toMatchObject({ okAt: new Date(t0 + 3 * INTERVAL).toISOString() });
    expect(feedGets()).toBe(4);
  });
});
