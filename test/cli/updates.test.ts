/**
 * `goldmirror updates`: the real CLI in child processes. First the walk of issue 18's "Done when" on a fresh data
 * dir (sync from a fake upstream, publish, then a mirror on that dir serves a feed whose FilePath downloads the
 * upstream bytes), with rollback, a failing sync and list; then an air-gapped mirror given .dmg files by hand.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFeed, type FeedVersion } from '../../server/services/pd-updates/feed.js';
import { child, children, textOf } from '../../server/services/pd-updates/feed-xml.js';
import {
  getUpdate,
  listUpdates,
  type UpdateView,
  type UpdatesOverview,
} from '../../server/services/pd-updates/versions.js';
import { storedFiles } from '../helpers/blobs.js';
import { anyNumber, anyString, matching } from '../helpers/api.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { catalogRows } from '../helpers/database.js';
import { makeTempDir, startMirror, TEST_FETCH_ALLOW, type TestMirror } from '../helpers/env.js';
import { fakeDmg, feedXml, sha256Of, startFakeUpstream, type FakeUpstream } from '../helpers/pd-upstream.js';

/** The address Macs use; the tests fetch the mirror at its loopback URL instead. */
const PUBLIC = 'http://mirror.example.lan:8080';
const FEED = `${PUBLIC}/updates/parallels_updates.xml`;

/** The CLI on `env`, with helpers that check its exit code, stdout and stderr. */
function cliOn(env: () => Record<string, string>) {
  const cli = (...args: string[]): Promise<CliResult> => runCli(args, env());
  const ok = async (...args: string[]): Promise<string> => {
    const res = await cli(...args);
    expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
    return res.stdout;
  };
  const json = async <T>(...args: string[]): Promise<T> => JSON.parse(await ok(...args, '--json')) as T;
  /** A failure: the exit code, one line on stderr (plus the usage after a usage error), nothing on stdout. */
  const fails = async (code: number, message: RegExp, ...args: string[]): Promise<void> => {
    const res = await cli(...args);
    expect({ args, code: res.code, stdout: res.stdout }).toEqual({ args, code, stdout: '' });
    const [first, ...rest] = res.stderr.trimEnd().split('\n');
    expect(first).toMatch(/^goldmirror: error: /);
    expect(first).toMatch(message);
    if (code === 2 && rest.length) expect(rest[0]).toMatch(/^usage: goldmirror updates /);
    else expect(rest).toEqual([]);
  };
  return { cli, ok, json, fails };
}

/** `text` matched literally inside a RegExp. */
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The served feed of a running mirror, read back as versions. */
async function servedVersions(mirror: TestMirror): Promise<FeedVersion[]> {
  const res = await fetch(`${mirror.url}/updates/parallels_updates.xml`);
  expect(res.status).toBe(200);
  return readFeed(await res.text(), 'the served feed').versions;
}

