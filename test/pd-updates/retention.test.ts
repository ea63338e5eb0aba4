/**
 * Update files kept and checked like packages: garbage collection never takes a published version's file, takes an
 * unpublished one after the grace period unless it is among the newest kept or still listed upstream (the version
 * then says `collected` and cannot be published); the integrity checks find a corrupt update file and its .dmg link
 * answers 503; and /metrics counts the versions by state and their alerts. Times are set with fake clocks given to
 * the services, as in test/jobs/gc-retired.test.ts.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sha256 } from '../../storage/digest.js';
import { findBlob } from '../../server/db/repos/blobs.js';
import { queueDueChecks } from '../../server/jobs/verify-schedule.js';
import { cliActor } from '../../server/services/audit.js';
import { deleteBlob } from '../../server/services/blobs.js';
import { collectGarbage } from '../../server/services/gc.js';
import { integritySummary } from '../../server/services/integrity.js';
import { readFeed } from '../../server/services/pd-updates/feed.js';
import { syncUpdates } from '../../server/services/pd-updates/sync.js';
import { addUpdateFile, getUpdate, publishUpdate, unpublishUpdate } from '../../server/services/pd-updates/versions.js';
import { call, issueToken } from '../helpers/api.js';
import { corruptStored, quarantined, removeStored } from '../helpers/blobs.js';
import { fakeClock } from '../helpers/clock.js';
import { startMirror, type TestMirror } from '../helpers/env.js';
import { fakeDmg, feedXml, sha256Of, startFakeUpstream, type FakeUpstream } from '../helpers/pd-upstream.js';
import { waitFor } from '../helpers/wait.js';

const HOUR = 3_600_000;
const GRACE = 24 * HOUR;
const PUBLIC = 'http://mirror.example.lan:8080';

describe('update files under garbage collection, integrity checks and metrics', () => {
  let mirror: TestMirror;
  let upstream: FakeUpstream;
  let t0: number;

  beforeAll(async () => {
    upstream = await startFakeUpstream();
  });
  afterAll(async () => {
    await upstream?.close();
  });
  beforeEach(async () => {
    // No scheduled checks: the tests run them when they mean to.
    mirror = await startMirror({ publicUrl: PUBLIC, verifyIntervalMs: 0 });
    t0 = Date.now();
  });
  afterEach(async () => {
    await mirror.close();
  });

  /** The services as of a moment relative to t0. */
  const at = (offsetMs: number) => ({ ...mirror.runtime, clock: fakeClock(t0 + offsetMs) });
  const ingestAt = (offsetMs: number) => ({
    ...mirror.runtime.ingestDeps,
    config: mirror.runtime.config,
    clock: fakeClock(t0 + offsetMs),
  });
  const gc = (offsetMs: number, keepUpdates: number, dryRun = false) =>
    collectGarbage(at(offsetMs), cliActor, { dryRun, graceMs: GRACE, keepUpdates });
  const add = async (version: string, offsetMs: number, bytes = fakeDmg(200_000, `retention-${version}`)) => {
    await addUpdateFile(ingestAt(offsetMs), cliActor, { source: [bytes], what: `${version}.dmg`, version });
    return sha256Of(bytes);
  };
  const stateOf = async (version: string) => (await getUpdate(mirror.runtime, version)).state;
  const stored = async (sha: string) => (await mirror.runtime.store.stat(sha as Sha256)) !== null;
  const dmgLink = (sha: string, version: string) => `${mirror.url}/d/${sha}/ParallelsDesktop-${version}.dmg`;
  const syncAt = (offsetMs: number) =>
    syncUpdates(
      { ...mirror.runtime.ingestDeps, clock: fakeClock(t0 + offsetMs) },
      { feeds: [upstream.feedUrl(26)], autoPublish: false, actor: cliActor, retryDelayMs: 10 },
    );

  it('keeps published files for ever and the newest N; an unpublished file goes after the grace period, and its version cannot be published again', async () => {
    const versions = ['26.1.0-100', '26.2.0-200', '26.3.0-300', '26.4.0-400', '26.5.0-500'];
    const [v1, v2, v3, v4, v5] = versions as [string, string, string, string, string];
    const sha: Record<string, string> = {};
    for (const v of versions) sha[v] = await add(v, -100 * HOUR);
    await publishUpdate(at(-90 * HOUR), cliActor, v1);
    await publishUpdate(at(-90 * HOUR), cliActor, v2);
    await unpublishUpdate(at(-2 * HOUR), cliActor, v2);

    // A dry run says what would go, and changes nothing.
    const dry = await gc(0, 2, true);
    expect(dry.removed.map((r) => r.sha256)).toEqual([sha[v3]]);
    expect(await stateOf(v3)).toBe('stored');

    // v1 published, v2 unpublished 2 h ago, v4 and v5 the newest two: only v3 (never published) goes.
    const first = await gc(0, 2);
    expect(first.removed.map((r) => r.sha256)).toEqual([sha[v3]]);
    expect(first.kept.map((k) => [k.sha256, k.reason]).sort()).toEqual(
      [v1, v2, v4, v5].map((v) => [sha[v], 'update']).sort(),
    );
    expect(await stored(sha[v3]!)).toBe(false);
    expect(await getUpdate(mirror.runtime, v3)).toMatchObject({
      state: 'collected',
      sha256: sha[v3],
      published: false,
    });
    await expect(publishUpdate(mirror.runtime, cliActor, v3)).rejects.toMatchObject({
      code: 'UPDATE_NOT_STORED',
      message: expect.stringMatching(/garbage collection removed it/) as string,
    });
    expect((await fetch(dmgLink(sha[v3]!, v3))).status).toBe(404);

    // The grace period after its unpublish has passed for v2.
    const second = await gc(23 * HOUR, 2);
    expect(second.removed.map((r) => r.sha256)).toEqual([sha[v2]]);
    expect(await stateOf(v2)).toBe('collected');

    // Years later the published file is still there and still served; with keep 0 the newest go too.
    const later = await gc(10_000 * HOUR, 0);
    expect(later.removed.map((r) => r.sha256).sort()).toEqual([sha[v4], sha[v5]].sort());
    expect(later.kept).toEqual([{ sha256: sha[v1], reason: 'update' }]);
    expect(await stateOf(v1)).toBe('stored');
    const feed = readFeed(await (await fetch(`${mirror.url}/updates/parallels_updates.xml`)).text(), 'served');
    expect(feed.versions.map((v) => v.version)).toEqual([v1]);
    const res = await fetch(feed.versions[0]!.fileUrl.replace(PUBLIC, mirror.url));
    expect(res.status).toBe(200);
    expect(sha256Of(Buffer.from(await res.arrayBuffer()))).toBe(sha[v1]);
    const audit = await mirror.runtime.db
      .selectFrom('audit_log')
      .select('target')
      .where('action', '=', 'blob.gc')
      .execute();
    expect(audit.map((a) => a.target).sort()).toEqual([v3, v2, v4, v5].map((v) => `blob:${sha[v]}`).sort());
  });

  it('keeps a file its upstream feed still lists; once the feed drops it, it goes, and comes back if the feed lists it again', async () => {
    const oldBytes = fakeDmg(150_000, 'retention-listed-old');
    const newBytes = fakeDmg(160_000, 'retention-listed-new');
    const oldUrl = upstream.setFile('/desktop/v26/26.0.1-100/ParallelsDesktop-26.0.1-100.dmg', oldBytes);
    const newUrl = upstream.setFile('/desktop/v26/26.0.2-200/ParallelsDesktop-26.0.2-200.dmg', newBytes);
    const both = feedXml([
      { version: '26.0.2-200', filePath: newUrl, fileSize: String(newBytes.length) },
      { version: '26.0.1-100', filePath: oldUrl, fileSize: String(oldBytes.length) },
    ]);
    upstream.setFeed(26, both);
    expect((await syncAt(-100 * HOUR)).fetched).toEqual(['26.0.2-200', '26.0.1-100']);

    // Neither is published nor among the newest kept (keep 0): being listed holds both.
    const held = await gc(0, 0);
    expect(held.removed).toEqual([]);
    expect(held.kept.map((k) => k.reason)).toEqual(['update', 'update']);

    upstream.setFeed(26, feedXml([{ version: '26.0.2-200', filePath: newUrl, fileSize: String(newBytes.length) }]));
    await syncAt(-50 * HOUR);
    expect((await getUpdate(mirror.runtime, '26.0.1-100')).listed).toBe(false);
    const dropped = await gc(0, 0);
    expect(dropped.removed.map((r) => r.sha256)).toEqual([sha256Of(oldBytes)]);
    expect(await stateOf('26.0.1-100')).toBe('collected');
    expect(await stateOf('26.0.2-200')).toBe('stored');

    upstream.setFeed(26, both);
    const back = await syncAt(1 * HOUR);
    expect(back.fetched).toEqual(['26.0.1-100']);
    expect(await getUpdate(mirror.runtime, '26.0.1-100')).toMatchObject({
      state: 'stored',
      sha256: sha256Of(oldBytes),
    });
  });

  it('deleting the file of a published version is refused; of an unpublished one, the version says collected', async () => {
    const published = await add('26.6.0-600', -100 * HOUR);
    const available = await add('26.6.1-610', -100 * HOUR);
    await publishUpdate(mirror.runtime, cliActor, '26.6.0-600');
    await expect(deleteBlob(mirror.runtime, cliActor, published, PUBLIC)).rejects.toMatchObject({
      code: 'BLOB_IN_USE',
      message: expect.stringContaining('Parallels Desktop 26.6.0-600') as string,
    });
    expect(await stored(published)).toBe(true);
    await deleteBlob(mirror.runtime, cliActor, available, PUBLIC);
    expect(await stored(available)).toBe(false);
    expect(await stateOf('26.6.1-610')).toBe('collected');
  });

  it('finds a corrupt update file in the scheduled check: its .dmg link answers 503, and the same bytes added again repair it', async () => {
    const bytes = fakeDmg(2 * 1024 * 1024 + 11, 'retention-corrupt');
    const version = '26.7.0-700';
    const sha = await add(version, 0, bytes);
    await publishUpdate(mirror.runtime, cliActor, version);
    const link = readFeed(
      await (await fetch(`${mirror.url}/updates/parallels_updates.xml`)).text(),
      's',
    ).versions[0]!.fileUrl.replace(PUBLIC, mirror.url);
    expect((await fetch(link)).status).toBe(200);

    await corruptStored(mirror, sha, 1_000_000);
    const week = 7 * 24 * HOUR;
    const due = await queueDueChecks(
      { db: mirror.runtime.db, clock: fakeClock(Date.now() + 2 * week) },
      mirror.runtime.checker,
      week,
    );
    expect(due).toEqual([sha]);
    await waitFor(async () => (await findBlob(mirror.runtime.db, sha as Sha256))?.state === 'corrupt', {
      what: 'the check to find the flipped byte',
    });
    expect(await quarantined(mirror)).toHaveLength(1);

    for (const method of ['GET', 'HEAD']) {
      const res = await fetch(link, { method });
      expect(res.status, method).toBe(503);
      if (method === 'GET')
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BLOB_UNAVAILABLE');
    }
    expect(await getUpdate(mirror.runtime, version)).toMatchObject({
      state: 'stored',
      published: true,
      blobState: 'corrupt',
    });
    expect((await integritySummary(mirror.runtime)).problems).toEqual([
      expect.objectContaining({ sha256: sha, state: 'corrupt', images: [], groups: [] }),
    ]);
    const metrics = await mirror.runtime.metrics.registry.metrics();
    expect(metrics).toMatch(/^goldmirror_verify_runs_total\{result="corrupt"\} 1$/m);
    expect(metrics).toMatch(/^goldmirror_corrupt_blobs 1$/m);

    // Other bytes are not a repair; the same bytes are, in place (same link).
    const deps = { ...mirror.runtime.ingestDeps, config: mirror.runtime.config };
    await expect(
      addUpdateFile(deps, cliActor, { source: [fakeDmg(1000, 'other')], what: 'other.dmg', version }),
    ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    await addUpdateFile(deps, cliActor, { source: [bytes], what: 'again.dmg', version });
    const repaired = await fetch(link);
    expect(repaired.status).toBe(200);
    expect(sha256Of(Buffer.from(await repaired.arrayBuffer()))).toBe(sha);
    expect(await findBlob(mirror.runtime.db, sha as Sha256)).toMatchObject({
      state: 'ok',
      kind: 'update',
      name: `ParallelsDesktop-${version}.dmg`,
    });
    await expect(addUpdateFile(deps, cliActor, { source: [bytes], what: 'third.dmg', version })).rejects.toMatchObject({
      code: 'UPDATE_EXISTS',
    });

    // A file gone from the store is found the same way.
    await removeStored(mirror, sha);
    expect(await mirror.runtime.checker.check(sha as Sha256)).toBe('missing');
    expect((await fetch(link)).status).toBe(503);
  });

  it('/metrics counts the versions by state and the alerts', async () => {
    const files = {
      published: fakeDmg(120_000, 'metrics-published'),
      available: fakeDmg(130_000, 'metrics-available'),
    };
    const urlOf = (v: string, bytes: Buffer) => upstream.setFile(`/desktop/v26/${v}/ParallelsDesktop-${v}.dmg`, bytes);
    const feed = () =>
      feedXml([
        { version: '26.9.2-920', filePath: `${upstream.url}/desktop/v26/26.9.2-920/gone.dmg` },
        { version: '26.9.1-910', filePath: urlOf('26.9.1-910', files.available) },
        { version: '26.9.0-900', filePath: urlOf('26.9.0-900', files.published) },
      ]);
    upstream.setFeed(26, feed());
    const first = await syncAt(-100 * HOUR);
    expect(first.failed.map((f) => f.version)).toEqual(['26.9.2-920']);
    await publishUpdate(mirror.runtime, cliActor, '26.9.0-900');
    await add('26.8.0-800', -100 * HOUR);
    expect((await gc(0, 0)).removed).toHaveLength(1);
    // The bytes behind a known URL change: an alert, and the stored file is still the one served.
    upstream.setFile('/desktop/v26/26.9.0-900/ParallelsDesktop-26.9.0-900.dmg', fakeDmg(120_000, 'metrics-changed'));
    const second = await syncAt(0);
    expect(second.alerts.map((a) => a.version)).toEqual(['26.9.0-900']);

    const token = await issueToken(mirror, 'metrics');
    const scrape = async () => {
      const { text } = await call(mirror.url, 'GET', '/metrics', { token });
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      return {
        available: value('goldmirror_pd_update_versions\\{state="available"\\}'),
        published: value('goldmirror_pd_update_versions\\{state="published"\\}'),
        waiting: value('goldmirror_pd_update_versions\\{state="waiting"\\}'),
        failed: value('goldmirror_pd_update_versions\\{state="failed"\\}'),
        collected: value('goldmirror_pd_update_versions\\{state="collected"\\}'),
        alerts: value('goldmirror_pd_update_alerts'),
      };
    };
    expect(await scrape()).toEqual({ available: 1, published: 1, waiting: 0, failed: 1, collected: 1, alerts: 1 });
    await unpublishUpdate(mirror.runtime, cliActor, '26.9.0-900');
    expect(await scrape()).toMatchObject({ available: 2, published: 0, alerts: 1 });
  });
});
