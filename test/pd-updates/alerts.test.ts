/**
 * What happens after upstream surprises: an alert an admin closes by keeping the stored file or taking the new
 * bytes (held from GC meanwhile, never raised again for the same change), a collected version whose URL now
 * serves other bytes, a FilePath that moves, a corrupt stored file repaired from upstream, rollback within one
 * major version, a feed dropped from the configuration, and values that must not reach the database or feed.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { findBlob } from '../../server/db/repos/blobs.js';
import { cliActor } from '../../server/services/audit.js';
import { collectGarbage } from '../../server/services/gc.js';
import { readFeed } from '../../server/services/pd-updates/feed.js';
import { syncUpdates } from '../../server/services/pd-updates/sync.js';
import {
  addUpdateFile,
  getUpdate,
  listUpdates,
  publishUpdate,
  rollbackUpdate,
} from '../../server/services/pd-updates/versions.js';
import { deleteBlob } from '../../server/services/blobs.js';
import type { Sha256 } from '../../storage/digest.js';
import { call, expectError, issueToken } from '../helpers/api.js';
import { corruptStored } from '../helpers/blobs.js';
import { startMirror, type TestMirror } from '../helpers/env.js';
import { fakeDmg, feedXml, sha256Of, startFakeUpstream, type FakeUpstream } from '../helpers/pd-upstream.js';

const PUBLIC = 'http://mirror.example.lan:8080';
const V = '26.3.3-57507';
const PATH = `/desktop/v26/${V}/ParallelsDesktop-${V}.dmg`;

describe('alerts and surprises from upstream', () => {
  let upstream: FakeUpstream;
  let mirror: TestMirror;
  const original = fakeDmg(700_000, 'alerts-original');
  const changed = fakeDmg(700_001, 'alerts-changed');

  beforeAll(async () => {
    upstream = await startFakeUpstream();
  });
  afterAll(async () => {
    await upstream.close();
  });
  beforeEach(async () => {
    mirror = await startMirror({ publicUrl: PUBLIC });
  });
  afterEach(async () => {
    await mirror.close();
  });

  const sync = (feeds = [upstream.feedUrl(26)], autoPublish = false) =>
    syncUpdates(mirror.runtime.ingestDeps, { feeds, autoPublish, actor: cliActor, retryDelayMs: 10 });
  const servedLinks = async () =>
    readFeed(await (await fetch(`${mirror.url}/updates/parallels_updates.xml`)).text(), 'served').versions.map(
      (v) => v.fileUrl,
    );
  const gc = () => collectGarbage(mirror.runtime, cliActor, { dryRun: false, graceMs: 0, keepUpdates: 0 });

  /** Stores V from upstream, published; then upstream serves `bytes` at the same URL under a new ETag. */
  async function storedThenChanged(bytes: Buffer): Promise<string> {
    const url = upstream.setFile(PATH, original);
    upstream.setFeed(26, feedXml([{ version: V, filePath: url, fileSize: String(original.length) }]));
    expect((await sync()).fetched).toEqual([V]);
    await publishUpdate(mirror.runtime, cliActor, V);
    upstream.setFile(PATH, bytes);
    return url;
  }

  it('holds the new bytes of an open alert from GC; keeping the stored file closes it for good', async () => {
    await storedThenChanged(changed);
    const report = await sync();
    expect(report.alerts.map((a) => a.version)).toEqual([V]);
    const alerted = await getUpdate(mirror.runtime, V);
    expect(alerted).toMatchObject({ sha256: sha256Of(original), alertSha256: sha256Of(changed), published: true });
    await gc();
    expect(await findBlob(mirror.runtime.db, sha256Of(changed) as Sha256)).toMatchObject({ kind: 'update' });

    const token = await issueToken(mirror, 'admin');
    const kept = await call<{ alert: string | null; sha256: string }>(
      mirror.url,
      'POST',
      `/api/v1/updates/${V}/alert`,
      {
        token,
        json: { take: false },
      },
    );
    expect(kept.status).toBe(200);
    expect(kept.body).toMatchObject({ alert: null, sha256: sha256Of(original) });
    expectError(
      await call(mirror.url, 'POST', `/api/v1/updates/${V}/alert`, { token, json: { take: false } }),
      409,
      'CONFLICT',
    );
    // The same change is not raised again, and the file behind it is not downloaded again.
    const before = upstream.requests.filter((r) => r.startsWith(`GET ${PATH}`)).length;
    expect((await sync()).alerts).toEqual([]);
    expect(upstream.requests.filter((r) => r.startsWith(`GET ${PATH}`)).length).toBe(before);
    await gc();
    expect(await findBlob(mirror.runtime.db, sha256Of(changed) as Sha256)).toBeUndefined();
    expect(await servedLinks()).toEqual([`${PUBLIC}/d/${sha256Of(original)}/ParallelsDesktop-${V}.dmg`]);
  });

  it('taking the new bytes makes them the version’s file and the feed’s link', async () => {
    await storedThenChanged(changed);
    await sync();
    const token = await issueToken(mirror, 'admin');
    const taken = await call<{ sha256: string; alert: string | null }>(
      mirror.url,
      'POST',
      `/api/v1/updates/${V}/alert`,
      {
        token,
        json: { take: true },
      },
    );
    expect(taken.body).toMatchObject({ sha256: sha256Of(changed), alert: null });
    const [link] = await servedLinks();
    expect(link).toBe(`${PUBLIC}/d/${sha256Of(changed)}/ParallelsDesktop-${V}.dmg`);
    const body = Buffer.from(await (await fetch(link!.replace(PUBLIC, mirror.url))).arrayBuffer());
    expect(sha256Of(body)).toBe(sha256Of(changed));
  });

  it('an alert with nothing stored to take refuses --take', async () => {
    const page = Buffer.from('<html>maintenance</html>');
    await storedThenChanged(page);
    await sync();
    expect((await getUpdate(mirror.runtime, V)).alertSha256).toBeNull();
    await expect(
      import('../../server/services/pd-updates/versions.js').then((m) =>
        m.resolveUpdateAlert(mirror.runtime, cliActor, V, { take: true }),
      ),
    ).rejects.toMatchObject({ code: 'UPDATE_NOT_STORED' });
  });

  it('a collected version whose URL now serves other bytes gets an alert, not the new bytes', async () => {
    const url = upstream.setFile(PATH, original);
    upstream.setFeed(26, feedXml([{ version: V, filePath: url }]));
    await sync();
    await deleteBlob(mirror.runtime, cliActor, sha256Of(original), null);
    expect((await getUpdate(mirror.runtime, V)).state).toBe('collected');
    upstream.setFile(PATH, changed);
    const report = await sync([upstream.feedUrl(26)], true);
    expect(report.alerts.map((a) => a.version)).toEqual([V]);
    expect(report.published).toEqual([]);
    expect(await getUpdate(mirror.runtime, V)).toMatchObject({
      state: 'collected',
      sha256: sha256Of(original),
      published: false,
    });
  });

  it('a moved FilePath with the same bytes follows upstream; with other bytes the stored entry stays and an alert is raised', async () => {
    const url = upstream.setFile(PATH, original);
    upstream.setFeed(26, feedXml([{ version: V, filePath: url, codename: 'Old' }]));
    await sync();
    const cdn = upstream.setFile(`/cdn/${V}.dmg`, original);
    upstream.setFeed(26, feedXml([{ version: V, filePath: cdn, codename: 'New' }]));
    expect((await sync()).alerts).toEqual([]);
    expect(await getUpdate(mirror.runtime, V)).toMatchObject({ upstreamUrl: cdn, codename: 'New' });

    const other = upstream.setFile(`/elsewhere/${V}.dmg`, changed);
    upstream.setFeed(26, feedXml([{ version: V, filePath: other, codename: 'Newer' }]));
    expect((await sync()).alerts.map((a) => a.version)).toEqual([V]);
    expect(await getUpdate(mirror.runtime, V)).toMatchObject({
      upstreamUrl: cdn,
      codename: 'New',
      sha256: sha256Of(original),
      alertSha256: sha256Of(changed),
    });
  });

  it('repairs a stored file the integrity check found corrupt from its upstream URL', async () => {
    const url = upstream.setFile(PATH, original);
    upstream.setFeed(26, feedXml([{ version: V, filePath: url }]));
    await sync();
    const sha = sha256Of(original);
    await corruptStored(mirror, sha, 1000);
    expect(await mirror.runtime.checker.check(sha as Sha256)).not.toBe('ok');
    expect((await findBlob(mirror.runtime.db, sha as Sha256))?.state).toBe('corrupt');
    expect((await sync()).alerts).toEqual([]);
    expect((await findBlob(mirror.runtime.db, sha as Sha256))?.state).toBe('ok');
    expect(await getUpdate(mirror.runtime, V)).toMatchObject({ blobState: 'ok', state: 'stored' });
  });

  it('rolls back within one major version only', async () => {
    const deps = { ...mirror.runtime.ingestDeps, config: mirror.runtime.config };
    for (const [version, seed] of [
      ['25.4.1-56000', 'r25a'],
      ['25.4.2-56100', 'r25b'],
      ['26.3.3-57507', 'r26'],
    ] as const) {
      await addUpdateFile(deps, cliActor, { source: [fakeDmg(4096, seed)], what: seed, version, publish: true });
    }
    const rolled = await rollbackUpdate(mirror.runtime, cliActor, '25.4.1-56000');
    expect(rolled.unpublished).toEqual(['25.4.2-56100']);
    const published = (await listUpdates(mirror.runtime)).versions.filter((v) => v.published).map((v) => v.version);
    expect(published).toEqual(['26.3.3-57507', '25.4.1-56000']);
  });

  it('a feed dropped from the configuration no longer holds its versions’ files', async () => {
    const url = upstream.setFile(PATH, original);
    upstream.setFeed(26, feedXml([{ version: V, filePath: url }]));
    await sync();
    expect((await getUpdate(mirror.runtime, V)).listed).toBe(true);
    await sync([]);
    expect((await getUpdate(mirror.runtime, V)).listed).toBe(false);
    expect((await gc()).removed.map((r) => r.sha256)).toEqual([sha256Of(original)]);
  });

  it('skips an entry whose FilePath is too long for the catalog, keeps a too-long ETag out, and refuses a code name XML cannot carry', async () => {
    const long = `${upstream.url}/${'a'.repeat(2100)}.dmg`;
    const url = upstream.setFile(PATH, original, { etag: `"${'e'.repeat(600)}"` });
    upstream.setFeed(
      26,
      feedXml([
        { version: '26.3.4-57600', filePath: long },
        { version: V, filePath: url },
      ]),
    );
    const report = await sync();
    expect(report.feeds[0]).toMatchObject({ ok: true, versions: [V] });
    expect(report.feeds[0]!.skipped).toEqual([
      expect.stringContaining('26.3.4-57600: its FilePath is longer than 2000'),
    ]);
    expect(report.fetched).toEqual([V]);
    // No validator was kept, and the next sync sees the same length: nothing is downloaded again.
    const before = upstream.requests.filter((r) => r.startsWith(`GET ${PATH}`)).length;
    expect((await sync()).alerts).toEqual([]);
    expect(upstream.requests.filter((r) => r.startsWith(`GET ${PATH}`)).length).toBe(before);

    await expect(
      addUpdateFile({ ...mirror.runtime.ingestDeps, config: mirror.runtime.config }, cliActor, {
        source: [fakeDmg(4096, 'codename')],
        what: 'x.dmg',
        version: '26.4.0-58000',
        codename: 'Bad\uFFFEName',
      }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});
