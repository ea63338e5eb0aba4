/**
 * The upstream follower and the served feed against a hostile or broken upstream, with a real mirror and a fake
 * update.parallels.com on 127.0.0.1: a feed that is down, junk, a bomb or too large leaves the served feed byte for
 * byte as it was; broken downloads store nothing and are retried; changed bytes behind a known URL raise an
 * alert; auto-publish respects an admin's unpublish; two majors merge and split; the outbound guard applies; the
 * .dmg/.pvmp link rules and the feed endpoints' HTTP behaviour hold. Timeouts are left out (too slow to test).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sha256 } from '../../storage/digest.js';
import { cliActor } from '../../server/services/audit.js';
import { collectGarbage } from '../../server/services/gc.js';
import { createImage } from '../../server/services/images.js';
import { readFeed } from '../../server/services/pd-updates/feed.js';
import { FEED_LIMITS } from '../../server/services/pd-updates/feed-xml.js';
import { syncUpdates } from '../../server/services/pd-updates/sync.js';
import {
  listUpdates,
  publishUpdate,
  unpublishUpdate,
  type UpdateView,
} from '../../server/services/pd-updates/versions.js';
import { bootstrapTestAdmin, matching } from '../helpers/api.js';
import { fakeClock } from '../helpers/clock.js';
import { putBlob, startMirror, type TestMirror } from '../helpers/env.js';
import { fakeDmg, feedXml, sha256Of, startFakeUpstream, type FakeUpstream } from '../helpers/pd-upstream.js';

const PUBLIC = 'http://mirror.example.lan:8080';
const FEED = '/updates/parallels_updates.xml';
const MAJOR_FEED = (major: number | string) => `/updates/desktop/v${major}/parallels/parallels_updates.xml`;
const DAY = 24 * 60 * 60 * 1000;

const V1 = '26.3.2-57480';
const V2 = '26.3.3-57507';
const V25 = '25.4.1-52000';
const filePath = (version: string) => `/desktop/v${version.split('.')[0]}/${version}/ParallelsDesktop-${version}.dmg`;

const v1 = fakeDmg(2 * 1024 * 1024 + 17, 'faults-26.3.2');
const v2 = fakeDmg(1024 * 1024 + 5, 'faults-26.3.3');
const v25 = fakeDmg(1024 * 1024 + 9, 'faults-25.4.1');

/** The bytes Macs get from a feed path of `mirror`, with its validator. */
async function servedFeed(
  mirror: TestMirror,
  path = FEED,
): Promise<{ status: number; xml: string; etag: string | null }> {
  const res = await fetch(`${mirror.url}${path}`);
  return { status: res.status, xml: await res.text(), etag: res.headers.get('etag') };
}

/** The versions a served feed lists, in order. */
const versionsIn = (xml: string): string[] => readFeed(xml, 'served').versions.map((v) => v.version);

