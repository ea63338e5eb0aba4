/**
 * Parallels Desktop versions travelling between mirrors: a bundle carries the published versions (or every stored
 * one, or none) with their feed entries and .dmg files, and the importing mirror serves the same feed with its own
 * links; a version stored with other bytes is a conflict; hostile manifests are refused; and a branch mirror
 * syncing from a primary publishes exactly what the primary publishes.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle } from '../../server/bundles/export.js';
import { importBundle } from '../../server/bundles/import.js';
import type { Manifest } from '../../server/bundles/manifest.js';
import { syncFrom } from '../../server/bundles/sync.js';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { buildManifest, type ExportOptions } from '../../server/services/bundle-manifest.js';
import { listHistory } from '../../server/services/history.js';
import { createImage } from '../../server/services/images.js';
import { readFeed } from '../../server/services/pd-updates/feed.js';
import { syncUpdates } from '../../server/services/pd-updates/sync.js';
import {
  addUpdateFile,
  getUpdate,
  listUpdates,
  publishUpdate,
  rollbackUpdate,
  servedFeed,
  unpublishUpdate,
  type UpdateView,
} from '../../server/services/pd-updates/versions.js';
import { storedDigests } from '../helpers/blobs.js';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { fakeDmg, feedXml, sha256Of, startFakeUpstream, type FakeUpstream } from '../helpers/pd-upstream.js';
import {
  blobEntry,
  buildTar,
  cliEnv,
  collect,
  manifestEntry,
  openLocal,
  snapshot,
  type HasRuntime,
} from '../bundles/helpers.js';

const PUBLIC_A = 'http://hq.example.lan:8080';
const PUBLIC_B = 'http://branch.example.lan:8080';
const V1 = '26.3.1-57400' as const;
const V2 = '26.3.2-57480' as const;
const V3 = '26.3.3-57507' as const;
const MANUAL = '26.2.0-57000' as const;
const uuid = (v: string) => `desktop.${v.replace('-', '.')}.en_US.parallels.mac`;

const files = {
  [V1]: fakeDmg(700_000 + 1, 'carry-v1'),
  [V2]: fakeDmg(900_000 + 3, 'carry-v2'),
  [V3]: fakeDmg(1_100_000 + 7, 'carry-v3'),
  [MANUAL]: fakeDmg(500_000 + 9, 'carry-manual'),
};
const shaOf = (v: keyof typeof files) => sha256Of(files[v]);

async function feedOf(m: TestMirror, path = '/updates/parallels_updates.xml'): Promise<string> {
  const res = await fetch(`${m.url}${path}`);
  expect(res.status).toBe(200);
  return res.text();
}

/** What a version is, apart from this mirror's own times, link and download count. */
function essence(v: UpdateView) {
  return {
    version: v.version,
    codename: v.codename,
    origin: v.origin,
    feedUrl: v.feedUrl,
    upstreamUrl: v.upstreamUrl,
    fileSize: v.fileSize,
    state: v.state,
    sha256: v.sha256,
    size: v.size,
    published: v.published,
    notes: v.notes,
  };
}

/** Everything an import may touch, with the versions table. */
async function fullSnapshot(m: HasRuntime): Promise<unknown> {
  return {
    base: await snapshot(m),
    updates: await m.runtime.db.selectFrom('pd_updates').selectAll().orderBy('version').execute(),
  };
}

const importInto = (m: HasRuntime, archive: Readable, options: { dryRun?: boolean } = {}) =>
  importBundle(m.runtime.ingestDeps, archive, { dryRun: options.dryRun ?? false, actor: cliActor });

