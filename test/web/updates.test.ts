/**
 * The "Parallels Desktop updates" page over a real mirror and a fake upstream on 127.0.0.1: the feed URL to
 * give the Macs, the upstream status, Sync now, the versions with their publish / unpublish / roll back
 * buttons (each a CSRF-protected POST, reflected in the served XML), the streamed "Add a .dmg" form with good
 * and bad files (nothing stored when refused), and changed upstream bytes raising the alert on the page and
 * the dashboard. A second mirror shows the page without an upstream and without a public address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFeed } from '../../server/services/pd-updates/feed.js';
import { listUpdates } from '../../server/services/pd-updates/versions.js';
import { bootstrapTestAdmin, mustSignIn, type Session } from '../helpers/api.js';
import { startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { fakeDmg, feedXml, sha256Of, startFakeUpstream, type FakeUpstream } from '../helpers/pd-upstream.js';
import { waitFor } from '../helpers/wait.js';

const PUBLIC = 'http://mirror.example.lan:8080';
const OLD = '26.3.2-57480';
const NEW = '26.3.3-57507';
/** Listed upstream, but its file is not there: the download fails. */
const BROKEN = '26.3.1-57400';
const ADDED = '26.2.0-57000';
const fileOf = (version: string) => `/desktop/v26/${version}/ParallelsDesktop-${version}.dmg`;

/** The text of an HTML fragment as a reader sees it (tags dropped, entities decoded, spaces collapsed). */
function textOf(html: string): string {
  return html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .replace(/ ([:,;)]|\.(?= |$))/g, '$1')
    .replace(/\( /g, '(')
    .trim();
}

/** One element's HTML by id (up to its closing tag of the same name, no nesting of that tag inside). */
function elementById(html: string, tag: string, id: string): string {
  const match = new RegExp(`<${tag}[^>]* id="${id.replace(/\./g, '\\.')}"[\\s\\S]*?</${tag}>`).exec(html);
  if (!match) throw new Error(`no <${tag} id="${id}"> on the page`);
  return match[0];
}

/** A copyable value as the copy button copies it (its segments joined without spaces). */
const copyValueOf = (html: string, id: string) => elementById(html, 'code', id).replace(/<[^>]*>/g, '');

const rowOf = (html: string, version: string) => elementById(html, 'tr', `v-${version}`);
const hasRow = (html: string, version: string) => html.includes(`<tr id="v-${version}">`);

/** The state badge of a version's row. */
function stateOf(html: string, version: string): string {
  const match = /<span class="badge [a-z]+" title="[^"]*">([a-z]+)<\/span>/.exec(rowOf(html, version));
  if (!match) throw new Error(`no state badge in the row of ${version}`);
  return match[1]!;
}

/** The post buttons of a row, by their text. */
function buttonsOf(html: string, version: string): string[] {
  return [...rowOf(html, version).matchAll(/<button type="submit"[^>]*>([^<]*)<\/button>/g)].map((m) => m[1]!.trim());
}

/** The top-of-page error. */
function alertOf(html: string): string | undefined {
  const match = /<p class="flash bad" role="alert">([\s\S]*?)<\/p>/.exec(html);
  return match ? textOf(match[1]!) : undefined;
}

function flashOf(html: string): string | undefined {
  const match = /<p class="flash ok" role="status">([\s\S]*?)<\/p>/.exec(html);
  return match ? textOf(match[1]!) : undefined;
}

function fieldError(html: string, id: string): string | undefined {
  const match = new RegExp(`<p class="field-error" id="${id}-error">([\\s\\S]*?)</p>`).exec(html);
  return match ? textOf(match[1]!) : undefined;
}