/** What a Mac downloads from the FilePath of `version` in the served feed `xml`. */
async function downloadFromFeed(mirror: TestMirror, xml: string, version: string): Promise<Buffer> {
  const entry = readFeed(xml, 'served').versions.find((v) => v.version === version)!;
  expect(entry.fileUrl.startsWith(`${PUBLIC}/d/`)).toBe(true);
  const res = await fetch(entry.fileUrl.replace(PUBLIC, mirror.url));
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

const viewOf = async (mirror: TestMirror, version: string): Promise<UpdateView> =>
  (await listUpdates(mirror.runtime)).versions.find((v) => v.version === version)!;

async function blobCount(mirror: TestMirror): Promise<number> {
  const row = await mirror.runtime.db
    .selectFrom('blobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

const isStored = async (mirror: TestMirror, bytes: Buffer): Promise<boolean> =>
  (await mirror.runtime.store.stat(sha256Of(bytes) as Sha256)) !== null;

describe('a broken or hostile upstream', () => {
  let upstream: FakeUpstream;
  let mirror: TestMirror;

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

  const sync = (options: { autoPublish?: boolean; feeds?: string[]; on?: TestMirror } = {}) =>
    syncUpdates((options.on ?? mirror).runtime.ingestDeps, {
      feeds: options.feeds ?? [upstream.feedUrl(26)],
      autoPublish: options.autoPublish ?? false,
      actor: cliActor,
      retryDelayMs: 10,
    });

  /** The good feed of this suite: `versions` of major 26, each with its file served truthfully. */
  function goodFeed(on: FakeUpstream, versions: Array<[string, Buffer]>): string {
    return feedXml(
      versions.map(([version, bytes]) => ({
        version,
        filePath: on.setFile(filePath(version), bytes),
        fileSize: String(bytes.length),
      })),
    );
  }

  /** V1 stored and published: the state every fault below must leave served as it is. */
  async function publishedV1(): Promise<{ status: number; xml: string; etag: string | null }> {
    upstream.setFeed(26, goodFeed(upstream, [[V1, v1]]));
    const report = await sync();
    expect(report.fetched).toEqual([V1]);
    await publishUpdate(mirror.runtime, cliActor, V1);
    const before = await servedFeed(mirror);
    expect(before.status).toBe(200);
    expect(versionsIn(before.xml)).toEqual([V1]);
    return before;
  }

  const laughs = `<?xml version="1.0"?>
<!DOCTYPE ParallelsUpdates [
  <!ENTITY lol "lol">
${Array.from({ length: 9 }, (_, i) => `  <!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`).join('\n')}
]>
<ParallelsUpdates schemaVersion="1.0"><Product>&lol9;</Product></ParallelsUpdates>`;

  const faults: Array<{ name: string; apply: () => void; error: RegExp }> = [
    { name: 'answers HTTP 500', apply: () => upstream.setFeed(26, 500), error: /answered HTTP 500$/ },
    { name: 'answers HTTP 404', apply: () => upstream.setFeed(26, 404), error: /answered HTTP 404$/ },
    {
      name: 'serves an HTML error page',
      apply: () =>
        upstream.setFeed(26, '<!DOCTYPE html>\n<html><head><title>503</title></head><body>Maintenance</body></html>'),
      error: /is not a usable update feed: it declares a DOCTYPE/,
    },
    {
      name: 'serves plain-text junk',
      apply: () => upstream.setFeed(26, 'upstream connect error or disconnect/reset before headers\n'),
      error: /is not a usable update feed: malformed XML/,
    },
    {
      name: 'serves well-formed XML that is not a feed',
      apply: () => upstream.setFeed(26, '<rss version="2.0"><channel><title>news</title></channel></rss>'),
      error: /is not a Parallels update feed: its root is <rss>$/,
    },
    {
      name: 'serves a billion-laughs bomb',
      apply: () => upstream.setFeed(26, laughs),
      error: /is not a usable update feed: it declares a DOCTYPE/,
    },
    {
      name: 'serves a feed larger than the cap',
      apply: () =>
        upstream.setFeed(
          26,
          goodFeed(upstream, [[V1, v1]]).replace('<Product>', `<Product><!--${'x'.repeat(FEED_LIMITS.maxBytes)}-->`),
        ),
      error: new RegExp(`is larger than ${FEED_LIMITS.maxBytes} bytes$`),
    },
  ];

  for (const fault of faults) {
    it(`changes nothing served when the feed ${fault.name}, records why, and recovers at the next good sync`, async () => {
      const before = await publishedV1();
      const overviewBefore = await listUpdates(mirror.runtime);
      expect(overviewBefore.upstream).toEqual([
        { url: upstream.feedUrl(26), checkedAt: matching(/Z$/), okAt: matching(/Z$/), error: null, skipped: [] },
      ]);

      fault.apply();
      const report = await sync();
      expect(report.feeds).toEqual([
        { url: upstream.feedUrl(26), ok: false, error: matching(fault.error), versions: [], added: [], skipped: [] },
      ]);
      expect(report).toMatchObject({ fetched: [], failed: [], alerts: [], published: [] });

      // Byte-identical, on both paths, and the versions (listed, published, stored) as they were.
      expect(await servedFeed(mirror)).toEqual(before);
      expect((await servedFeed(mirror, MAJOR_FEED(26))).xml).toBe(before.xml);
      const overview = await listUpdates(mirror.runtime);
      expect(overview.versions).toEqual(overviewBefore.versions);
      expect(overview.upstream).toEqual([
        {
          url: upstream.feedUrl(26),
          checkedAt: matching(/Z$/),
          // The last good read stays the last good read.
          okAt: overviewBefore.upstream[0]!.okAt,
          error: matching(fault.error),
          skipped: [],
        },
      ]);
      expect(Date.parse(overview.upstream[0]!.checkedAt!)).toBeGreaterThanOrEqual(
        Date.parse(overviewBefore.upstream[0]!.checkedAt!),
      );

      // Upstream is good again, with a new version: the error clears and the follower carries on.
      upstream.setFeed(
        26,
        goodFeed(upstream, [
          [V2, v2],
          [V1, v1],
        ]),
      );
      const recovered = await sync();
      expect(recovered.feeds[0]).toMatchObject({ ok: true, error: null, added: [V2] });
      expect(recovered.fetched).toEqual([V2]);
      const after = await listUpdates(mirror.runtime);
      expect(after.upstream[0]).toMatchObject({ error: null });
      expect(Date.parse(after.upstream[0]!.okAt!)).toBeGreaterThanOrEqual(
        Date.parse(overviewBefore.upstream[0]!.okAt!),
      );
      expect((await servedFeed(mirror)).xml).toBe(before.xml);
    });
  }

  it('changes nothing served while upstream refuses connections, and recovers when it is back at its address', async () => {
    const flaky = await startFakeUpstream();
    const port = Number(new URL(flaky.url).port);
    const feeds = [flaky.feedUrl(26)];
    let back: FakeUpstream | null = null;
    try {
      flaky.setFeed(26, goodFeed(flaky, [[V1, v1]]));
      expect((await sync({ feeds })).fetched).toEqual([V1]);
      await publishUpdate(mirror.runtime, cliActor, V1);
      const before = await servedFeed(mirror);
      const overviewBefore = await listUpdates(mirror.runtime);

      await flaky.close();
      const report = await sync({ feeds });
      expect(report.feeds[0]).toMatchObject({ ok: false, error: matching(/ECONNREFUSED/) });
      expect(await servedFeed(mirror)).toEqual(before);
      const overview = await listUpdates(mirror.runtime);
      expect(overview.versions).toEqual(overviewBefore.versions);
      expect(overview.upstream[0]).toMatchObject({
        error: matching(/ECONNREFUSED/),
        okAt: overviewBefore.upstream[0]!.okAt,
      });

      back = await startFakeUpstream({ port });
      back.setFeed(26, goodFeed(back, [[V1, v1]]));
      const recovered = await sync({ feeds });
      expect(recovered.feeds[0]).toMatchObject({ ok: true, error: null, versions: [V1] });
      expect((await listUpdates(mirror.runtime)).upstream[0]).toMatchObject({ error: null });
      expect(await servedFeed(mirror)).toEqual(before);
    } finally {
      await back?.close();
    }
  });

  it('stores a file whose FileSize disagrees with its length, notes it, and serves FileSize as upstream wrote it', async () => {
    const writtenSize = String(v1.length + 1000);
    upstream.setFeed(
      26,
      feedXml([
        { version: V1, filePath: upstream.setFile(filePath(V1), v1), fileSize: writtenSize },
        // A FileSize that is not a byte count is never compared.
        { version: V2, filePath: upstream.setFile(filePath(V2), v2), fileSize: '1.1 GB' },
      ]),
    );
    const report = await sync();
    expect(report.fetched).toEqual([V2, V1]);
    expect(report.failed).toEqual([]);
    const view = await viewOf(mirror, V1);
    expect(view).toMatchObject({ state: 'stored', sha256: sha256Of(v1), size: v1.length, fileSize: writtenSize });
    expect(view.notes).toEqual([
      `the feed's FileSize (${writtenSize}) differs from the file's length (${v1.length} bytes); it is served as upstream wrote it`,
    ]);
    expect((await viewOf(mirror, V2)).notes).toEqual([]);

    await publishUpdate(mirror.runtime, cliActor, V1);
    await publishUpdate(mirror.runtime, cliActor, V2);
    const { xml } = await servedFeed(mirror);
    const served = readFeed(xml, 'served').versions;
    expect(served.map((v) => [v.version, v.fileSize])).toEqual([
      [V2, '1.1 GB'],
      [V1, writtenSize],
    ]);
    expect(sha256Of(await downloadFromFeed(mirror, xml, V1))).toBe(sha256Of(v1));
  });

  it('stores nothing when the body is shorter than its Content-Length, records why, and retries at the next sync', async () => {
    const bytes = fakeDmg(1024 * 1024 + 3, 'faults-lying-length');
    const path = filePath(V2);
    upstream.setFeed(
      26,
      feedXml([
        {
          version: V2,
          filePath: upstream.setFile(path, bytes, { contentLength: bytes.length + 4096 }),
          fileSize: String(bytes.length),
        },
      ]),
    );
    const report = await sync();
    expect(report.fetched).toEqual([]);
    const error = `could not download ${upstream.url}${path}: connection ended after ${bytes.length} of ${bytes.length + 4096} bytes`;
    expect(report.failed).toEqual([{ version: V2, error }]);
    expect(await viewOf(mirror, V2)).toMatchObject({ state: 'failed', fetchError: error, sha256: null, size: null });
    expect(await blobCount(mirror)).toBe(0);
    expect(await isStored(mirror, bytes)).toBe(false);
    await expect(publishUpdate(mirror.runtime, cliActor, V2)).rejects.toMatchObject({ code: 'UPDATE_NOT_STORED' });

    // Upstream fixed its server: the next sync fetches the file again, from the start.
    upstream.setFile(path, bytes);
    const requestsBefore = upstream.log.length;
    const retried = await sync();
    expect(retried.fetched).toEqual([V2]);
    expect(upstream.log.slice(requestsBefore).filter((r) => r.path === path)).toEqual([
      { method: 'GET', path, range: null, ifRange: null },
    ]);
    expect(await viewOf(mirror, V2)).toMatchObject({ state: 'stored', fetchError: null, sha256: sha256Of(bytes) });
  });

  it('resumes a dropped download with Range and If-Range and stores exactly the upstream bytes', async () => {
    const bytes = fakeDmg(3 * 1024 * 1024 + 7, 'faults-dropped');
    const cut = 1024 * 1024 + 123;
    const path = filePath(V2);
    const url = upstream.setFile(path, bytes, { dropAfter: cut, etag: '"dropped-v1"' });
    upstream.setFeed(26, feedXml([{ version: V2, filePath: url, fileSize: String(bytes.length) }]));
    const requestsBefore = upstream.log.length;
    const report = await sync();
    expect(report.fetched).toEqual([V2]);
    const gets = upstream.log.slice(requestsBefore).filter((r) => r.path === path);
    expect(gets).toHaveLength(2);
    expect(gets[0]).toEqual({ method: 'GET', path, range: null, ifRange: null });
    // The resume asks for the rest only, and only if the file is still the one the first answer described.
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(cut);
    expect(gets[1]!.ifRange).toBe('"dropped-v1"');
    expect(await viewOf(mirror, V2)).toMatchObject({ state: 'stored', sha256: sha256Of(bytes), size: bytes.length });

    await publishUpdate(mirror.runtime, cliActor, V2);
    expect((await downloadFromFeed(mirror, (await servedFeed(mirror)).xml, V2)).equals(bytes)).toBe(true);
  });

  it('refuses a file without the UDIF trailer (an HTML page served as the .dmg) and stores nothing', async () => {
    const page = Buffer.from(
      `<!DOCTYPE html><html><head><title>Download unavailable</title></head><body>${'<p>Try again later.</p>'.repeat(100)}</body></html>`,
    );
    const tiny = Buffer.from('koly');
    upstream.setFeed(
      26,
      feedXml([
        { version: V2, filePath: upstream.setFile(filePath(V2), page) },
        { version: V1, filePath: upstream.setFile(filePath(V1), tiny) },
      ]),
    );
    const report = await sync();
    expect(report.fetched).toEqual([]);
    expect(report.failed.map((f) => f.version)).toEqual([V2, V1]);
    for (const [version, f] of report.failed.map((f) => [f.version, f] as const)) {
      expect(f.error).toBe(
        `${upstream.url}${filePath(version)} is not a disk image (.dmg): it does not end in a UDIF trailer ("koly"); nothing was stored`,
      );
      expect(await viewOf(mirror, version)).toMatchObject({ state: 'failed', fetchError: f.error, sha256: null });
    }
    expect(await blobCount(mirror)).toBe(0);
    expect(await isStored(mirror, page)).toBe(false);
    expect(await isStored(mirror, tiny)).toBe(false);
  });

  it('raises an alert when the bytes behind a known URL change, and keeps serving the stored file', async () => {
    const before = await publishedV1();
    const changed = fakeDmg(v1.length, 'faults-26.3.2-replaced');
    upstream.setFile(filePath(V1), changed, { etag: '"replaced"' });

    const report = await sync();
    expect(report.feeds[0]).toMatchObject({ ok: true });
    expect(report.fetched).toEqual([]);
    expect(report.alerts).toEqual([{ version: V1, message: matching(/changed after this mirror stored them/) }]);
    const view = await viewOf(mirror, V1);
    expect(view).toMatchObject({
      state: 'stored',
      sha256: sha256Of(v1),
      published: true,
      alert: report.alerts[0]!.message,
      alertAt: matching(/Z$/),
    });
    expect(view.alert).toContain(`stored sha256 ${sha256Of(v1)} (${v1.length} bytes)`);
    expect(view.alert).toContain(`upstream now ${sha256Of(changed)} (${changed.length} bytes)`);
    expect(view.alert).toContain(`${upstream.url}${filePath(V1)}`);
    const audit = await mirror.runtime.db
      .selectFrom('audit_log')
      .select(['actor', 'target', 'details'])
      .where('action', '=', 'update.alert')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ target: `update:${V1}` });
    expect(JSON.parse(audit[0]!.details)).toEqual({
      url: `${upstream.url}${filePath(V1)}`,
      stored: sha256Of(v1),
      upstream: sha256Of(changed),
    });
    expect(await mirror.runtime.metrics.registry.metrics()).toMatch(/^goldmirror_pd_update_alerts 1$/m);

    // What Macs get is what was stored: the same feed, FilePath included, and the same bytes behind it.
    const after = await servedFeed(mirror);
    expect(after).toEqual(before);
    expect((await downloadFromFeed(mirror, after.xml, V1)).equals(v1)).toBe(true);

    // One alert per change: the next sync does not raise it again.
    const again = await sync();
    expect(again.alerts).toEqual([]);
    expect(
      await mirror.runtime.db.selectFrom('audit_log').select('id').where('action', '=', 'update.alert').execute(),
    ).toHaveLength(1);
  });

  it('raises an alert when a known URL starts serving an error page instead of the installer, and stores nothing', async () => {
    const before = await publishedV1();
    const page = Buffer.from('<!DOCTYPE html><html><body><h1>403 Forbidden</h1></body></html>');
    upstream.setFile(filePath(V1), page, { etag: '"error-page"' });
    const blobsBefore = await blobCount(mirror);

    const report = await sync();
    const message =
      `the bytes behind ${upstream.url}${filePath(V1)} changed after this mirror stored them: stored sha256 ` +
      `${sha256Of(v1)} (${v1.length} bytes), upstream now serves something that is not a disk image (no UDIF ` +
      `trailer). The stored file is still the one served; check with Parallels, then dismiss the alert or take the new file`;
    expect(report.alerts).toEqual([{ version: V1, message }]);
    expect(await viewOf(mirror, V1)).toMatchObject({ alert: message, state: 'stored', sha256: sha256Of(v1) });
    expect(await blobCount(mirror)).toBe(blobsBefore);
    expect(await isStored(mirror, page)).toBe(false);
    const audit = await mirror.runtime.db
      .selectFrom('audit_log')
      .select('details')
      .where('action', '=', 'update.alert')
      .execute();
    expect(audit.map((a) => JSON.parse(a.details) as unknown)).toEqual([
      { url: `${upstream.url}${filePath(V1)}`, stored: sha256Of(v1), upstream: null },
    ]);
    expect(await servedFeed(mirror)).toEqual(before);

    // Raised once: later syncs neither download the page again nor repeat the alert.
    const requestsBefore = upstream.log.length;
    expect((await sync()).alerts).toEqual([]);
    expect(upstream.log.slice(requestsBefore).filter((r) => r.path === filePath(V1))).toEqual([]);
  });

  it('refreshes nothing and alerts nobody when only the validator changed but the bytes are the same', async () => {
    const before = await publishedV1();
    upstream.setFile(filePath(V1), v1, { etag: '"same-bytes-new-etag"' });
    const report = await sync();
    expect(report.alerts).toEqual([]);
    expect(await viewOf(mirror, V1)).toMatchObject({ alert: null, sha256: sha256Of(v1) });
    expect(await mirror.runtime.metrics.registry.metrics()).toMatch(/^goldmirror_pd_update_alerts 0$/m);
    expect(await servedFeed(mirror)).toEqual(before);
  });

  it('auto-publishes new stored versions, but never one an admin unpublished, even when its file comes back', async () => {
    upstream.setFeed(26, goodFeed(upstream, [[V1, v1]]));
    expect(await sync({ autoPublish: true })).toMatchObject({ fetched: [V1], published: [V1] });
    expect(versionsIn((await servedFeed(mirror)).xml)).toEqual([V1]);
    const autoAudit = await mirror.runtime.db
      .selectFrom('audit_log')
      .select(['actor', 'details'])
      .where('action', '=', 'update.publish')
      .execute();
    expect(autoAudit.map((a) => JSON.parse(a.details) as unknown)).toEqual([{ auto: true }]);

    await unpublishUpdate(mirror.runtime, cliActor, V1);
    upstream.setFeed(
      26,
      goodFeed(upstream, [
        [V2, v2],
        [V1, v1],
      ]),
    );
    expect(await sync({ autoPublish: true })).toMatchObject({ fetched: [V2], published: [V2] });
    expect(versionsIn((await servedFeed(mirror)).xml)).toEqual([V2]);
    expect(await viewOf(mirror, V1)).toMatchObject({ published: false, state: 'stored' });

    // V1 leaves the feed and GC collects its file; when upstream lists it again it is fetched, not published.
    upstream.setFeed(26, goodFeed(upstream, [[V2, v2]]));
    await sync({ autoPublish: true });
    const later = { ...mirror.runtime, clock: fakeClock(Date.now() + 30 * DAY) };
    const gc = await collectGarbage(later, cliActor, { dryRun: false, graceMs: DAY, keepUpdates: 0 });
    expect(gc.removed.map((r) => r.sha256)).toEqual([sha256Of(v1)]);
    expect(await viewOf(mirror, V1)).toMatchObject({ state: 'collected' });
    upstream.setFeed(
      26,
      goodFeed(upstream, [
        [V2, v2],
        [V1, v1],
      ]),
    );
    expect(await sync({ autoPublish: true })).toMatchObject({ fetched: [V1], published: [] });
    expect(await viewOf(mirror, V1)).toMatchObject({ published: false, state: 'stored', sha256: sha256Of(v1) });
    expect(versionsIn((await servedFeed(mirror)).xml)).toEqual([V2]);
  });

  it('merges two majors in the main feed and splits them in the official layout', async () => {
    upstream.setFeed(
      25,
      feedXml([{ version: V25, filePath: upstream.setFile(filePath(V25), v25), fileSize: String(v25.length) }]).replace(
        '<ProductName>Parallels Desktop</ProductName>',
        '<ProductName>Parallels Desktop 25</ProductName>',
      ),
    );
    upstream.setFeed(
      26,
      goodFeed(upstream, [
        [V1, v1],
        [V2, v2],
      ]),
    );
    const report = await sync({ feeds: [upstream.feedUrl(25), upstream.feedUrl(26)], autoPublish: true });
    expect(report.feeds.map((f) => [f.ok, f.versions])).toEqual([
      [true, [V25]],
      [true, [V1, V2]],
    ]);
    expect(report.published.sort()).toEqual([V25, V1, V2].sort());
    const overview = await listUpdates(mirror.runtime);
    expect(overview.versions.map((v) => [v.version, v.feedUrl])).toEqual([
      [V2, upstream.feedUrl(26)],
      [V1, upstream.feedUrl(26)],
      [V25, upstream.feedUrl(25)],
    ]);

    const merged = await servedFeed(mirror);
    expect(versionsIn(merged.xml)).toEqual([V2, V1, V25]);
    // The frame is the newest version's: product elements of the v26 feed.
    expect(merged.xml).toContain('<ProductName>Parallels Desktop</ProductName>');
    const only26 = await servedFeed(mirror, MAJOR_FEED(26));
    expect(versionsIn(only26.xml)).toEqual([V2, V1]);
    const only25 = await servedFeed(mirror, MAJOR_FEED(25));
    expect(versionsIn(only25.xml)).toEqual([V25]);
    expect(only25.xml).toContain('<ProductName>Parallels Desktop 25</ProductName>');
    expect((await downloadFromFeed(mirror, only25.xml, V25)).equals(v25)).toBe(true);
    // A major nobody published is an empty feed, not an error (a Mac sees no update).
    const none = await servedFeed(mirror, MAJOR_FEED(24));
    expect(none.status).toBe(200);
    expect(versionsIn(none.xml)).toEqual([]);
    expect(new Set([merged.etag, only26.etag, only25.etag, none.etag]).size).toBe(4);
  });

  it('refuses a feed on a loopback address without MIRROR_FETCH_ALLOW covering it (the outbound guard)', async () => {
    const guarded = await startMirror({ publicUrl: PUBLIC, fetchAllow: [] });
    try {
      upstream.setFeed(26, goodFeed(upstream, [[V1, v1]]));
      const requestsBefore = upstream.log.length;
      const report = await sync({ on: guarded });
      const refusal = /^refusing to fetch from 127\.0\.0\.1: it is .*add it to MIRROR_FETCH_ALLOW/;
      expect(report.feeds[0]).toMatchObject({ ok: false, error: matching(refusal) });
      expect(report.fetched).toEqual([]);
      // Refused before connecting: upstream saw nothing.
      expect(upstream.log.length).toBe(requestsBefore);
      const overview = await listUpdates(guarded.runtime);
      expect(overview.upstream).toEqual([
        { url: upstream.feedUrl(26), checkedAt: matching(/Z$/), okAt: null, error: matching(refusal), skipped: [] },
      ]);
      expect(overview.versions).toEqual([]);
    } finally {
      await guarded.close();
    }
  });

  it('serves an update file only under a .dmg name and a package only under .pvmp; images refuse update files', async () => {
    upstream.setFeed(26, goodFeed(upstream, [[V1, v1]]));
    await sync();
    const update = sha256Of(v1);
    const pkg = await putBlob(mirror, fakeDmg(4096, 'faults-package'), 'Windows 11.pvmp');

    const get = (path: string) => fetch(`${mirror.url}${path}`);
    expect((await get(`/d/${update}/ParallelsDesktop-${V1}.dmg`)).status).toBe(200);
    expect((await get(`/d/${pkg}/Windows%2011.pvmp`)).status).toBe(200);
    const checksum = await get(`/d/${update}/ParallelsDesktop-${V1}.dmg.sha256`);
    expect(checksum.status).toBe(200);
    expect(await checksum.text()).toContain(update);

    for (const [path, right] of [
      [`/d/${pkg}/Windows 11.dmg`, '.pvmp'],
      [`/d/${pkg}/Windows 11.dmg.sha256`, '.pvmp'],
      [`/d/${update}/ParallelsDesktop-${V1}.pvmp`, '.dmg'],
      [`/d/${update}/ParallelsDesktop-${V1}.pvmp.sha256`, '.dmg'],
    ] as const) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('NOT_FOUND');
      expect(body.error.message).toContain(right);
    }

    await expect(
      createImage(mirror.runtime, cliActor, { name: 'Not a VM', arm64: { enabled: true, sha256: update } }, PUBLIC),
    ).rejects.toMatchObject({
      code: 'BLOB_NOT_STORED',
      message: `arm64: ${update} is a Parallels Desktop update file, not a golden-image package`,
    });
  });
});