/** The bytes behind a served FilePath, fetched from the mirror's loopback address. */
async function download(mirror: TestMirror, link: string): Promise<Buffer> {
  expect(link.startsWith(`${PUBLIC}/d/`)).toBe(true);
  const res = await fetch(link.replace(PUBLIC, mirror.url));
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

describe('goldmirror updates, following a fake upstream', () => {
  let upstream: FakeUpstream;
  let dir: string;
  let mirror: TestMirror | undefined;
  let feeds: string;
  let autoPublish = 'false';
  const older = fakeDmg(300_000, 'cli-pd-26.3.2');
  const newer = fakeDmg(400_000 + 3, 'cli-pd-26.3.3');
  const newest = fakeDmg(150_000 + 1, 'cli-pd-26.3.5');
  const { cli, ok, json, fails } = cliOn(() => ({
    MIRROR_DATA_DIR: dir,
    MIRROR_PUBLIC_URL: PUBLIC,
    MIRROR_MIN_FREE_BYTES: '0',
    MIRROR_FETCH_ALLOW: TEST_FETCH_ALLOW,
    MIRROR_PD_UPDATES_UPSTREAM: feeds,
    MIRROR_PD_UPDATES_AUTO_PUBLISH: autoPublish,
  }));
  let olderUrl: string;
  let newerUrl: string;

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    dir = await makeTempDir();
    feeds = upstream.feedUrl(26);
    olderUrl = upstream.setFile('/desktop/v26/26.3.2-57480/ParallelsDesktop-26.3.2-57480.dmg', older);
    newerUrl = upstream.setFile('/desktop/v26/26.3.3-57507/ParallelsDesktop-26.3.3-57507.dmg', newer);
    upstream.setFeed(
      26,
      feedXml([
        {
          version: '26.3.3-57507',
          codename: 'Tahoe',
          filePath: ` ${newerUrl} `,
          fileSize: String(newer.length),
          ancestors: ['desktop.26.3.2.57480.en_US.parallels.mac'],
        },
        // A FileSize in another unit than bytes: kept as written, with a note.
        { version: '26.3.2-57480', codename: 'Tahoe', filePath: olderUrl, fileSize: '293' },
      ]),
    );
  });
  afterAll(async () => {
    await mirror?.close();
    await upstream?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('sync then publish on a fresh data dir: the served FilePath downloads the bytes upstream serves', async () => {
    expect(await ok('updates', 'sync')).toBe(
      [
        `feed ${feeds}: ok, lists 2 version(s); new: 26.3.3-57507, 26.3.2-57480`,
        'fetched: 26.3.3-57507, 26.3.2-57480',
        'publish with: goldmirror updates publish 26.3.3-57507',
        '',
      ].join('\n'),
    );
    expect(await ok('updates', 'publish', '26.3.3-57507')).toBe('26.3.3-57507: published (in the served feed)\n');

    mirror = await startMirror({ publicUrl: PUBLIC }, { dir });
    const served = await servedVersions(mirror);
    expect(served.map((v) => v.version)).toEqual(['26.3.3-57507']);
    expect(served[0]!.fileUrl).toBe(`${PUBLIC}/d/${sha256Of(newer)}/ParallelsDesktop-26.3.3-57507.dmg`);
    expect(sha256Of(await download(mirror, served[0]!.fileUrl))).toBe(sha256Of(newer));
    expect(served[0]!.fileSize).toBe(String(newer.length));
  });

  it('publish --json, then rollback: the newer version leaves the served feed', async () => {
    const published = await json<UpdateView>('updates', 'publish', '26.3.2-57480');
    expect(published).toMatchObject({
      version: '26.3.2-57480',
      state: 'stored',
      published: true,
      sha256: sha256Of(older),
      link: `${PUBLIC}/d/${sha256Of(older)}/ParallelsDesktop-26.3.2-57480.dmg`,
    });
    expect((await servedVersions(mirror!)).map((v) => v.version)).toEqual(['26.3.3-57507', '26.3.2-57480']);

    const rolled = await json<{ version: UpdateView; unpublished: string[] }>('updates', 'rollback', '26.3.2-57480');
    expect(rolled.unpublished).toEqual(['26.3.3-57507']);
    expect(rolled.version).toMatchObject({ version: '26.3.2-57480', published: true });
    const served = await servedVersions(mirror!);
    expect(served.map((v) => v.version)).toEqual(['26.3.2-57480']);
    // The upstream FileSize stays as written, whatever its unit.
    expect(served[0]!.fileSize).toBe('293');
    expect(sha256Of(await download(mirror!, served[0]!.fileUrl))).toBe(sha256Of(older));
  });

  it('a sync with a feed down and a file missing exits 1; what was served stays, a new version is auto-published', async () => {
    upstream.setFeed(25, 500);
    const newestUrl = upstream.setFile('/desktop/v26/26.3.5-57700/ParallelsDesktop-26.3.5-57700.dmg', newest);
    upstream.setFeed(
      26,
      feedXml([
        { version: '26.3.5-57700', filePath: newestUrl, fileSize: String(newest.length) },
        { version: '26.3.4-57600', filePath: `${upstream.url}/desktop/v26/26.3.4-57600/gone.dmg`, fileSize: '1' },
        { version: '26.3.3-57507', codename: 'Tahoe', filePath: ` ${newerUrl} `, fileSize: String(newer.length) },
        { version: '26.3.2-57480', codename: 'Tahoe', filePath: olderUrl, fileSize: '293' },
      ]),
    );
    feeds = `${upstream.feedUrl(26)},${upstream.feedUrl(25)}`;
    autoPublish = 'true';
    const res = await cli('updates', 'sync');
    expect({ code: res.code, stderr: res.stderr }).toEqual({
      code: 1,
      stderr: 'goldmirror: 1 feed(s) and 1 file(s) failed; the next sync tries again\n',
    });
    const lines = res.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`feed ${upstream.feedUrl(26)}: ok, lists 4 version(s); new: 26.3.5-57700, 26.3.4-57600`);
    expect(lines[1]).toMatch(
      new RegExp(`^feed ${escape(upstream.feedUrl(25))}: error: .*HTTP 500.*\\(its versions stay as they were\\)$`),
    );
    expect(lines[2]).toBe('fetched: 26.3.5-57700');
    expect(lines[3]).toMatch(/^failed: 26\.3\.4-57600: .*404/);
    expect(lines[4]).toBe('published automatically: 26.3.5-57700');
    expect(lines).toHaveLength(5);
    const served = await servedVersions(mirror!);
    expect(served.map((v) => v.version)).toEqual(['26.3.5-57700', '26.3.2-57480']);
    expect(sha256Of(await download(mirror!, served[0]!.fileUrl))).toBe(sha256Of(newest));
  });

  it('list: versions with state, size, digest, downloads and notes; the upstream status; the feed URL', async () => {
    const text = await ok('updates', 'list');
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^VERSION\s+CODENAME\s+STATE\s+SIZE\s+SHA256\s+DOWNLOADS\s+NOTES$/);
    expect(lines[1]).toMatch(
      new RegExp(`^26\\.3\\.5-57700\\s+-\\s+published\\s+150 kB\\s+${sha256Of(newest)}\\s+\\d+\\s+-$`),
    );
    expect(lines[2]).toMatch(/^26\.3\.4-57600\s+-\s+failed\s+-\s+-\s+0\s+-$/);
    expect(lines[3]).toMatch(
      new RegExp(`^26\\.3\\.3-57507\\s+Tahoe\\s+available\\s+400 kB\\s+${sha256Of(newer)}\\s+\\d+\\s+-$`),
    );
    expect(lines[4]).toMatch(
      new RegExp(`^26\\.3\\.2-57480\\s+Tahoe\\s+published\\s+300 kB\\s+${sha256Of(older)}\\s+\\d+\\s+1 note\\(s\\)$`),
    );
    expect(lines.slice(5)).toEqual([
      expect.stringMatching(/^failed 26\.3\.4-57600: .*404/),
      "note 26.3.2-57480: the feed's FileSize (293) differs from the file's length (300000 bytes); " +
        'it is served as upstream wrote it',
      expect.stringMatching(new RegExp(`^upstream ${escape(upstream.feedUrl(26))}: ok, checked 20`)),
      expect.stringMatching(
        new RegExp(`^upstream ${escape(upstream.feedUrl(25))}: error at 20.*HTTP 500.*; last good read never$`),
      ),
      `feed URL for the Macs: ${FEED}`,
      `  only version 26: ${PUBLIC}/updates/desktop/v26/parallels/parallels_updates.xml`,
      'point the Macs at it as the administrator\'s guide describes ("Configuring Individual Macs"), ' +
        "or with updates_url in the autodeploy package's deploy.cfg",
    ]);

    const overview = await json<UpdatesOverview>('updates', 'list');
    expect(overview.feedUrl).toBe(FEED);
    // By URL, as the catalog lists them.
    expect(overview.upstream).toEqual([
      { url: upstream.feedUrl(25), checkedAt: anyString(), okAt: null, error: anyString(), skipped: [] },
      { url: upstream.feedUrl(26), checkedAt: anyString(), okAt: anyString(), error: null, skipped: [] },
    ]);
    expect(overview.versions.map((v) => [v.version, v.state, v.published])).toEqual([
      ['26.3.5-57700', 'stored', true],
      ['26.3.4-57600', 'failed', false],
      ['26.3.3-57507', 'stored', false],
      ['26.3.2-57480', 'stored', true],
    ]);
    expect(overview.versions[2]).toEqual({
      version: '26.3.3-57507',
      major: 26,
      codename: 'Tahoe',
      origin: 'upstream',
      feedUrl: upstream.feedUrl(26),
      upstreamUrl: newerUrl,
      fileSize: String(newer.length),
      state: 'stored',
      fetchError: null,
      sha256: sha256Of(newer),
      size: newer.length,
      blobState: 'ok',
      fetchedAt: anyString(),
      published: false,
      publishedAt: anyString(),
      unpublishedAt: anyString(),
      listed: true,
      notes: [],
      alert: null,
      alertAt: null,
      alertSha256: null,
      downloads: anyNumber(),
      link: `${PUBLIC}/d/${sha256Of(newer)}/ParallelsDesktop-26.3.3-57507.dmg`,
      firstSeenAt: anyString(),
    });
    expect(overview.versions[1]).toMatchObject({ sha256: null, link: null, fetchError: matching(/404/) });
  });

  it('unpublish takes a version out of the served feed; an unknown version is NOT_FOUND (exit 1), a malformed one exit 2', async () => {
    expect(await ok('updates', 'unpublish', '26.3.2-57480')).toBe(
      '26.3.2-57480: available, not published (publish with: goldmirror updates publish 26.3.2-57480)\n' +
        'its file stays stored until garbage collection may remove it\n',
    );
    expect((await servedVersions(mirror!)).map((v) => v.version)).toEqual(['26.3.5-57700']);
    await fails(1, /no Parallels Desktop version 26\.9\.9-1 is known here/, 'updates', 'publish', '26.9.9-1');
    await fails(
      2,
      /"latest" is not a Parallels Desktop version; write it like 26\.3\.3-57507/,
      'updates',
      'publish',
      'latest',
    );
    // alert: one of --keep or --take, and only when an alert is open.
    await fails(
      2,
      /updates alert needs one of --keep \(the stored file\) or --take/,
      'updates',
      'alert',
      '26.3.5-57700',
    );
    await fails(1, /26\.3\.5-57700 has no open alert/, 'updates', 'alert', '26.3.5-57700', '--keep');
  });
});