describe.sequential('Parallels Desktop updates page', () => {
  let upstream: FakeUpstream;
  let mirror: TestMirror;
  let session: Session;
  const oldDmg = fakeDmg(1024 * 1024 + 13, 'web-pd-26.3.2');
  const newDmg = fakeDmg(768 * 1024 + 3, 'web-pd-26.3.3');
  const addedDmg = fakeDmg(512 * 1024 + 7, 'web-pd-26.2.0');

  const page = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${mirror.url}${path}`, {
      redirect: 'manual',
      ...init,
      headers: { cookie: session.cookie, ...init.headers },
    });
    return { status: res.status, location: res.headers.get('location'), html: await res.text() };
  };
  const post = (path: string, fields: Record<string, string> = {}, csrf: string | null = session.csrfToken) =>
    page(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(csrf === null ? fields : { _csrf: csrf, ...fields }).toString(),
    });
  /** The "Add a .dmg" form as a browser sends it: the CSRF field, the text fields, then the file. */
  const add = (
    fields: Array<[string, string]>,
    file: { bytes: Buffer; name: string } | null,
    options: { csrf?: string | null; after?: Array<[string, string]> } = {},
  ) => {
    const form = new FormData();
    const csrf = options.csrf === undefined ? session.csrfToken : options.csrf;
    if (csrf !== null) form.append('_csrf', csrf);
    for (const [name, value] of fields) form.append(name, value);
    if (file) form.append('file', new Blob([file.bytes]), file.name);
    for (const [name, value] of options.after ?? []) form.append(name, value);
    return page('/admin/updates/add', { method: 'POST', body: form });
  };
  const served = async () => {
    const res = await fetch(`${mirror.url}/updates/parallels_updates.xml`);
    expect(res.status).toBe(200);
    return readFeed(await res.text(), 'served').versions;
  };
  const blobCount = async () => (await mirror.runtime.db.selectFrom('blobs').select('sha256').execute()).length;

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    mirror = await startMirror({
      publicUrl: PUBLIC,
      pdUpdatesUpstream: [upstream.feedUrl(26)],
      // Only on demand: nothing syncs behind the test's back.
      pdUpdatesIntervalMs: 0,
    });
    await bootstrapTestAdmin(mirror);
    session = await mustSignIn(mirror.url);
  });
  afterAll(async () => {
    await mirror?.close();
    await upstream?.close();
  });

  it('starts empty: nav entry, the feed URL to give the Macs, how to point them at it, the feed not checked yet', async () => {
    const { status, html } = await page('/admin/updates');
    expect(status).toBe(200);
    expect(html).toContain('<title>Parallels Desktop updates · goldmirror</title>');
    expect(html).toContain('<a href="/admin/updates" aria-current="page">Updates</a>');
    // The full URL, copyable like the image pages' link values.
    expect(copyValueOf(html, 'feed-url')).toBe(`${PUBLIC}/updates/parallels_updates.xml`);
    expect(html).toContain('data-copy="feed-url"');
    expect(html).toContain('<script src="/admin/assets/copy.js" defer=""></script>');
    const how = textOf(elementById(html, 'p', 'feed-how'));
    expect(how).toContain('“Configuring Individual Macs”');
    expect(how).toContain('updates_url in the deploy.cfg of the autodeploy package');
    const text = textOf(html);
    expect(text).toContain('No version is published yet');
    expect(text).toContain('No version yet.');
    const feeds = textOf(elementById(html, 'table', 'upstream-feeds'));
    expect(feeds).toContain(upstream.feedUrl(26));
    expect(feeds).toContain('never');
    expect(feeds).toContain('not checked yet');
    expect(textOf(elementById(html, 'p', 'upstream-schedule'))).toBe(
      'Checked only on demand (MIRROR_PD_UPDATES_INTERVAL=0): with Sync now or goldmirror updates sync. ' +
        'Auto-publish is off: new versions wait for an admin to publish them. (MIRROR_PD_UPDATES_AUTO_PUBLISH)',
    );
    expect(html).toContain('<form method="post" action="/admin/updates/sync" class="inline">');
    // Every post form carries the session's token, the streamed one before any other field.
    const forms = html.match(/<form method="post"[^>]*>/g) ?? [];
    const tokens = html.match(/<input type="hidden" name="_csrf" value="[^"]*"\/>/g) ?? [];
    expect(forms.length).toBeGreaterThanOrEqual(3);
    expect(tokens).toHaveLength(forms.length);
    expect(html).toMatch(
      /<form method="post" action="\/admin\/updates\/add" enctype="multipart\/form-data"[^>]*><input type="hidden" name="_csrf"/,
    );
    // The file is the form's last field, after version, code name, ancestors and publish.
    const addForm = elementById(html, 'section', 'add');
    const names = [...addForm.matchAll(/ name="([^"]+)"/g)].map((m) => m[1]);
    expect(names).toEqual(['_csrf', 'version', 'codename', 'ancestors', 'publish', 'file']);
  });

  it('Sync now needs the CSRF token, then reads the feed and downloads the files; a missing file shows as failed', async () => {
    upstream.setFile(fileOf(OLD), oldDmg);
    upstream.setFile(fileOf(NEW), newDmg);
    upstream.setFeed(
      26,
      feedXml([
        {
          version: NEW,
          codename: 'Sequoia',
          filePath: `${upstream.url}${fileOf(NEW)}`,
          fileSize: String(newDmg.length),
        },
        { version: OLD, filePath: `${upstream.url}${fileOf(OLD)}`, fileSize: '999' },
        { version: BROKEN, filePath: `${upstream.url}${fileOf(BROKEN)}` },
      ]),
    );
    const refused = await post('/admin/updates/sync', {}, null);
    expect(refused.status).toBe(403);
    expect((await listUpdates(mirror.runtime)).versions).toEqual([]);

    const synced = await post('/admin/updates/sync');
    expect(synced.status).toBe(303);
    expect(synced.location).toBe('/admin/updates?done=updates-synced');
    const { html } = await page(synced.location!);
    expect(flashOf(html)).toBe('Upstream read: each feed’s status and the versions below show what changed.');
    const feeds = textOf(elementById(html, 'table', 'upstream-feeds'));
    expect(feeds).toContain(' ok ');
    expect(feeds).not.toContain('never');

    expect([NEW, OLD, BROKEN].map((v) => stateOf(html, v))).toEqual(['available', 'available', 'failed']);
    const newRow = textOf(rowOf(html, NEW));
    expect(newRow).toContain('Sequoia');
    expect(newRow).toContain('upstream');
    expect(newRow).toContain(upstream.url.replace('http://', ''));
    expect(rowOf(html, NEW)).toContain(`title="${upstream.url}${fileOf(NEW)}"`);
    expect(newRow).toContain('786 kB');
    // The digest short, whole on hover and behind its Copy button.
    const sha = sha256Of(newDmg);
    expect(rowOf(html, NEW)).toContain(
      `<code class="mono" title="${sha}" aria-hidden="true">${sha.slice(0, 12)}…</code>`,
    );
    expect(textOf(elementById(html, 'code', `sha-${NEW}`))).toBe(sha);
    expect(rowOf(html, NEW)).toContain(`data-copy="sha-${NEW}"`);
    // FileSize disagreeing with the body is a note; the missing file is the failure's reason.
    expect(textOf(rowOf(html, OLD))).toContain("the feed's FileSize (999) differs from the file's length");
    expect(textOf(rowOf(html, BROKEN))).toMatch(/Download failed: .*404.*Sync now tries again\./);
    expect(buttonsOf(html, NEW)).toEqual(['Publish']);
    expect(buttonsOf(html, BROKEN)).toEqual([]);
    // The official-layout URL of the major now present.
    expect(copyValueOf(html, 'feed-url-v26')).toBe(`${PUBLIC}/updates/desktop/v26/parallels/parallels_updates.xml`);
  });

  it('publish, unpublish and roll back are CSRF-protected posts that change the row and the served feed', async () => {
    const refused = await post(`/admin/updates/${OLD}/publish`, {}, 'not-the-token');
    expect(refused.status).toBe(403);
    expect(await served()).toEqual([]);

    for (const version of [OLD, NEW]) {
      const res = await post(`/admin/updates/${version}/publish`);
      expect(res.status).toBe(303);
      expect(res.location).toBe(`/admin/updates?done=update-published#v-${version}`);
    }
    expect((await served()).map((v) => v.version)).toEqual([NEW, OLD]);
    let { html } = await page('/admin/updates?done=update-published');
    expect(flashOf(html)).toBe('Version published: it is in the feed Macs read.');
    expect([NEW, OLD].map((v) => stateOf(html, v))).toEqual(['published', 'published']);
    expect(buttonsOf(html, NEW)).toEqual(['Unpublish']);
    // A newer version is published: the older one can be rolled back to.
    expect(buttonsOf(html, OLD)).toEqual(['Unpublish', 'Roll back to this']);
    expect(textOf(html)).toContain('The feed lists 2 published versions');

    const rolled = await post(`/admin/updates/${OLD}/rollback`);
    expect(rolled.location).toBe(`/admin/updates?done=update-rolled-back#v-${OLD}`);
    expect((await served()).map((v) => v.version)).toEqual([OLD]);
    ({ html } = await page('/admin/updates?done=update-rolled-back'));
    expect(flashOf(html)).toBe('Rolled back: this version is published and every newer one of its major unpublished.');
    expect([NEW, OLD].map((v) => stateOf(html, v))).toEqual(['available', 'published']);
    expect(buttonsOf(html, NEW)).toEqual(['Publish']);
    expect(buttonsOf(html, OLD)).toEqual(['Unpublish']);

    const unpublished = await post(`/admin/updates/${OLD}/unpublish`);
    expect(unpublished.location).toBe(`/admin/updates?done=update-unpublished#v-${OLD}`);
    expect(await served()).toEqual([]);

    // A version whose file is not stored is refused on the page, with the reason.
    const failed = await post(`/admin/updates/${BROKEN}/publish`);
    expect(failed.status).toBe(409);
    expect(alertOf(failed.html)).toMatch(
      new RegExp(`^${BROKEN.replace('.', '\\.')} cannot be published: its file is not stored`),
    );
    expect(stateOf(failed.html, BROKEN)).toBe('failed');
    const unknown = await post('/admin/updates/27.0.0-1/publish');
    expect(unknown.status).toBe(404);
    expect(alertOf(unknown.html)).toBe('no Parallels Desktop version 27.0.0-1 is known here');
    expect(await served()).toEqual([]);
  });

  it('adds a .dmg through the streamed form: stored, published, listed with a generated entry, and downloadable', async () => {
    const before = await blobCount();
    const res = await add(
      [
        ['version', ADDED],
        ['codename', 'Offline build'],
        ['ancestors', 'desktop.26.1.0.56000.en_US.parallels.mac,\ndesktop.26.1.1.56100.en_US.parallels.mac'],
        ['publish', 'on'],
      ],
      { bytes: addedDmg, name: `ParallelsDesktop-${ADDED}.dmg` },
    );
    expect(res.status).toBe(303);
    expect(res.location).toBe(`/admin/updates?done=update-added-published#v-${ADDED}`);
    expect(await blobCount()).toBe(before + 1);
    const { html } = await page('/admin/updates?done=update-added-published');
    expect(flashOf(html)).toBe('The .dmg is stored and published: it is in the feed Macs read.');
    expect(stateOf(html, ADDED)).toBe('published');
    const row = textOf(rowOf(html, ADDED));
    expect(row).toContain('Offline build');
    expect(row).toContain('added here');
    expect(row).toContain(sha256Of(addedDmg));

    const feed = await served();
    expect(feed.map((v) => v.version)).toEqual([ADDED]);
    const xml = await (await fetch(`${mirror.url}/updates/parallels_updates.xml`)).text();
    expect(xml).toContain('<Ancestor>desktop.26.1.0.56000.en_US.parallels.mac</Ancestor>');
    expect(xml).toContain('<Ancestor>desktop.26.1.1.56100.en_US.parallels.mac</Ancestor>');
    expect(xml).toContain(`<FileSize>${addedDmg.length}</FileSize>`);
    const link = feed[0]!.fileUrl.replace(PUBLIC, mirror.url);
    const body = Buffer.from(await (await fetch(link)).arrayBuffer());
    expect(sha256Of(body)).toBe(sha256Of(addedDmg));
    // The finished download is counted in its row.
    await waitFor(async () => /<td>1<\/td>/.test(rowOf((await page('/admin/updates')).html, ADDED)), {
      what: 'the download counted on the updates page',
    });
  });

  it('refuses a bad add precisely on the page, keeps the typed values, and stores nothing', async () => {
    const before = await blobCount();
    const versionsBefore = (await listUpdates(mirror.runtime)).versions.length;
    const dmg = { bytes: fakeDmg(300_000, 'web-pd-bad'), name: 'ParallelsDesktop-26.1.0-1.dmg' };

    // Not a disk image: the whole file is read, checked at its end, and dropped.
    const junk = await add(
      [
        ['version', '26.1.0-1'],
        ['codename', 'Junk'],
      ],
      {
        bytes: testBytes(300_000, 'not-a-dmg'),
        name: 'installer.dmg',
      },
    );
    expect(junk.status).toBe(400);
    expect(alertOf(junk.html)).toBe(
      'installer.dmg is not a disk image (.dmg): it does not end in a UDIF trailer ("koly"); nothing was stored',
    );
    expect(junk.html).toContain('id="update-version" name="version" type="text" class="mono"');
    expect(junk.html).toMatch(/id="update-version"[^>]* value="26\.1\.0-1"/);
    expect(junk.html).toMatch(/id="update-codename"[^>]* value="Junk"/);

    const badVersion = await add([['version', '26.1']], dmg);
    expect(badVersion.status).toBe(400);
    expect(fieldError(badVersion.html, 'update-version')).toBe(
      '"26.1" is not a Parallels Desktop version; write it like 26.3.3-57507',
    );
    expect(badVersion.html).toMatch(/id="update-version"[^>]*aria-invalid="true"/);

    const noVersion = await add([['version', '  ']], dmg);
    expect(fieldError(noVersion.html, 'update-version')).toBe('enter the version, like 26.3.3-57507');

    const badAncestor = await add(
      [
        ['version', '26.1.0-1'],
        ['ancestors', 'desktop.26 <script>'],
      ],
      dmg,
    );
    expect(badAncestor.status).toBe(400);
    expect(fieldError(badAncestor.html, 'update-ancestors')).toBe(
      'ancestor "<script>" must be an update uuid like desktop.26.3.2.57480.en_US.parallels.mac',
    );
    expect(badAncestor.html).toContain('desktop.26 &lt;script&gt;</textarea>');

    const noFile = await add([['version', '26.1.0-1']], null);
    expect(noFile.status).toBe(400);
    expect(alertOf(noFile.html)).toBe('pick the .dmg to add');
    expect(fieldError(noFile.html, 'update-file')).toBe('required');

    const exists = await add([['version', ADDED]], dmg);
    expect(exists.status).toBe(409);
    expect(alertOf(exists.html)).toBe(
      `version ${ADDED} is already stored (sha256 ${sha256Of(addedDmg)}); nothing was changed`,
    );

    // A field after the file fails the ingest at its end.
    const late = await add([['version', '26.1.0-1']], dmg, { after: [['publish', 'on']] });
    expect(late.status).toBe(400);
    expect(alertOf(late.html)).toBe(
      'the form sent the field "publish" after the file; send every field before the file. Nothing was stored',
    );

    const noCsrf = await add([['version', '26.1.0-1']], dmg, { csrf: null });
    expect(noCsrf.status).toBe(403);

    expect(await blobCount()).toBe(before);
    expect((await listUpdates(mirror.runtime)).versions).toHaveLength(versionsBefore);
    expect(hasRow((await page('/admin/updates')).html, '26.1.0-1')).toBe(false);
  });

  it('changed bytes behind a stored version’s URL raise the alert on the page and the dashboard', async () => {
    const dashboardBefore = await page('/admin');
    expect(dashboardBefore.html).not.toContain('id="updates-alert"');

    const changed = fakeDmg(newDmg.length, 'web-pd-26.3.3-rebuilt');
    upstream.setFile(fileOf(NEW), changed, { etag: '"rebuilt"' });
    const res = await post('/admin/updates/sync');
    expect(res.location).toBe('/admin/updates?done=updates-synced');

    const { html } = await page('/admin/updates');
    const section = textOf(elementById(html, 'section', 'updates-alert-page'));
    expect(section).toContain(`The file behind a known upstream URL changed for ${NEW}`);
    const alert = textOf(elementById(html, 'p', `alert-${NEW}`));
    expect(alert).toContain(`the bytes behind ${upstream.url}${fileOf(NEW)} changed after this mirror stored them`);
    expect(alert).toContain(sha256Of(newDmg));
    expect(alert).toContain(sha256Of(changed));
    expect(rowOf(html, NEW)).toContain('<p class="alert flush"');
    // The stored file is still the one the row shows.
    expect(textOf(elementById(html, 'code', `sha-${NEW}`))).toBe(sha256Of(newDmg));

    const dashboard = await page('/admin');
    const box = elementById(dashboard.html, 'section', 'updates-alert-section');
    expect(box).toMatch(/^<section class="alert" role="alert"/);
    expect(textOf(box)).toContain(`${NEW}: the bytes behind ${upstream.url}${fileOf(NEW)} changed`);
    expect(box).toContain('<a href="/admin/updates">');

    // The admin takes the new bytes: the alert closes on the page and the dashboard, and the row shows them.
    expect(buttonsOf(html, NEW)).toContain('Take new file');
    expect(buttonsOf(html, NEW)).toContain('Keep stored file');
    const taken = await post(`/admin/updates/${NEW}/alert-take`);
    expect(taken.location).toBe(`/admin/updates?done=update-alert-taken#v-${NEW}`);
    const after = await page('/admin/updates?done=update-alert-taken');
    expect(flashOf(after.html)).toBe('Alert closed: the new bytes are now this version’s file.');
    expect(after.html).not.toContain('id="updates-alert-page"');
    expect(textOf(elementById(after.html, 'code', `sha-${NEW}`))).toBe(sha256Of(changed));
    expect((await page('/admin')).html).not.toContain('id="updates-alert-section"');
  });
});