describe('the feed endpoints', () => {
  let upstream: FakeUpstream;
  let mirror: TestMirror;

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    upstream.setFeed(
      26,
      feedXml([
        { version: V1, filePath: upstream.setFile(filePath(V1), v1) },
        { version: V2, filePath: upstream.setFile(filePath(V2), v2) },
      ]),
    );
    mirror = await startMirror({ publicUrl: PUBLIC });
    // With an admin the API is closed; the feed must stay open to Macs all the same.
    await bootstrapTestAdmin(mirror);
    const report = await syncUpdates(mirror.runtime.ingestDeps, {
      feeds: [upstream.feedUrl(26)],
      autoPublish: false,
      actor: cliActor,
      retryDelayMs: 10,
    });
    expect(report.fetched).toHaveLength(2);
    await publishUpdate(mirror.runtime, cliActor, V1);
  });
  afterAll(async () => {
    await mirror?.close();
    await upstream?.close();
  });

  it('answers HEAD with the headers of GET and no body, without any credentials', async () => {
    expect((await fetch(`${mirror.url}/api/v1/images`)).status).toBe(401);
    for (const path of [FEED, MAJOR_FEED(26)]) {
      const get = await fetch(`${mirror.url}${path}`);
      const body = await get.text();
      const head = await fetch(`${mirror.url}${path}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(await head.text()).toBe('');
      for (const name of ['content-type', 'etag', 'cache-control'])
        expect(head.headers.get(name), name).toBe(get.headers.get(name));
      expect(get.headers.get('content-type')).toBe('application/xml; charset=utf-8');
      expect(get.headers.get('etag')).toMatch(/^"[0-9a-f]{32}"$/);
      expect(versionsIn(body)).toEqual([V1]);
    }
  });

  it('answers a matching If-None-Match with 304, and changes the ETag when what is published changes', async () => {
    const first = await servedFeed(mirror);
    const revalidate = (etag: string, path = FEED) =>
      fetch(`${mirror.url}${path}`, { headers: { 'If-None-Match': etag } });
    const notModified = await revalidate(first.etag!);
    expect(notModified.status).toBe(304);
    expect(await notModified.text()).toBe('');
    expect(notModified.headers.get('etag')).toBe(first.etag);
    expect((await revalidate(`"other", W/${first.etag!}`)).status).toBe(304);
    expect((await revalidate('"other"')).status).toBe(200);

    await publishUpdate(mirror.runtime, cliActor, V2);
    const published = await servedFeed(mirror);
    expect(published.etag).not.toBe(first.etag);
    expect(versionsIn(published.xml)).toEqual([V2, V1]);
    const stale = await revalidate(first.etag!);
    expect(stale.status).toBe(200);
    expect(stale.headers.get('etag')).toBe(published.etag);

    await unpublishUpdate(mirror.runtime, cliActor, V2);
    const back = await servedFeed(mirror);
    expect(back).toEqual(first);
    const major = await servedFeed(mirror, MAJOR_FEED(26));
    expect((await revalidate(major.etag!, MAJOR_FEED(26))).status).toBe(304);
  });

  it('answers 404 for a major that is not v<number>', async () => {
    for (const bad of ['vX', '26', 'v', 'v26.3', 'v99999']) {
      const res = await fetch(`${mirror.url}${MAJOR_FEED(bad).replace('/v', '/')}`);
      expect(res.status, bad).toBe(404);
      const body = (await res.json()) as { error: { code: string } };
      expect(body.error.code).toBe('NOT_FOUND');
    }
    expect((await fetch(`${mirror.url}/updates/desktop/v26/parallels/other.xml`)).status).toBe(404);
  });

  it('answers 503 PUBLIC_ADDRESS_MISSING while the mirror has no public address', async () => {
    const bare = await startMirror();
    try {
      for (const path of [FEED, MAJOR_FEED(26)]) {
        for (const method of ['GET', 'HEAD']) {
          const res = await fetch(`${bare.url}${path}`, { method });
          expect(res.status, `${method} ${path}`).toBe(503);
          if (method === 'GET') {
            const body = (await res.json()) as { error: { code: string } };
            expect(body.error.code).toBe('PUBLIC_ADDRESS_MISSING');
          }
        }
      }
      expect((await listUpdates(bare.runtime)).feedUrl).toBeNull();
    } finally {
      await bare.close();
    }
  });
});