describe('goldmirror updates on an air-gapped mirror (no upstream)', () => {
  let mirror: TestMirror;
  let files: string;
  const image = fakeDmg(250_000 + 11, 'cli-pd-manual-26.3.3');
  const { ok, json, fails } = cliOn(() => ({
    MIRROR_DATA_DIR: mirror.dir,
    MIRROR_PUBLIC_URL: PUBLIC,
    MIRROR_MIN_FREE_BYTES: '0',
  }));
  const ancestors = ['desktop.26.3.2.57480.en_US.parallels.mac', 'desktop.26.3.1.57400.en_US.parallels.mac'];

  beforeAll(async () => {
    mirror = await startMirror({ publicUrl: PUBLIC });
    files = await makeTempDir('goldmirror-dmg-');
  });
  afterAll(async () => {
    await mirror?.close();
    if (files) await fs.rm(files, { recursive: true, force: true });
  });

  it('sync is refused and names MIRROR_PD_UPDATES_UPSTREAM', async () => {
    await fails(2, /updates sync needs an upstream feed: set MIRROR_PD_UPDATES_UPSTREAM/, 'updates', 'sync');
  });

  it('add with --codename, --ancestor and --publish: the served entry has every element', async () => {
    const file = path.join(files, 'ParallelsDesktop-26.3.3-57507.dmg');
    await fs.writeFile(file, image);
    const added = await json<UpdateView>(
      'updates',
      'add',
      file,
      '--version',
      '26.3.3-57507',
      '--codename',
      'Tahoe',
      '--ancestor',
      ancestors[0]!,
      '--ancestor',
      ancestors[1]!,
      '--publish',
    );
    const link = `${PUBLIC}/d/${sha256Of(image)}/ParallelsDesktop-26.3.3-57507.dmg`;
    expect(added).toMatchObject({
      version: '26.3.3-57507',
      codename: 'Tahoe',
      origin: 'manual',
      upstreamUrl: null,
      fileSize: String(image.length),
      state: 'stored',
      sha256: sha256Of(image),
      size: image.length,
      published: true,
      link,
    });

    const [served, ...others] = await servedVersions(mirror);
    expect(others).toEqual([]);
    expect(served!.version).toBe('26.3.3-57507');
    expect(served!.fileUrl).toBe(link);
    const version = served!.element;
    expect(
      children(version)
        .map((e) => [e.name, textOf(e)])
        .slice(0, 5),
    ).toEqual([
      ['Major', '26'],
      ['Minor', '3'],
      ['SubMinor', '3'],
      ['SubSubMinor', '57507'],
      ['StringRepresentation', 'Tahoe'],
    ]);
    const update = child(version, 'Update')!;
    expect(update.attributes).toEqual([['uuid', 'desktop.26.3.3.57507.en_US.parallels.mac']]);
    expect(children(update).map((e) => e.name)).toEqual([
      'UpdateType',
      'UpdateName',
      'UpdateDescription',
      'FilePath',
      'FileSize',
      'Status',
      'DateTime',
      'Chargeable',
      'LocaleName',
      'DistributorName',
      'OsType',
      'Ancestry',
    ]);
    const text = (name: string): string => textOf(child(update, name));
    expect(text('UpdateType')).toBe('0');
    expect(text('UpdateName')).toBe('Parallels Desktop 26.3.3 (57507)');
    expect(text('UpdateDescription')).toBe('en_US#Parallels Desktop 26.3.3 (57507)');
    expect(text('FilePath')).toBe(link);
    // Generated entries give FileSize in bytes.
    expect(text('FileSize')).toBe(String(image.length));
    expect(text('Status')).toMatch(/^\d$/);
    expect(text('DateTime')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(text('Chargeable')).toBe('0');
    expect(text('LocaleName')).toBe('en_US');
    expect(text('DistributorName')).toBe('Parallels');
    expect(text('OsType')).toBe('mac');
    expect(children(child(update, 'Ancestry')!, 'Ancestor').map((a) => textOf(a))).toEqual(ancestors);
    expect(sha256Of(await download(mirror, link))).toBe(sha256Of(image));
  });

  it('add without --publish prints the version and its .dmg link; the served feed does not list it', async () => {
    const second = fakeDmg(120_000, 'cli-pd-manual-26.3.2');
    const file = path.join(files, 'pd-26.3.2.DMG');
    await fs.writeFile(file, second);
    const link = `${PUBLIC}/d/${sha256Of(second)}/ParallelsDesktop-26.3.2-57480.dmg`;
    expect(await ok('updates', 'add', file, '--version', '26.3.2-57480')).toBe(
      [
        `stored: ${file} as Parallels Desktop 26.3.2-57480`,
        `sha256: ${sha256Of(second)}`,
        'size:   120000 bytes (120 kB)',
        'state:  available, not published (publish with: goldmirror updates publish 26.3.2-57480)',
        `url:    ${link}`,
        '',
      ].join('\n'),
    );
    expect((await servedVersions(mirror)).map((v) => v.version)).toEqual(['26.3.3-57507']);
    expect(await getUpdate(mirror.runtime, '26.3.2-57480')).toMatchObject({ origin: 'manual', published: false });
  });

  /** 70 kB that end in 512 bytes not starting with "koly": not a disk image, whatever its name. */
  const notImage = (): Buffer => {
    const bytes = fakeDmg(70_000, 'cli-pd-junk');
    bytes.write('junk', bytes.length - 512, 'latin1');
    return bytes;
  };

  it('add refuses a name not ending in .dmg, and a file without the UDIF trailer: nothing is stored', async () => {
    const before = await storedState(mirror);
    const junk = path.join(files, 'ParallelsDesktop-26.3.4-57600.dmg');
    await fs.writeFile(junk, notImage());
    await fs.writeFile(path.join(files, 'installer.pkg'), notImage());

    await fails(
      2,
      /installer\.pkg is not a \.dmg/,
      'updates',
      'add',
      path.join(files, 'installer.pkg'),
      '--version',
      '26.3.4-57600',
    );
    await fails(
      1,
      new RegExp(`${escape(junk)} is not a disk image \\(\\.dmg\\): .*"koly".*nothing was stored`),
      'updates',
      'add',
      junk,
      '--version',
      '26.3.4-57600',
    );
    expect(await storedState(mirror)).toEqual(before);
  });

  it('add refuses a stored version, an unreadable file, a missing --version; other subcommands refuse its options', async () => {
    const before = await storedState(mirror);
    const junk = path.join(files, 'ParallelsDesktop-26.3.4-57600.dmg');
    await fs.writeFile(junk, notImage());
    await fails(
      1,
      new RegExp(`version 26\\.3\\.3-57507 is already stored \\(sha256 ${sha256Of(image)}\\); nothing was changed`),
      'updates',
      'add',
      junk,
      '--version',
      '26.3.3-57507',
    );
    await fails(
      1,
      /cannot read .*missing\.dmg: no such file/,
      'updates',
      'add',
      path.join(files, 'missing.dmg'),
      '--version',
      '26.3.4-57600',
    );
    await fails(2, /updates add needs --version VERSION/, 'updates', 'add', junk);
    await fails(2, /--codename does not go with updates list/, 'updates', 'list', '--codename', 'Tahoe');
    expect(await storedState(mirror)).toEqual(before);
  });
});

/** What a refused add must leave as it was: the blob rows, the stored files (and no leftover upload), the versions. */
async function storedState(mirror: TestMirror): Promise<unknown> {
  const rows = await catalogRows<{ sha256: string; kind: string }>(
    mirror.dir,
    'select sha256, kind from blobs order by sha256',
  );
  const versions = (await listUpdates(mirror.runtime)).versions.map((v) => [v.version, v.state, v.sha256]);
  return { rows, blobs: await storedFiles(mirror, 'blobs'), tmp: await storedFiles(mirror, 'tmp'), versions };
}