describe('Parallels Desktop updates page without an upstream or a public address', () => {
  let mirror: TestMirror;
  let session: Session;

  beforeAll(async () => {
    mirror = await startMirror();
    await bootstrapTestAdmin(mirror);
    session = await mustSignIn(mirror.url);
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it('says how to set MIRROR_PD_UPDATES_UPSTREAM, offers no Sync now, and shows the missing-address note', async () => {
    const res = await fetch(`${mirror.url}/admin/updates`, { headers: { cookie: session.cookie } });
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(html).not.toContain('action="/admin/updates/sync"');
    const off = textOf(elementById(html, 'div', 'upstream-off'));
    expect(off).toContain('No upstream feed is configured');
    expect(off).toContain(
      'MIRROR_PD_UPDATES_UPSTREAM=https://update.parallels.com/desktop/v26/parallels/parallels_updates.xml',
    );
    expect(textOf(elementById(html, 'p', 'feed-url'))).toBe(
      'not ready no public address is set, so there is no URL Macs could use yet. Set the public address.',
    );
    expect(html).not.toContain('data-copy="feed-url"');

    const sync = await fetch(`${mirror.url}/admin/updates/sync`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: session.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: session.csrfToken }).toString(),
    });
    expect(sync.status).toBe(409);
    expect(alertOf(await sync.text())).toBe(
      'No upstream feed is configured: set MIRROR_PD_UPDATES_UPSTREAM to follow one.',
    );
  });
});