describe('Parallels Desktop versions in bundles and sync', () => {
  let upstream: FakeUpstream;
  let A: TestMirror;
  let packageSha: string;

  const exportOf = (options: Partial<ExportOptions> = {}) =>
    buildManifest(A.runtime, { includeBlobs: true, ...options }).then((manifest) => ({
      manifest,
      archive: () => exportBundle(A.runtime.store, manifest),
    }));

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    A = await startMirror({ publicUrl: PUBLIC_A });
    const urls = Object.fromEntries(
      [V1, V2, V3].map((v) => [v, upstream.setFile(`/desktop/v26/${v}/ParallelsDesktop-${v}.dmg`, files[v])]),
    );
    upstream.setFeed(
      26,
      feedXml([
        {
          version: V3,
          codename: 'Mondrian',
          filePath: ` ${urls[V3]} `,
          fileSize: String(files[V3].length),
          ancestors: [uuid(V2), uuid(V1)],
          descriptions: ['de_DE#Stabilität &amp; Leistung', 'fr_FR#Stabilité'],
          dateTime: '2026-11-20 08:00:00',
        },
        // A FileSize that is not the length: it travels as written, with the note it earned.
        { version: V2, filePath: urls[V2]!, fileSize: '123', ancestors: [uuid(V1)] },
        { version: V1, filePath: urls[V1]!, fileSize: String(files[V1].length) },
      ]),
    );
    const report = await syncUpdates(A.runtime.ingestDeps, {
      feeds: [upstream.feedUrl(26)],
      autoPublish: false,
      actor: cliActor,
      retryDelayMs: 10,
    });
    expect(report.fetched.sort()).toEqual([V1, V2, V3].sort());
    await publishUpdate(A.runtime, cliActor, V3);
    await publishUpdate(A.runtime, cliActor, V2);
    await addUpdateFile({ ...A.runtime.ingestDeps, config: A.runtime.config }, cliActor, {
      source: [files[MANUAL]],
      what: 'manual.dmg',
      version: MANUAL,
      codename: 'Hand-carried',
      ancestors: [uuid('26.1.0-56000')],
      publish: true,
    });
    packageSha = await putBlob(A, testBytes(40_000, 'carry-package'), 'Win11.pvmp');
    await createImage(A.runtime, cliActor, { name: 'Win 11', arm64: { enabled: true, sha256: packageSha } }, A.url);
  });
  afterAll(async () => {
    await A?.close();
    await upstream?.close();
  });

  it('an export carries the published versions and their .dmg files; the importer serves the same feed with its own links', async () => {
    const { manifest, archive } = await exportOf();
    expect(manifest.version).toBe(2);
    expect(manifest.updates!.map((u) => [u.version, u.origin, u.published])).toEqual([
      [V3, 'upstream', true],
      [V2, 'upstream', true],
      [MANUAL, 'manual', true],
    ]);
    expect(manifest.blobs.map((b) => [b.sha256, b.kind, b.name])).toEqual([
      [packageSha, 'package', 'Win11.pvmp'],
      [shaOf(V3), 'update', `ParallelsDesktop-${V3}.dmg`],
      [shaOf(V2), 'update', `ParallelsDesktop-${V2}.dmg`],
      [shaOf(MANUAL), 'update', `ParallelsDesktop-${MANUAL}.dmg`],
    ]);
    const B = await startMirror({ publicUrl: PUBLIC_B });
    try {
      const expected = {
        created: [V3, V2, MANUAL],
        updated: [],
        unchanged: [],
        published: [V3, V2, MANUAL],
        unpublished: [],
      };
      const dry = await importInto(B, archive(), { dryRun: true });
      expect(dry.updates).toEqual(expected);
      expect((await listUpdates(B.runtime)).versions).toEqual([]);

      const report = await importInto(B, archive());
      expect(report.updates).toEqual(expected);
      expect(report.images.created).toEqual(['Win 11']);
      expect(report.blobs.stored.sort()).toEqual([packageSha, shaOf(V3), shaOf(V2), shaOf(MANUAL)].sort());

      // The same feed, byte for byte, but for the mirror's own address in every FilePath.
      const feedA = await feedOf(A);
      expect(await feedOf(B)).toBe(feedA.replaceAll(PUBLIC_A, PUBLIC_B));
      const major = '/updates/desktop/v26/parallels/parallels_updates.xml';
      expect(await feedOf(B, major)).toBe((await feedOf(A, major)).replaceAll(PUBLIC_A, PUBLIC_B));
      const served = readFeed(await feedOf(B), 'served');
      expect(served.versions.map((v) => v.version)).toEqual([V3, V2, MANUAL]);
      expect(feedA).toContain('de_DE#Stabilität &amp; Leistung');
      expect(feedA).toContain(`<Ancestor>${uuid(V2)}</Ancestor>`);

      // Every field of every version came along (the generated entry of the manual one too).
      const onA = (await listUpdates(A.runtime)).versions.filter((v) => v.published).map(essence);
      expect((await listUpdates(B.runtime)).versions.map(essence)).toEqual(onA);
      expect((await getUpdate(B.runtime, V2)).notes).toEqual([expect.stringMatching(/FileSize \(123\) differs/)]);

      // Each FilePath downloads the same bytes, from the importing mirror, as a .dmg only.
      for (const v of served.versions) {
        expect(v.fileUrl.startsWith(`${PUBLIC_B}/d/`)).toBe(true);
        const res = await fetch(v.fileUrl.replace(PUBLIC_B, B.url));
        expect(res.status).toBe(200);
        expect(sha256Of(Buffer.from(await res.arrayBuffer()))).toBe(shaOf(v.version as keyof typeof files));
      }
      expect((await fetch(`${B.url}/d/${shaOf(V3)}/ParallelsDesktop-${V3}.pvmp`)).status).toBe(404);
      const kinds = await B.runtime.db.selectFrom('blobs').select(['sha256', 'kind', 'name']).execute();
      expect(kinds.find((b) => b.sha256 === shaOf(V3))).toMatchObject({
        kind: 'update',
        name: `ParallelsDesktop-${V3}.dmg`,
      });
      expect(kinds.find((b) => b.sha256 === packageSha)?.kind).toBe('package');

      // Importing the same bundle again changes nothing.
      const before = await fullSnapshot(B);
      const again = await importInto(B, archive());
      expect(again.updates).toEqual({ ...expected, created: [], unchanged: [V3, V2, MANUAL], published: [] });
      expect(await fullSnapshot(B)).toEqual(before);
    } finally {
      await B.close();
    }
  });

  it('--updates all carries every stored version with its published state; none (and no version at all) writes a version 1 bundle', async () => {
    const all = await exportOf({ updates: 'all' });
    expect(all.manifest.updates!.map((u) => [u.version, u.published])).toEqual([
      [V3, true],
      [V2, true],
      [V1, false],
      [MANUAL, true],
    ]);
    const none = await exportOf({ updates: 'none' });
    expect(none.manifest.version).toBe(1);
    expect(none.manifest).not.toHaveProperty('updates');
    expect(none.manifest.blobs).toEqual([{ sha256: packageSha, size: 40_000, name: 'Win11.pvmp' }]);
    const tarText = (await collect(none.archive())).subarray(512, 512 + 200).toString('utf8');
    expect(tarText).toMatch(/"version": 1,/);

    const C = await startMirror({ publicUrl: PUBLIC_B });
    try {
      const report = await importInto(C, all.archive());
      expect(report.updates).toMatchObject({ created: [V3, V2, V1, MANUAL], published: [V3, V2, MANUAL] });
      expect(await getUpdate(C.runtime, V1)).toMatchObject({ state: 'stored', published: false, sha256: shaOf(V1) });
      expect(readFeed(await feedOf(C), 's').versions.map((v) => v.version)).toEqual([V3, V2, MANUAL]);
      // What the bundle carries wins: published there, published here; available there, taken out here.
      await publishUpdate(C.runtime, cliActor, V1);
      await unpublishUpdate(C.runtime, cliActor, V2);
      const back = await importInto(C, all.archive());
      expect(back.updates).toMatchObject({ published: [V2], unpublished: [V1] });
      expect(readFeed(await feedOf(C), 's').versions.map((v) => v.version)).toEqual([V3, V2, MANUAL]);
      // A version 1 bundle (no versions) leaves the versions alone.
      const old = await importInto(C, none.archive());
      expect(old.updates).toEqual({ created: [], updated: [], unchanged: [], published: [], unpublished: [] });
      expect((await listUpdates(C.runtime)).versions.filter((v) => v.published)).toHaveLength(3);
    } finally {
      await C.close();
    }
  });

  it('a version stored here with other bytes, or an update file an image here uses, is a BUNDLE_CONFLICT and nothing changes', async () => {
    const { archive } = await exportOf();
    const D = await startMirror({ publicUrl: PUBLIC_B });
    try {
      const other = fakeDmg(300_000, 'carry-other-v3');
      await addUpdateFile({ ...D.runtime.ingestDeps, config: D.runtime.config }, cliActor, {
        source: [other],
        what: 'other.dmg',
        version: V3,
        publish: true,
      });
      // The manual version's bytes, stored here as the package of an image.
      const asPackage = await putBlob(D, files[MANUAL], 'Mistake.pvmp');
      await createImage(D.runtime, cliActor, { name: 'Mistake', x86_64: { enabled: true, sha256: asPackage } }, D.url);
      const before = await fullSnapshot(D);
      for (const dryRun of [true, false]) {
        const err = (await importInto(D, archive(), { dryRun }).catch((e: unknown) => e)) as {
          code: string;
          message: string;
        };
        expect(err.code).toBe('BUNDLE_CONFLICT');
        expect(err.message).toContain(
          `Parallels Desktop ${V3} is stored here with sha256 ${sha256Of(other)}; the bundle carries ${shaOf(V3)}`,
        );
        expect(err.message).toContain(`update file ${shaOf(MANUAL)} is the package of a golden image here`);
        expect(await fullSnapshot(D)).toEqual(before);
      }
    } finally {
      await D.close();
    }
  });

  it('CLI: export --updates all, import-bundle says which versions it adds and publishes; --updates takes only its three values', async () => {
    const work = await makeTempDir();
    try {
      const out = path.join(work, 'updates.tar');
      const exp = await runCli(['export', out, '--updates', 'all'], cliEnv(A.dir));
      expect(exp.stderr).toContain('exported 1 image(s), 0 group(s), 4 Parallels Desktop version(s), 5 file(s)');
      expect(exp.code).toBe(0);
      const target = path.join(work, 'target');
      const imp = await runCli(['import-bundle', out], cliEnv(target));
      expect(imp.code).toBe(0);
      expect(imp.stdout).toContain(`add Parallels Desktop versions: ${V3}, ${V2}, ${V1}, ${MANUAL}\n`);
      expect(imp.stdout).toContain(`publish: ${V3}, ${V2}, ${MANUAL}\n`);
      const again = await runCli(['import-bundle', out, '--json'], cliEnv(target));
      expect((JSON.parse(again.stdout) as { updates: unknown }).updates).toEqual({
        created: [],
        updated: [],
        unchanged: [V3, V2, V1, MANUAL],
        published: [],
        unpublished: [],
      });
      const bad = await runCli(['export', out, '--updates', 'latest'], cliEnv(A.dir));
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--updates takes published, all, none, not "latest"');
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });

  describe('hostile manifests', () => {
    let T: Awaited<ReturnType<typeof openLocal>>;
    let base: Manifest;
    const bytesOf = new Map<string, Buffer>();

    beforeAll(async () => {
      base = (await exportOf()).manifest;
      for (const v of Object.keys(files) as Array<keyof typeof files>) bytesOf.set(shaOf(v), files[v]);
      bytesOf.set(packageSha, testBytes(40_000, 'carry-package'));
      T = await openLocal();
    });
    afterAll(async () => {
      await T?.close();
    });

    /** The manifest as JSON that a test edits by hand (hostile values are set through `set`). */
    interface El {
      name: string;
      attributes: unknown[];
      children: Array<El | string>;
    }
    interface Entry {
      version: string;
      element: El;
      product: { elements: El[] };
      fileUrl: string | null;
      notes: string[];
      size: number;
    }
    interface Blob {
      sha256: string;
      size: number;
      name: string;
      kind?: string;
    }
    interface Json {
      version: number;
      blobs: Blob[];
      updates: Entry[];
      images: Array<{ x86_64: unknown }>;
    }
    const set = (target: object, key: string, value: unknown): void => {
      (target as Record<string, unknown>)[key] = value;
    };
    const tarOf = (manifest: Json) =>
      buildTar([
        manifestEntry(manifest),
        ...manifest.blobs.filter((b) => bytesOf.has(b.sha256)).map((b) => blobEntry(b.sha256, bytesOf.get(b.sha256)!)),
      ]);
    const patched = (patch: (m: Json) => void): Json => {
      const m = structuredClone(base) as unknown as Json;
      patch(m);
      return m;
    };
    /** 0 = V3 (upstream), 2 = the manual one. */
    const entry = (m: Json, at = 0): Entry => m.updates[at]!;
    const child = (element: El, name: string): El =>
      element.children.find((c): c is El => typeof c !== 'string' && c.name === name)!;
    const update = (m: Json, at = 0): El => child(entry(m, at).element, 'Update');
    const blobOf = (m: Json, sha: string): Blob => m.blobs.find((b) => b.sha256 === sha)!;
    const deep = (levels: number): El => {
      let node: El = { name: 'Deep', attributes: [], children: ['x'] };
      for (let i = 0; i < levels; i += 1) node = { name: 'Deep', attributes: [], children: [node] };
      return node;
    };

    const cases: Array<[string, (m: Json) => void, RegExp]> = [
      ['a version that is not one', (m) => (entry(m).version = 'latest'), /must be a Parallels Desktop version/],
      ['a version with leading zeros', (m) => (entry(m).version = '026.3.3-57507'), /without leading zeros/],
      [
        'a version with a shell tail',
        (m) => (entry(m).version = `${V3}; rm -rf /`),
        /must be a Parallels Desktop version/,
      ],
      ['an element that is a string', (m) => set(entry(m), 'element', '<Version/>'), /not a feed element/],
      ['an element that is not a Version', (m) => (entry(m).element = update(m)), /is <Update>, not <Version>/],
      ['an element name that is not an XML name', (m) => (update(m).name = 'Up date'), /not an element name/],
      ['an element name that smuggles markup', (m) => (update(m).name = 'Update><Evil'), /not an element name/],
      ['an element with a key too many', (m) => set(entry(m).element, 'evil', true), /exactly the keys/],
      [
        'an attribute that is not a pair',
        (m) => (update(m).attributes = [{ name: 'uuid', value: 'x' }]),
        /\[name, value\] pair/,
      ],
      ['elements nested without end', (m) => update(m).children.push(deep(40)), /nest deeper than 16/],
      [
        'more elements than a feed may have',
        (m) =>
          (update(m).children = Array.from({ length: 50_001 }, () => ({ name: 'X', attributes: [], children: [] }))),
        /more than 50000 elements/,
      ],
      [
        'a Version whose numbers are another version',
        (m) => (child(entry(m).element, 'Major').children = ['27']),
        /element says 27\.3\.3\.57507/,
      ],
      [
        'markup in a number stays text (and is not a number)',
        (m) => (child(entry(m).element, 'Major').children = ['26</Major><Major>26']),
        /element says 26<\/Major><Major>26/,
      ],
      [
        'a FilePath that is not the upstream file',
        (m) => (child(update(m), 'FilePath').children = ['http://evil.example/ParallelsDesktop.dmg']),
        /first FilePath is not its upstream file/,
      ],
      [
        'a Version without an Update',
        (m) => {
          const element = entry(m).element;
          element.children = element.children.filter((c) => typeof c === 'string' || c.name !== 'Update');
        },
        /no <Update> with a <FilePath>/,
      ],
      [
        'a control character in a text',
        (m) => (child(update(m), 'UpdateName').children = ['a\u0001b']),
        /malformed XML/,
      ],
      [
        'an upstream entry without its file URL',
        (m) => (entry(m).fileUrl = null),
        /needs the URL of its upstream file/,
      ],
      [
        'a manual entry with a file URL',
        (m) => (entry(m, 2).fileUrl = 'http://x.example/a.dmg'),
        /has no upstream file/,
      ],
      ['a file URL that is not http(s)', (m) => (entry(m).fileUrl = 'javascript:alert(1)'), /must be an http\(s\) URL/],
      ['a file URL on two lines', (m) => (entry(m).fileUrl = 'http://a.example/\nx'), /one line of text/],
      ['a note on two lines', (m) => (entry(m).notes = ['a\nb']), /one line of text/],
      ['a published flag that is not a boolean', (m) => set(entry(m), 'published', 'yes'), /bundle manifest/],
      ['an unknown field in a version', (m) => set(entry(m), 'extra', 1), /bundle manifest/],
      [
        'product elements holding a Version',
        (m) => entry(m).product.elements.push({ name: 'Version', attributes: [], children: [] }),
        /product elements hold a <Version>/,
      ],
      [
        'a file the blob list leaves out',
        (m) => (m.blobs = m.blobs.filter((b) => b.sha256 !== shaOf(V3))),
        /does not list as an update file/,
      ],
      ['a file listed as a package', (m) => (blobOf(m, shaOf(V3)).kind = 'package'), /does not list as an update file/],
      ['a size that disagrees with the blob list', (m) => (entry(m).size += 1), /says its file has \d+ bytes/],
      [
        'an update file of no version',
        (m) => m.blobs.push({ sha256: 'a'.repeat(64), size: 10, name: 'x.dmg', kind: 'update' }),
        /file of no Parallels Desktop version/,
      ],
      [
        'an image using an update file',
        (m) => (m.images[0]!.x86_64 = { enabled: true, sha256: shaOf(V3) }),
        /lists as an update file/,
      ],
      ['a version listed twice', (m) => m.updates.push(structuredClone(entry(m))), /version 26\.3\.3-57507 twice/],
      ['a blob kind that is not one', (m) => (blobOf(m, shaOf(V3)).kind = 'script'), /bundle manifest/],
      ['a version 1 manifest with versions', (m) => (m.version = 1), /version 1 manifest carries no updates/],
    ];

    it.each(cases)('refuses %s with BUNDLE_INVALID and changes nothing', async (_what, patch, message) => {
      const before = await fullSnapshot(T);
      const archive = await tarOf(patched(patch));
      await expect(importInto(T, Readable.from([archive]))).rejects.toMatchObject({
        code: 'BUNDLE_INVALID',
        message: expect.stringMatching(message) as string,
      });
      expect(await fullSnapshot(T)).toEqual(before);
    });

    it('takes names from versions, never from the manifest, and keeps markup in texts as text', async () => {
      const manifest = patched((m) => {
        blobOf(m, shaOf(V3)).name = '../../evil/../../etc/passwd.dmg';
        child(update(m), 'UpdateName').children = ['<script>alert("x")</script> & more'];
      });
      const report = await importInto(T, Readable.from([await tarOf(manifest)]));
      expect(report.updates.created).toEqual([V3, V2, MANUAL]);
      const row = await T.runtime.db
        .selectFrom('blobs')
        .select(['name', 'kind'])
        .where('sha256', '=', shaOf(V3))
        .executeTakeFirstOrThrow();
      expect(row).toEqual({ name: `ParallelsDesktop-${V3}.dmg`, kind: 'update' });
      expect(snapshotOf(await snapshot(T)).siblings).toEqual([]);
      const served = await servedFeed({ db: T.runtime.db, config: { publicUrl: PUBLIC_B } });
      expect(served).toContain('<UpdateName>&lt;script&gt;alert("x")&lt;/script&gt; &amp; more</UpdateName>');
      expect(readFeed(served, 's').versions.map((v) => v.version)).toEqual([V3, V2, MANUAL]);
    });
  });

  describe('sync from a primary', () => {
    let R: TestMirror;
    let token: string;
    const sync = (m: TestMirror) => syncFrom(m.runtime.ingestDeps, { from: A.url, token, actor: cliActor });
    const servedOn = async (m: TestMirror) => readFeed(await feedOf(m), 's').versions.map((v) => v.version);

    beforeAll(async () => {
      token = (await createApiToken(A.runtime, cliActor, 'branch', 'sync')).token;
      R = await startMirror({ publicUrl: PUBLIC_B });
    });
    afterAll(async () => {
      await R?.close();
      // The other tests read the primary as it was set up.
      await publishUpdate(A.runtime, cliActor, V3);
      await publishUpdate(A.runtime, cliActor, V2);
    });

    it("gets the primary's published versions and files, serves the same feed with its own address, and follows unpublish and rollback", async () => {
      const first = await sync(R);
      expect(first.fetched.sort()).toEqual([packageSha, shaOf(V3), shaOf(V2), shaOf(MANUAL)].sort());
      expect(first.import.updates).toMatchObject({ created: [V3, V2, MANUAL], published: [V3, V2, MANUAL] });
      expect(await feedOf(R)).toBe((await feedOf(A)).replaceAll(PUBLIC_A, PUBLIC_B));
      // The available version stays on the primary.
      expect((await listUpdates(R.runtime)).versions.map((v) => v.version)).toEqual([V3, V2, MANUAL]);
      const link = readFeed(await feedOf(R), 's').versions[0]!.fileUrl.replace(PUBLIC_B, R.url);
      expect(sha256Of(Buffer.from(await (await fetch(link)).arrayBuffer()))).toBe(shaOf(V3));

      // Nothing changed: nothing downloaded, nothing written.
      const quiet = await sync(R);
      expect(quiet.fetched).toEqual([]);
      expect(quiet.import.updates).toEqual({
        created: [],
        updated: [],
        unchanged: [V3, V2, MANUAL],
        published: [],
        unpublished: [],
      });

      await unpublishUpdate(A.runtime, cliActor, V2);
      expect(await servedOn(R)).toEqual([V3, V2, MANUAL]);
      const after = await sync(R);
      expect(after.fetched).toEqual([]);
      expect(after.import.updates.unpublished).toEqual([V2]);
      expect(await servedOn(R)).toEqual([V3, MANUAL]);
      expect(await getUpdate(R.runtime, V2)).toMatchObject({ published: false, state: 'stored' });

      await rollbackUpdate(A.runtime, cliActor, MANUAL);
      await sync(R);
      expect(await servedOn(R)).toEqual([MANUAL]);
      expect(await feedOf(R)).toBe((await feedOf(A)).replaceAll(PUBLIC_A, PUBLIC_B));

      await publishUpdate(A.runtime, cliActor, V2);
      const back = await sync(R);
      expect(back.import.updates.published).toEqual([V2]);
      expect(await servedOn(R)).toEqual([V2, MANUAL]);
      const audit = await R.runtime.db
        .selectFrom('audit_log')
        .select(['action', 'target'])
        .where('action', 'like', 'update.%')
        .orderBy('id')
        .execute();
      expect(audit.filter((a) => a.target === `update:${V2}`).map((a) => a.action)).toEqual([
        'update.publish',
        'update.unpublish',
        'update.publish',
      ]);
      const history = await listHistory(R.runtime, { action: 'bundle.import' });
      expect(history.entries.map((e) => e.sentence).reverse()).toEqual([
        expect.stringMatching(
          /imported a bundle: golden images 1 created; Parallels Desktop versions 3 created; Parallels Desktop versions 3 published$/,
        ),
        expect.stringMatching(/imported a bundle: Parallels Desktop versions 1 unpublished$/),
        expect.stringMatching(/imported a bundle: Parallels Desktop versions 1 unpublished$/),
        expect.stringMatching(/imported a bundle: Parallels Desktop versions 1 published$/),
      ]);
    });

    it('a version the branch stores with other bytes stops the sync before any file is downloaded', async () => {
      const S = await startMirror({ publicUrl: PUBLIC_B });
      try {
        const other = fakeDmg(200_000, 'carry-sync-other');
        await addUpdateFile({ ...S.runtime.ingestDeps, config: S.runtime.config }, cliActor, {
          source: [other],
          what: 'other.dmg',
          version: MANUAL,
        });
        await expect(sync(S)).rejects.toMatchObject({
          code: 'BUNDLE_CONFLICT',
          message: expect.stringContaining(
            `Parallels Desktop ${MANUAL} is stored here with sha256 ${sha256Of(other)}`,
          ) as string,
        });
        expect(await storedDigests(S)).toEqual([sha256Of(other)]);
      } finally {
        await S.close();
      }
    });
  });
});

function snapshotOf(snap: unknown): { siblings: string[] } {
  return snap as { siblings: string[] };
}
