/**
 * Moving images between mirrors with tar bundles: export on one data dir,
 * import on another, through the library, the CLI (files and a pipe) and
 * the HTTP API; odd-sized streaming; filters; and every malformed archive
 * we could think of, each of which must fail with a clear code and leave the
 * target mirror exactly as it was (rows, files, audit log).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle } from '../../server/bundles/export.js';
import { buildManifest } from '../../server/services/bundle-manifest.js';
import { importBundle, type ImportReport } from '../../server/bundles/import.js';
import { blobEntryName, MANIFEST_ENTRY, type Manifest } from '../../server/bundles/manifest.js';
import { downloadUrl } from '../../server/links.js';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { createGroup } from '../../server/services/groups.js';
import { createImage } from '../../server/services/images.js';
import { runCli } from '../helpers/cli.js';
import { corruptStored, replaceStored, storedDigest } from '../helpers/blobs.js';
import { makeTempDir, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import {
  blobEntry,
  matching,
  buildTar,
  cliEnv,
  collect,
  exportToBuffer,
  headerOffset,
  logical,
  manifestEntry,
  openLocal,
  readTar,
  runCliBytes,
  seed,
  sha256Hex,
  sliced,
  snapshot,
  spawnCliPiped,
  store,
  type HasRuntime,
  type LocalMirror,
  type Seed,
  type TarEntrySpec,
} from './helpers.js';

const IMAGE_NAMES = ['Ubuntu', 'Windows 11', 'macOS Sonoma'];
const GROUP_NAMES = ['Design', 'Engineering', 'Interns'];

function importBuffer(m: HasRuntime, archive: Buffer, dryRun = false): Promise<ImportReport> {
  return importBundle(m.runtime.ingestDeps, Readable.from([archive]), {
    dryRun,
    actor: cliActor,
  });
}

const sorted = (list: string[]) => [...list].sort();

async function auditActions(m: HasRuntime, action: string): Promise<Array<{ actor: string }>> {
  return m.runtime.db.selectFrom('audit_log').select(['actor']).where('action', '=', action).execute();
}

/** Each package of `seedA` downloaded from `mirror`'s public link is byte-identical. */
async function expectDownloads(mirror: TestMirror, seedA: Seed): Promise<void> {
  for (const [sha, bytes] of seedA.bytes) {
    const row = await mirror.runtime.db
      .selectFrom('blobs')
      .select('name')
      .where('sha256', '=', sha)
      .executeTakeFirstOrThrow();
    const res = await fetch(downloadUrl(mirror.url, sha, row.name));
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(bytes.length);
    expect(sha256Hex(body)).toBe(sha);
  }
}

let A: TestMirror;
let seedA: Seed;
let tokenA: string;
let full: { manifest: Manifest; tar: Buffer };

beforeAll(async () => {
  A = await startMirror();
  seedA = await seed(A, 'A');
  tokenA = (await createApiToken(A.runtime, cliActor, 'export-test')).token;
  full = await exportToBuffer(A, { includeBlobs: true });
});
afterAll(async () => {
  await A?.close();
});

