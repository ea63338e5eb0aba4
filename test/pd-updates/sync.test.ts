/**
 * Following the official feed end to end, against a fake upstream on 127.0.0.1: the first sync, a new
 * version appearing, publish/unpublish/rollback in the served XML, the mirrored .dmg with Range and resume,
 * and every way upstream can go wrong leaving what is served unchanged.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cliActor } from '../../server/services/audit.js';
import { readFeed } from '../../server/services/pd-updates/feed.js';
import { syncUpdates } from '../../server/services/pd-updates/sync.js';
import {
  listUpdates,
  publishUpdate,
  rollbackUpdate,
  unpublishUpdate,
} from '../../server/services/pd-updates/versions.js';
import { startMirror, type TestMirror } from '../helpers/env.js';
import { fakeDmg, feedXml, sha256Of, startFakeUpstream, type FakeUpstream } from '../helpers/pd-upstream.js';

const PUBLIC = 'http://mirror.example.lan:8080';

describe('Parallels Desktop updates from a fake upstream', () => {
  let upstream: FakeUpstream;
  let mirror: TestMirror;
  const v1 = fakeDmg(3 * 1024 * 1024 + 17, 'pd-26.3.2');
  const v2 = fakeDmg(2 * 1024 * 1024 + 5, 'pd-26.3.3');

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

  const sync = () =>
    syncUpdates(mirror.runtime.ingestDeps, {
      feeds: [upstream.feedUrl(26)],
      autoPublish: false,
      actor: cliActor,
      retryDelayMs: 10,
    });

  it('first sync stores the file; publish serves a feed whose FilePath downloads the same bytes', async () => {
    const path = '/desktop/v26/26.3.2-57480/ParallelsDesktop-26.3.2-57480.dmg';
    const url = upstream.setFile(path, v1);
    upstream.setFeed(26, feedXml([{ version: '26.3.2-57480', filePath: ` ${url} `, fileSize: String(v1.length) }]));
    const report = await sync();
    expect(report.feeds[0]).toMatchObject({ ok: true, added: ['26.3.2-57480'] });
    expect(report.fetched).toEqual(['26.3.2-57480']);
    const overview = await listUpdates(mirror.runtime);
    expect(overview.versions[0]).toMatchObject({ state: 'stored', sha256: sha256Of(v1), published: false });

    await publishUpdate(mirror.runtime, cliActor, '26.3.2-57480');
    const res = await fetch(`${mirror.url}/updates/parallels_updates.xml`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/xml/);
    const xml = await res.text();
    const served = readFeed(xml, 'served');
    expect(served.versions.map((v) => v.version)).toEqual(['26.3.2-57480']);
    const link = served.versions[0]!.fileUrl;
    expect(link).toBe(`${PUBLIC}/d/${sha256Of(v1)}/ParallelsDesktop-26.3.2-57480.dmg`);
    const local = link.replace(PUBLIC, mirror.url);
    const body = Buffer.from(await (await fetch(local)).arrayBuffer());
    expect(sha256Of(body)).toBe(sha256Of(v1));
    const ranged = await fetch(local, { headers: { Range: 'bytes=100-199' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer())).toEqual(v1.subarray(100, 200));

    const etag = res.headers.get('etag')!;
    const again = await fetch(`${mirror.url}/updates/parallels_updates.xml`, { headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);

    // A new version appears; rollback goes back to the old one.
    const url2 = upstream.setFile('/desktop/v26/26.3.3-57507/ParallelsDesktop-26.3.3-57507.dmg', v2);
    upstream.setFeed(
      26,
      feedXml([
        {
          version: '26.3.3-57507',
          filePath: url2,
          fileSize: String(v2.length),
          ancestors: ['desktop.26.3.2.57480.en_US.parallels.mac'],
        },
      ]),
    );
    const second = await sync();
    expect(second.fetched).toEqual(['26.3.3-57507']);
    await publishUpdate(mirror.runtime, cliActor, '26.3.3-57507');
    const both = readFeed(
      await (await fetch(`${mirror.url}/updates/desktop/v26/parallels/parallels_updates.xml`)).text(),
      's',
    );
    expect(both.versions.map((v) => v.version)).toEqual(['26.3.3-57507', '26.3.2-57480']);
    const rolled = await rollbackUpdate(mirror.runtime, cliActor, '26.3.2-57480');
    expect(rolled.unpublished).toEqual(['26.3.3-57507']);
    const after = readFeed(await (await fetch(`${mirror.url}/updates/parallels_updates.xml`)).text(), 's');
    expect(after.versions.map((v) => v.version)).toEqual(['26.3.2-57480']);
    await unpublishUpdate(mirror.runtime, cliActor, '26.3.2-57480');
    const none = readFeed(await (await fetch(`${mirror.url}/updates/parallels_updates.xml`)).text(), 's');
    expect(none.versions).toEqual([]);
  });
});