describe('round trip between two mirrors', () => {
  it('library: the manifest describes images, arches, groups and packages', async () => {
    const m = full.manifest;
    expect(m.format).toBe('goldmirror-bundle');
    expect(m.version).toBe(1);
    expect(m.includesBlobs).toBe(true);
    expect(m.images.map((i) => i.name)).toEqual(IMAGE_NAMES);
    expect(m.images.find((i) => i.name === 'Windows 11')).toEqual({
      name: 'Windows 11',
      description: 'Corporate build',
      arm64: { enabled: true, sha256: seedA.winArm },
      x86_64: { enabled: true, sha256: seedA.winX86 },
    });
    expect(m.images.find((i) => i.name === 'Ubuntu')?.x86_64).toEqual({
      enabled: false,
      sha256: seedA.linux,
    });
    expect(m.groups).toEqual([
      {
        name: 'Design',
        licenseKey: 'DES-0002-KEY',
        primary: false,
        image: 'macOS Sonoma',
      },
      {
        name: 'Engineering',
        licenseKey: 'ENG-0001-KEY',
        primary: true,
        image: 'Windows 11',
      },
      { name: 'Interns', licenseKey: null, primary: false, image: null },
    ]);
    expect(m.blobs.map((b) => b.sha256)).toEqual(sorted([...seedA.bytes.keys()]));
    for (const b of m.blobs) expect(b.size).toBe(seedA.bytes.get(b.sha256)!.length);
    // The tar: manifest first, then each package under its digest, bytes intact.
    const entries = await readTar(full.tar);
    expect(entries.map((e) => e.name)).toEqual([MANIFEST_ENTRY, ...m.blobs.map((b) => blobEntryName(b.sha256))]);
    expect(JSON.parse(entries[0]!.data.toString('utf8'))).toEqual(m);
    for (const e of entries.slice(1)) expect(sha256Hex(e.data)).toBe(e.name.slice('blobs/sha256/'.length));
  });

  it('library: exportBundle → importBundle gives an identical second mirror whose links serve the same bytes', async () => {
    const B = await startMirror();
    try {
      const report = await importBundle(B.runtime.ingestDeps, exportBundle(A.runtime.store, full.manifest), {
        dryRun: false,
        actor: cliActor,
      });
      expect(sorted(report.blobs.stored)).toEqual(sorted([...seedA.bytes.keys()]));
      expect(report.blobs.alreadyPresent).toEqual([]);
      expect(sorted(report.images.created)).toEqual(sorted(IMAGE_NAMES));
      expect(sorted(report.groups.created)).toEqual(sorted(GROUP_NAMES));
      expect(await logical(B.runtime.db)).toEqual(await logical(A.runtime.db));
      const eng = await B.runtime.db
        .selectFrom('groups')
        .innerJoin('images', 'images.id', 'groups.image_id')
        .select(['groups.is_primary', 'groups.license_key', 'images.name'])
        .where('groups.name', '=', 'Engineering')
        .executeTakeFirstOrThrow();
      expect(eng).toEqual({
        is_primary: 1,
        license_key: 'ENG-0001-KEY',
        name: 'Windows 11',
      });
      // Stored blobs are under their digests and hash to them.
      for (const sha of seedA.bytes.keys()) {
        expect(await storedDigest(B, sha)).toBe(sha);
      }
      await expectDownloads(B, seedA);
      expect(await auditActions(B, 'bundle.import')).toHaveLength(1);
    } finally {
      await B.close();
    }
  });

  it('importing the same bundle twice changes nothing the second time', async () => {
    const T = await openLocal();
    try {
      await importBuffer(T, full.tar);
      const before = await snapshot(T);
      const second = await importBuffer(T, full.tar);
      expect(second.blobs.stored).toEqual([]);
      expect(sorted(second.blobs.alreadyPresent)).toEqual(sorted([...seedA.bytes.keys()]));
      expect(second.images).toEqual({
        created: [],
        updated: [],
        unchanged: IMAGE_NAMES,
      });
      expect(second.groups).toEqual({
        created: [],
        updated: [],
        unchanged: GROUP_NAMES,
      });
      expect(await snapshot(T)).toEqual(before); // rows incl. updated_at, audit count, files
      expect(await auditActions(T, 'bundle.import')).toHaveLength(1);
    } finally {
      await T.close();
    }
  });

  it('a dry run verifies every package and reports the plan without changing anything', async () => {
    const T = await openLocal();
    try {
      const before = await snapshot(T);
      const report = await importBuffer(T, full.tar, true);
      expect(report.dryRun).toBe(true);
      expect(sorted(report.blobs.verified)).toEqual(sorted([...seedA.bytes.keys()]));
      expect(report.blobs.stored).toEqual([]);
      expect(sorted(report.images.created)).toEqual(sorted(IMAGE_NAMES));
      expect(await snapshot(T)).toEqual(before);
    } finally {
      await T.close();
    }
  });

  it('an update: a changed image and group on the source are applied as updates, not duplicates', async () => {
    const T = await openLocal();
    const S = await openLocal();
    try {
      await importBuffer(T, full.tar);
      await importBuffer(S, full.tar);
      // On S: Ubuntu enabled and described differently, Interns gets a key.
      await S.runtime.db
        .updateTable('images')
        .set({ x86_64_enabled: 1, description: 'now live' })
        .where('name', '=', 'Ubuntu')
        .execute();
      await S.runtime.db
        .updateTable('groups')
        .set({ license_key: 'INT-0003-KEY' })
        .where('name', '=', 'Interns')
        .execute();
      const report = await importBuffer(T, (await exportToBuffer(S, { includeBlobs: true })).tar);
      expect(report.images).toEqual({
        created: [],
        updated: ['Ubuntu'],
        unchanged: ['Windows 11', 'macOS Sonoma'],
      });
      expect(report.groups).toEqual({
        created: [],
        updated: ['Interns'],
        unchanged: ['Design', 'Engineering'],
      });
      expect(await logical(T.runtime.db)).toEqual(await logical(S.runtime.db));
    } finally {
      await T.close();
      await S.close();
    }
  });

  it('a package the target holds as corrupt is replaced by the verified copy from the bundle', async () => {
    const T = await openLocal();
    try {
      const bytes = seedA.bytes.get(seedA.mac)!;
      await store(T, bytes, 'mac.pvmp');
      await replaceStored(
        T,
        seedA.mac,
        Buffer.concat([bytes.subarray(0, 100), Buffer.from('rot'), bytes.subarray(103)]),
      );
      await T.runtime.db
        .updateTable('blobs')
        .set({ state: 'corrupt', state_detail: 'test' })
        .where('sha256', '=', seedA.mac)
        .execute();
      const report = await importBuffer(T, full.tar);
      expect(report.blobs.stored).toContain(seedA.mac);
      expect(await storedDigest(T, seedA.mac)).toBe(seedA.mac);
      const row = await T.runtime.db
        .selectFrom('blobs')
        .select(['state', 'state_detail'])
        .where('sha256', '=', seedA.mac)
        .executeTakeFirstOrThrow();
      expect(row).toEqual({ state: 'ok', state_detail: null });
    } finally {
      await T.close();
    }
  });

  it('CLI: export OUT.tar on one data dir, import-bundle IN.tar on another; the second mirror serves the bytes', async () => {
    const work = await makeTempDir();
    const B = await startMirror();
    try {
      const out = path.join(work, 'bundle.tar');
      const exp = await runCli(['export', out], cliEnv(A.dir));
      expect(exp.stderr).toContain('exported 3 image(s), 3 group(s), 4 package(s)');
      expect(exp.code).toBe(0);
      await expect(fs.access(`${out}.partial`)).rejects.toThrow();
      const entries = await readTar(await fs.readFile(out));
      expect(entries.map((e) => e.name)).toEqual([
        MANIFEST_ENTRY,
        ...full.manifest.blobs.map((b) => blobEntryName(b.sha256)),
      ]);

      const imp = await runCli(['import-bundle', out, '--json'], cliEnv(B.dir));
      expect(imp.code).toBe(0);
      const report = JSON.parse(imp.stdout) as ImportReport;
      expect(sorted(report.blobs.stored)).toEqual(sorted([...seedA.bytes.keys()]));
      expect(sorted(report.images.created)).toEqual(sorted(IMAGE_NAMES));
      expect(await logical(B.runtime.db)).toEqual(await logical(A.runtime.db));
      await expectDownloads(B, seedA);

      // Twice: the human-readable report says nothing changed.
      const again = await runCli(['import-bundle', out], cliEnv(B.dir));
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('packages: 0 stored, 4 already present');
      expect(again.stdout).toContain('images and groups: no changes');
    } finally {
      await B.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });

  it('CLI: export - piped into import-bundle - between two processes (an OS pipe, as in a shell)', async () => {
    const target = await makeTempDir();
    try {
      const exporter = spawnCliPiped(['export', '-'], cliEnv(A.dir));
      exporter.stdin?.end();
      // The importer's stdin is the exporter's stdout itself: bytes never pass through this process.
      const importer = spawnCliPiped(['import-bundle', '-', '--json'], cliEnv(target), exporter.stdout!);
      exporter.stdout!.destroy(); // like a shell: this process keeps no copy of the pipe
      const exit = (child: typeof exporter) =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          let stdout = '';
          let stderr = '';
          if (child !== exporter) child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('close', (code) => resolve({ code, stdout, stderr }));
        });
      const [e, i] = await Promise.all([exit(exporter), exit(importer)]);
      expect(e.stderr).toBe('');
      expect(e.code).toBe(0);
      expect(i.stderr).toBe('');
      expect(i.code).toBe(0);
      const report = JSON.parse(i.stdout) as ImportReport;
      expect(sorted(report.blobs.stored)).toEqual(sorted([...seedA.bytes.keys()]));
      const T = await openLocal(target);
      try {
        expect(await logical(T.runtime.db)).toEqual(await logical(A.runtime.db));
      } finally {
        await T.close();
      }
    } finally {
      await fs.rm(target, { recursive: true, force: true });
    }
  });

  it('API: GET /api/v1/export streamed straight into POST /api/v1/import of another mirror', async () => {
    const B = await startMirror();
    try {
      const tokenB = (await createApiToken(B.runtime, cliActor, 'importer')).token;
      const unauth = await fetch(`${A.url}/api/v1/export`);
      expect(unauth.status).toBe(401);
      await unauth.body?.cancel();

      const res = await fetch(`${A.url}/api/v1/export`, {
        headers: { Authorization: `Bearer ${tokenA}` },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/x-tar');
      expect(res.headers.get('content-disposition')).toMatch(
        /^attachment; filename="goldmirror-\d{4}-\d\d-\d\d\.tar"$/,
      );
      const imp = await fetch(`${B.url}/api/v1/import`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${tokenB}`,
          'Content-Type': 'application/x-tar',
        },
        body: res.body,
        duplex: 'half',
      });
      const report = (await imp.json()) as ImportReport;
      expect(imp.status).toBe(200);
      expect(sorted(report.blobs.stored)).toEqual(sorted([...seedA.bytes.keys()]));
      expect(await logical(B.runtime.db)).toEqual(await logical(A.runtime.db));
      expect(await auditActions(B, 'bundle.import')).toEqual([{ actor: 'token:importer' }]);
      await expectDownloads(B, seedA);
    } finally {
      await B.close();
    }
  });

  it('API: ?image= and ?blobs=false shape the export; /export/manifest matches it', async () => {
    const auth = { Authorization: `Bearer ${tokenA}` };
    const res = await fetch(`${A.url}/api/v1/export?image=${encodeURIComponent('macOS Sonoma')}&blobs=false`, {
      headers: auth,
    });
    expect(res.status).toBe(200);
    const entries = await readTar(Buffer.from(await res.arrayBuffer()));
    expect(entries.map((e) => e.name)).toEqual([MANIFEST_ENTRY]);
    const m = JSON.parse(entries[0]!.data.toString()) as Manifest;
    expect(m.includesBlobs).toBe(false);
    expect(m.images.map((i) => i.name)).toEqual(['macOS Sonoma']);
    expect(m.groups.map((g) => g.name)).toEqual(['Design']);
    expect(m.blobs.map((b) => b.sha256)).toEqual([seedA.mac]);
    const viaManifest = (await (
      await fetch(`${A.url}/api/v1/export/manifest?image=${encodeURIComponent('macOS Sonoma')}&blobs=false`, {
        headers: auth,
      })
    ).json()) as Manifest;
    expect({ ...viaManifest, createdAt: '' }).toEqual({ ...m, createdAt: '' });
    const missing = await fetch(`${A.url}/api/v1/export/manifest?image=nope`, {
      headers: auth,
    });
    expect(missing.status).toBe(404);
  });
});

describe('streaming through small odd-sized chunks', () => {
  let small: { tar: Buffer };
  let S: LocalMirror;
  beforeAll(async () => {
    S = await openLocal();
    await seed(S, 'small', {
      winArm: 5_000,
      winX86: 3_001,
      mac: 1_023,
      linux: 513,
    });
    small = await exportToBuffer(S, { includeBlobs: true });
  });
  afterAll(async () => {
    await S?.close();
  });

  async function resultOf(archive: Buffer, source: () => Readable): Promise<{ whole: unknown; sliced: unknown }> {
    const results: unknown[] = [];
    for (const make of [() => Readable.from([archive]), source]) {
      const T = await openLocal();
      try {
        const report = await importBundle(T.runtime.ingestDeps, make(), {
          dryRun: false,
          actor: cliActor,
        });
        const snap = (await snapshot(T)) as {
          blobFiles: unknown;
          tmpFiles: unknown;
        };
        results.push({
          report,
          state: await logical(T.runtime.db),
          files: snap.blobFiles,
          tmp: snap.tmpFiles,
        });
      } finally {
        await T.close();
      }
    }
    return { whole: results[0], sliced: results[1] };
  }

  it.each([[1], [7], [511], [512], [513], [4093]])(
    'slices of %i bytes give the same result as the whole archive',
    async (n) => {
      const { whole, sliced: got } = await resultOf(small.tar, () => sliced(small.tar, [n]));
      expect((whole as { report: ImportReport }).report.blobs.stored).toHaveLength(4);
      expect(got).toEqual(whole);
    },
  );

  it('slices cycling through 1, 7, 511, 513, 4093, 65537 bytes over a 2 MiB bundle give the same result', async () => {
    const { whole, sliced: got } = await resultOf(full.tar, () => sliced(full.tar, [1, 7, 511, 513, 4093, 65_537]));
    expect((whole as { report: ImportReport }).report.blobs.stored).toHaveLength(4);
    expect(got).toEqual(whole);
  });
});

describe('filters: no packages, one image, stdout', () => {
  it('includeBlobs:false writes only the manifest; it imports only where the packages already are', async () => {
    const { manifest, tar } = await exportToBuffer(A, { includeBlobs: false });
    expect(manifest.includesBlobs).toBe(false);
    expect(manifest.blobs).toHaveLength(4); // still listed, so the importer can check they are present
    expect((await readTar(tar)).map((e) => e.name)).toEqual([MANIFEST_ENTRY]);

    const empty = await openLocal();
    const ready = await openLocal();
    try {
      const before = await snapshot(empty);
      await expect(importBuffer(empty, tar)).rejects.toMatchObject({
        code: 'BUNDLE_INCOMPLETE',
        message: matching(/neither in it nor stored here/),
      });
      expect(await snapshot(empty)).toEqual(before);

      for (const [sha, bytes] of seedA.bytes) expect(await store(ready, bytes, 'x.pvmp')).toBe(sha);
      const report = await importBuffer(ready, tar);
      expect(report.blobs).toEqual({
        stored: [],
        alreadyPresent: [],
        verified: [],
      });
      expect(sorted(report.images.created)).toEqual(sorted(IMAGE_NAMES));
      const [a, r] = [await logical(A.runtime.db), await logical(ready.runtime.db)];
      expect(r.images).toEqual(a.images);
      expect(r.groups).toEqual(a.groups);
    } finally {
      await empty.close();
      await ready.close();
    }
  });

  it('an image filter (by name or id) carries only that image, its groups and its packages', async () => {
    const byName = await exportToBuffer(A, {
      images: ['Windows 11'],
      includeBlobs: true,
    });
    const id = (
      await A.runtime.db.selectFrom('images').select('id').where('name', '=', 'Windows 11').executeTakeFirstOrThrow()
    ).id;
    const byId = await buildManifest(A.runtime, {
      images: [String(id)],
      includeBlobs: true,
    });
    expect({ ...byId, createdAt: '' }).toEqual({
      ...byName.manifest,
      createdAt: '',
    });
    expect(byName.manifest.images.map((i) => i.name)).toEqual(['Windows 11']);
    expect(byName.manifest.groups.map((g) => g.name)).toEqual(['Engineering']);
    expect(byName.manifest.blobs.map((b) => b.sha256)).toEqual(sorted([seedA.winArm, seedA.winX86]));
    expect((await readTar(byName.tar)).map((e) => e.name)).toEqual([
      MANIFEST_ENTRY,
      ...sorted([seedA.winArm, seedA.winX86]).map(blobEntryName),
    ]);

    const T = await openLocal();
    try {
      await importBuffer(T, byName.tar);
      const got = await logical(T.runtime.db);
      expect((got.images as Array<{ name: string }>).map((i) => i.name)).toEqual(['Windows 11']);
      expect(got.groups).toEqual([
        {
          name: 'Engineering',
          license_key: 'ENG-0001-KEY',
          is_primary: 1,
          image: 'Windows 11',
        },
      ]);
      expect((got.blobs as Array<{ sha256: string }>).map((b) => b.sha256)).toEqual(
        sorted([seedA.winArm, seedA.winX86]),
      );
    } finally {
      await T.close();
    }
    await expect(
      buildManifest(A.runtime, {
        images: ['No Such Image'],
        includeBlobs: true,
      }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('CLI: export - --no-blobs --image NAME writes just the manifest tar to stdout', async () => {
    const res = await runCliBytes(['export', '-', '--no-blobs', '--image', 'macOS Sonoma'], cliEnv(A.dir));
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout.length % 512).toBe(0);
    const entries = await readTar(res.stdout);
    expect(entries.map((e) => e.name)).toEqual([MANIFEST_ENTRY]);
    const m = JSON.parse(entries[0]!.data.toString()) as Manifest;
    expect(m).toMatchObject({
      includesBlobs: false,
      images: [{ name: 'macOS Sonoma' }],
      groups: [{ name: 'Design', image: 'macOS Sonoma' }],
    });
    expect(m.blobs.map((b) => b.sha256)).toEqual([seedA.mac]);
  });

  it('an export stops with an error (no OUT file) when a package is corrupt on disk', async () => {
    const S = await openLocal();
    const work = await makeTempDir();
    try {
      const s = await seed(S, 'corrupt', {
        winArm: 70_000,
        winX86: 3_000,
        mac: 2_000,
        linux: 1_000,
      });
      await corruptStored(S, s.winArm, 12_345);
      // The database still says ok: only the re-hash on the way out can notice.
      await expect(
        collect(exportBundle(S.runtime.store, await buildManifest(S.runtime, { includeBlobs: true }))),
      ).rejects.toMatchObject({
        code: 'BLOB_UNAVAILABLE',
      });
      const out = path.join(work, 'out.tar');
      const res = await runCli(['export', out], cliEnv(S.dir));
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/corrupt on disk/);
      expect(await fs.readdir(work)).toEqual([]); // neither out.tar nor out.tar.partial
    } finally {
      await S.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });

  it('cosmetic package names from a manifest are cleaned, never used as paths', async () => {
    const data = testBytes(3_000, 'names');
    const sha = sha256Hex(data);
    const manifest = {
      ...full.manifest,
      images: [
        {
          name: 'Evil',
          description: '',
          arm64: { enabled: true, sha256: sha },
          x86_64: { enabled: false, sha256: null },
        },
      ],
      groups: [],
      blobs: [{ sha256: sha, size: data.length, name: '../../evil/../../etc/passwd' }],
    };
    const T = await openLocal();
    try {
      await importBuffer(T, await buildTar([manifestEntry(manifest), blobEntry(sha, data)]));
      const row = await T.runtime.db
        .selectFrom('blobs')
        .select('name')
        .where('sha256', '=', sha)
        .executeTakeFirstOrThrow();
      expect(row.name).toBe('passwd.pvmp');
      expect(snapshotSiblings(await snapshot(T))).toEqual([]);
    } finally {
      await T.close();
    }
  });
});

function snapshotSiblings(snap: unknown): string[] {
  return (snap as { siblings: string[] }).siblings;
}

describe('malformed archives fail clearly and leave the mirror exactly as it was', () => {
  let T: LocalMirror;
  let blobs: Array<{ sha256: string; data: Buffer }>;
  const good = (): TarEntrySpec[] => [manifestEntry(full.manifest), ...blobs.map((b) => blobEntry(b.sha256, b.data))];
  const last = () => blobs[blobs.length - 1]!;
  const withManifest = (patch: (m: Record<string, unknown>) => unknown): TarEntrySpec[] => [
    manifestEntry(patch(structuredClone(full.manifest))),
    ...blobs.map((b) => blobEntry(b.sha256, b.data)),
  ];
  type Named = Record<string, unknown> & { name: string };
  const withNamed = (list: 'images' | 'groups', name: string, patch: (item: Named) => void) =>
    withManifest((m) => {
      const item = (m[list] as Named[]).find((i) => i.name === name);
      if (!item) throw new Error(`the exported manifest has no ${list} entry ${name}`);
      patch(item);
      return m;
    });
  const withGroup = (name: string, patch: (group: Named) => void) => withNamed('groups', name, patch);
  const withImage = (name: string, patch: (image: Named) => void) => withNamed('images', name, patch);

  beforeAll(async () => {
    blobs = full.manifest.blobs.map((b) => ({
      sha256: b.sha256,
      data: seedA.bytes.get(b.sha256)!,
    }));
    // The target already has some state of its own, and one of the bundle's packages (unused here).
    T = await openLocal();
    const own = await store(T, testBytes(9_999, 'own'), 'own.pvmp');
    const image = await createImage(
      T.runtime,
      cliActor,
      { name: 'Existing', arm64: { enabled: true, sha256: own } },
      'http://x',
    );
    await createGroup(T.runtime, cliActor, {
      name: 'Ops',
      licenseKey: 'OPS-KEY',
      imageId: image.id,
    });
    await store(T, blobs[0]!.data, 'shared.pvmp');
  });
  afterAll(async () => {
    await T?.close();
  });

  const truncatedAt = async (cut: (archive: Buffer) => number) => {
    const archive = await buildTar(good());
    return archive.subarray(0, cut(archive));
  };

  const cases: Array<[string, () => Promise<Buffer>, string, RegExp]> = [
    [
      'truncated inside the first package',
      () => truncatedAt((a) => headerOffset(a, blobEntryName(blobs[0]!.sha256)) + 512 + 1000),
      'BUNDLE_INVALID',
      /damaged or truncated/,
    ],
    [
      'truncated inside the last package (after others were stored)',
      () => truncatedAt((a) => headerOffset(a, blobEntryName(last().sha256)) + 512 + 2000),
      'BUNDLE_INVALID',
      /damaged or truncated/,
    ],
    [
      'truncated inside a tar header',
      () => truncatedAt((a) => headerOffset(a, blobEntryName(blobs[2]!.sha256)) + 100),
      'BUNDLE_INVALID',
      /damaged or truncated/,
    ],
    ['truncated inside manifest.json', () => truncatedAt(() => 512 + 300), 'BUNDLE_INVALID', /damaged or truncated/],
    [
      'cut at an entry boundary: the last package is missing',
      () => truncatedAt((a) => headerOffset(a, blobEntryName(last().sha256))),
      'BUNDLE_INCOMPLETE',
      /neither in it nor stored here/,
    ],
    [
      'one byte flipped inside the last package',
      async () => {
        const archive = Buffer.from(await buildTar(good()));
        const at = headerOffset(archive, blobEntryName(last().sha256)) + 512 + 777;
        archive[at] = archive[at]! ^ 0x01;
        return archive;
      },
      'DIGEST_MISMATCH',
      /hashes to/,
    ],
    [
      'entry named ../evil',
      () => buildTar([...good(), { name: '../evil', data: Buffer.from('x') }]),
      'BUNDLE_INVALID',
      /unexpected entry "\.\.\/evil"/,
    ],
    [
      'entry named /etc/x',
      () => buildTar([manifestEntry(full.manifest), { name: '/etc/x', data: Buffer.from('x') }]),
      'BUNDLE_INVALID',
      /unexpected entry "\/etc\/x"/,
    ],
    [
      'entry named blobs/sha256/../../x',
      () => buildTar([manifestEntry(full.manifest), { name: 'blobs/sha256/../../x', data: Buffer.from('x') }]),
      'BUNDLE_INVALID',
      /unexpected entry/,
    ],
    [
      'a pax path of ../evil on a package entry',
      () =>
        buildTar([
          manifestEntry(full.manifest),
          {
            ...blobEntry(blobs[1]!.sha256, blobs[1]!.data),
            pax: { path: '../evil' },
          },
        ]),
      'BUNDLE_INVALID',
      /unexpected entry "\.\.\/evil"/,
    ],
    [
      'an entry whose name digest differs from its content',
      () =>
        buildTar([
          manifestEntry(full.manifest),
          ...blobs.map((b) =>
            blobEntry(b.sha256, b.sha256 === last().sha256 ? testBytes(b.data.length, 'impostor') : b.data),
          ),
        ]),
      'DIGEST_MISMATCH',
      /hashes to/,
    ],
    [
      'an entry longer than the manifest says',
      () =>
        buildTar([
          manifestEntry(full.manifest),
          ...blobs.map((b) =>
            blobEntry(b.sha256, b.sha256 === last().sha256 ? Buffer.concat([b.data, Buffer.from([0])]) : b.data),
          ),
        ]),
      'BUNDLE_INVALID',
      /has \d+ bytes, the manifest says \d+/,
    ],
    [
      'a manifest size smaller than the entry',
      () => buildTar(withManifest((m) => (((m.blobs as Array<{ size: number }>)[0]!.size -= 1), m))),
      'BUNDLE_INVALID',
      /has \d+ bytes, the manifest says \d+/,
    ],
    [
      'a symlink entry',
      () =>
        buildTar([
          manifestEntry(full.manifest),
          {
            name: blobEntryName(blobs[1]!.sha256),
            type: 'symlink',
            linkname: '/etc/passwd',
          },
        ]),
      'BUNDLE_INVALID',
      /\(symlink\)/,
    ],
    [
      'a hardlink entry',
      () =>
        buildTar([
          manifestEntry(full.manifest),
          {
            name: blobEntryName(blobs[1]!.sha256),
            type: 'link',
            linkname: blobEntryName(blobs[0]!.sha256),
          },
        ]),
      'BUNDLE_INVALID',
      /\(link\)/,
    ],
    [
      'a directory entry',
      () => buildTar([manifestEntry(full.manifest), { name: 'blobs/', type: 'directory' }]),
      'BUNDLE_INVALID',
      /\(directory\)/,
    ],
    [
      'an unlisted extra package',
      () => buildTar([...good(), blobEntry(sha256Hex(testBytes(100, 'extra')), testBytes(100, 'extra'))]),
      'BUNDLE_INVALID',
      /not listed in the manifest/,
    ],
    [
      'a package twice',
      () => buildTar([...good(), blobEntry(blobs[1]!.sha256, blobs[1]!.data)]),
      'BUNDLE_INVALID',
      /appears twice/,
    ],
    [
      'no manifest',
      () => buildTar(blobs.map((b) => blobEntry(b.sha256, b.data))),
      'BUNDLE_INVALID',
      /first entry must be manifest\.json/,
    ],
    [
      'manifest not first',
      () => buildTar([blobEntry(blobs[0]!.sha256, blobs[0]!.data), manifestEntry(full.manifest)]),
      'BUNDLE_INVALID',
      /first entry must be manifest\.json/,
    ],
    [
      'manifest.json as a directory',
      () => buildTar([{ name: MANIFEST_ENTRY, type: 'directory' }]),
      'BUNDLE_INVALID',
      /first entry must be manifest\.json/,
    ],
    ['an empty tar', () => buildTar([]), 'BUNDLE_INVALID', /empty or not a tar/],
    ['not a tar at all', async () => testBytes(10_000, 'noise'), 'BUNDLE_INVALID', /damaged or truncated/],
    [
      'invalid JSON',
      () =>
        buildTar([
          {
            name: MANIFEST_ENTRY,
            data: Buffer.from('{"format": "goldmirror-bundle",'),
          },
        ]),
      'BUNDLE_INVALID',
      /not valid JSON/,
    ],
    [
      'a JSON file that is not a bundle manifest',
      () =>
        buildTar([
          {
            name: MANIFEST_ENTRY,
            data: Buffer.from('{"name":"package.json"}'),
          },
        ]),
      'BUNDLE_INVALID',
      /not a goldmirror bundle manifest/,
    ],
    [
      'manifest version 3',
      () => buildTar(withManifest((m) => ({ ...m, version: 3 }))),
      'BUNDLE_VERSION_UNSUPPORTED',
      /version 3 is not supported/,
    ],
    [
      'an unknown manifest field',
      () => buildTar(withManifest((m) => ({ ...m, extra: true }))),
      'BUNDLE_INVALID',
      /bundle manifest/,
    ],
    [
      'an image using an unlisted package',
      () =>
        buildTar(
          withManifest((m) => ({
            ...m,
            blobs: (m.blobs as unknown[]).slice(1),
          })),
        ),
      'BUNDLE_INVALID',
      /does not list/,
    ],
    [
      'two primary groups',
      () =>
        buildTar(
          withManifest((m) => ((m.groups as Array<{ primary: boolean }>).forEach((g) => (g.primary = true)), m)),
        ),
      'BUNDLE_INVALID',
      /more than one group as primary/,
    ],
    [
      'a group using an image that exists nowhere',
      () => buildTar(withManifest((m) => (((m.groups as Array<{ image: string }>)[2]!.image = 'Ghost'), m))),
      'BUNDLE_CONFLICT',
      /"Ghost", which is neither in the bundle nor here/,
    ],
    [
      'a manifest over 16 MiB',
      () =>
        buildTar([
          {
            name: MANIFEST_ENTRY,
            data: Buffer.alloc(16 * 1024 * 1024 + 1, 0x20),
          },
        ]),
      'BUNDLE_INVALID',
      /at most 16777216 are accepted/,
    ],
    [
      'a 5 MiB pax header (tar-stream caps them at 4 MiB)',
      () =>
        buildTar([
          manifestEntry(full.manifest),
          {
            ...blobEntry(blobs[0]!.sha256, blobs[0]!.data),
            pax: { comment: 'x'.repeat(5 * 1024 * 1024) },
          },
        ]),
      'BUNDLE_INVALID',
      /Header exceeds max size/,
    ],
    [
      'a package entry when the manifest says no packages',
      () => buildTar(withManifest((m) => ({ ...m, includesBlobs: false }))),
      'BUNDLE_INVALID',
      /not listed in the manifest/,
    ],
    // The manifest is held to the API's own field rules (images and groups services), not to looser copies of them.
    [
      'a license key with a space',
      () => buildTar(withGroup('Engineering', (g) => (g.licenseKey = 'ENG 0001'))),
      'BUNDLE_INVALID',
      /groups\.\d+\.licenseKey: must be printable ASCII without spaces/,
    ],
    [
      'an empty license key',
      () => buildTar(withGroup('Engineering', (g) => (g.licenseKey = ''))),
      'BUNDLE_INVALID',
      /groups\.\d+\.licenseKey: must not be empty \(use null for none\)/,
    ],
    [
      'a license key with a control character',
      () => buildTar(withGroup('Design', (g) => (g.licenseKey = 'DES-\u0007'))),
      'BUNDLE_INVALID',
      /groups\.\d+\.licenseKey: must be printable ASCII/,
    ],
    [
      'a license key of 201 characters',
      () => buildTar(withGroup('Design', (g) => (g.licenseKey = 'K'.repeat(201)))),
      'BUNDLE_INVALID',
      /groups\.\d+\.licenseKey: must be at most 200 characters/,
    ],
    [
      'two groups with one license key',
      () => buildTar(withGroup('Interns', (g) => (g.licenseKey = 'ENG-0001-KEY'))),
      'BUNDLE_INVALID',
      /gives groups "\w+" and "\w+" the same license key/,
    ],
    [
      'a description of 1001 characters',
      () => buildTar(withImage('Ubuntu', (i) => (i.description = 'd'.repeat(1001)))),
      'BUNDLE_INVALID',
      /images\.\d+\.description: must be at most 1000 characters/,
    ],
    [
      'an image name of 101 characters',
      () => buildTar(withImage('Ubuntu', (i) => (i.name = 'U'.repeat(101)))),
      'BUNDLE_INVALID',
      /images\.\d+\.name: must be at most 100 characters/,
    ],
    [
      'a blank group name',
      () => buildTar(withGroup('Interns', (g) => (g.name = '   '))),
      'BUNDLE_INVALID',
      /groups\.\d+\.name: must not be empty/,
    ],
    [
      'a group naming its image with a control character',
      () => buildTar(withGroup('Design', (g) => (g.image = 'macOS Sonoma\u0000'))),
      'BUNDLE_INVALID',
      /groups\.\d+\.image: must not contain control characters/,
    ],
    [
      'an architecture switch that is not a boolean',
      () => buildTar(withImage('Ubuntu', (i) => ((i.x86_64 as Record<string, unknown>).enabled = 'yes'))),
      'BUNDLE_INVALID',
      /images\.\d+\.x86_64\.enabled: must be true or false/,
    ],
    [
      'an unknown field in an architecture',
      () => buildTar(withImage('Ubuntu', (i) => ((i.arm64 as Record<string, unknown>).url = 'http://evil'))),
      'BUNDLE_INVALID',
      /images\.\d+\.arm64/,
    ],
  ];

  it.each(
    cases.map(([name, build, code, message]) => ({
      name,
      build,
      code,
      message,
    })),
  )('$name → $code', async ({ build, code, message }) => {
    const archive = await build();
    const before = await snapshot(T);
    const err = (await importBuffer(T, archive).then(
      () => null,
      (e: unknown) => e,
    )) as { code?: string; message?: string } | null;
    expect(err, 'the import must fail').not.toBeNull();
    expect({ code: err!.code, message: err!.message }).toEqual({
      code,
      message: matching(message),
    });
    expect(await snapshot(T)).toEqual(before);
  });

  it("a manifest refused by the API's rules names each bad field, exactly as the API would", async () => {
    const bad = { Engineering: 'has space', Design: '' };
    const archive = await buildTar(
      withManifest((m) => {
        for (const g of m.groups as Named[]) if (g.name in bad) g.licenseKey = bad[g.name as keyof typeof bad];
        return m;
      }),
    );
    const before = await snapshot(T);
    const err = (await importBuffer(T, archive).catch((e: unknown) => e)) as {
      code: string;
      details: { fields: unknown[] };
    };
    expect(err.code).toBe('BUNDLE_INVALID');
    // What the groups API answers for the same values, field by field, under the manifest's path.
    const expected: unknown[] = [];
    for (const [index, group] of full.manifest.groups.entries()) {
      if (!(group.name in bad)) continue;
      const api = (await createGroup(T.runtime, cliActor, {
        name: 'Probe',
        licenseKey: bad[group.name as keyof typeof bad],
      }).catch((e: unknown) => e)) as { code: string; details: { fields: Array<{ field: string; message: string }> } };
      expect(api.code).toBe('VALIDATION_FAILED');
      expected.push(...api.details.fields.map((f) => ({ field: `groups.${index}.${f.field}`, message: f.message })));
    }
    expect(expected.length).toBeGreaterThanOrEqual(2);
    expect(err.details.fields).toEqual(expected);
    expect(await snapshot(T)).toEqual(before);
  });

  it('the same tampering also fails a dry run, and odd slices do not let it through', async () => {
    const archive = Buffer.from(await buildTar(good()));
    const at = headerOffset(archive, blobEntryName(blobs[1]!.sha256)) + 512 + 5;
    archive[at] = archive[at]! ^ 0x80;
    const before = await snapshot(T);
    await expect(importBuffer(T, archive, true)).rejects.toMatchObject({
      code: 'DIGEST_MISMATCH',
    });
    await expect(
      importBundle(T.runtime.ingestDeps, sliced(archive, [513, 7, 4093]), {
        dryRun: false,
        actor: cliActor,
      }),
    ).rejects.toMatchObject({
      code: 'DIGEST_MISMATCH',
    });
    expect(await snapshot(T)).toEqual(before);
  });

  it('control: the untampered hand-built archive imports into the same mirror', async () => {
    const report = await importBuffer(T, await buildTar(good()));
    expect(report.blobs.alreadyPresent).toEqual([blobs[0]!.sha256]);
    expect(sorted(report.blobs.stored)).toEqual(sorted(blobs.slice(1).map((b) => b.sha256)));
    expect(sorted(report.images.created)).toEqual(sorted(IMAGE_NAMES));
  });
});

describe('conflicts: nothing changes, not even a package', () => {
  async function mirrorWith(
    setup: (m: LocalMirror, own: string, imageId: number) => Promise<void>,
  ): Promise<LocalMirror> {
    const m = await openLocal();
    const own = await store(m, testBytes(4_321, 'other'), 'other.pvmp');
    const image = await createImage(
      m.runtime,
      cliActor,
      { name: 'Other', arm64: { enabled: true, sha256: own } },
      'http://x',
    );
    await setup(m, own, image.id);
    return m;
  }

  it.each([
    [
      'a group that already has a different image',
      (m: LocalMirror, _o: string, id: number) =>
        createGroup(m.runtime, cliActor, {
          name: 'Engineering',
          imageId: id,
        }),
      /group "Engineering" already has golden image "Other"/,
    ],
    [
      'the primary license key held by another group',
      (m: LocalMirror) =>
        createGroup(m.runtime, cliActor, {
          name: 'HQ',
          primary: true,
        }),
      /primary license key belongs to group "HQ"/,
    ],
    [
      'a license key held by another group',
      (m: LocalMirror) =>
        createGroup(m.runtime, cliActor, {
          name: 'Copycat',
          licenseKey: 'DES-0002-KEY',
        }),
      /group "Copycat" already has the license key/,
    ],
  ] as const)('%s → BUNDLE_CONFLICT', async (_name, setup, message) => {
    const m = await mirrorWith(async (mm, own, id) => void (await setup(mm, own, id)));
    try {
      const before = await snapshot(m);
      await expect(importBuffer(m, full.tar)).rejects.toMatchObject({
        code: 'BUNDLE_CONFLICT',
        message: matching(message),
      });
      const after = (await snapshot(m)) as {
        blobs: unknown[];
        blobFiles: Record<string, number>;
      };
      expect(after).toEqual(before);
      expect(after.blobs).toHaveLength(1);
      expect(Object.keys(after.blobFiles)).toHaveLength(1);
    } finally {
      await m.close();
    }
  });

  it('API: POST /api/v1/import answers 409 BUNDLE_CONFLICT and 422 DIGEST_MISMATCH with nothing changed', async () => {
    const B = await startMirror();
    try {
      const token = (await createApiToken(B.runtime, cliActor, 'importer')).token;
      const own = await store(B, testBytes(4_321, 'other'), 'other.pvmp');
      const image = await createImage(
        B.runtime,
        cliActor,
        { name: 'Other', arm64: { enabled: true, sha256: own } },
        'http://x',
      );
      await createGroup(B.runtime, cliActor, {
        name: 'Engineering',
        imageId: image.id,
      });
      const before = await snapshot(B);
      const post = (body: Buffer) =>
        fetch(`${B.url}/api/v1/import`, {
          method: 'POST',
          headers: {
            Authorization: `Bearer ${token}`,
            'Content-Type': 'application/x-tar',
          },
          body,
        });
      const conflict = await post(full.tar);
      expect(conflict.status).toBe(409);
      expect(((await conflict.json()) as { error: { code: string } }).error.code).toBe('BUNDLE_CONFLICT');
      expect(await snapshot(B)).toEqual(before);

      const tampered = Buffer.from(
        (
          await exportToBuffer(A, {
            images: ['macOS Sonoma'],
            includeBlobs: true,
          })
        ).tar,
      );
      const at = headerOffset(tampered, blobEntryName(seedA.mac)) + 512 + 100;
      tampered[at] = tampered[at]! ^ 0xff;
      const bad = await post(tampered);
      expect(bad.status).toBe(422);
      expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('DIGEST_MISMATCH');
      expect(await snapshot(B)).toEqual(before);
    } finally {
      await B.close();
    }
  });
});
