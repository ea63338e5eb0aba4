/**
 * File modes in the data dir (issue 12, item 9): what a fresh start creates,
 * whatever the umask; an operator's own data dir kept as it is; the first
 * admin password never written into a file someone else could open; and
 * `goldmirror doctor` naming everything looser than wanted.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Sha256 } from '../../storage/digest.js';
import { createLogger } from '../../server/log.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import { bootstrapAdmin, INITIAL_PASSWORD_FILE } from '../../server/services/auth.js';
import { runDoctor } from '../../server/services/doctor.js';
import { ingest, ingestUploadedFile } from '../../server/services/ingest.js';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, testBytes, testConfig } from '../helpers/env.js';

const modeOf = async (file: string): Promise<string> =>
  ((await fs.stat(file)).mode & 0o777).toString(8).padStart(3, '0');

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const undo of cleanups.splice(0).reverse()) await undo();
});

/** On embedded SQLite whatever the suite runs on: these modes are of the database file and its WAL and SHM. */
async function open(dataDir: string): Promise<Runtime> {
  const runtime = await openRuntime(testConfig(dataDir, { databaseUrl: '' }), createLogger('silent'));
  cleanups.push(() => runtime.close());
  return runtime;
}

async function tempParent(): Promise<string> {
  const parent = await makeTempDir('goldmirror-modes-');
  cleanups.push(() => fs.rm(parent, { recursive: true, force: true }));
  return parent;
}

describe('a fresh data dir', () => {
  it.each([
    ['000', 0o000],
    ['022', 0o022],
    ['077', 0o077],
  ])(
    'under umask %s: data dir 0750, store dirs 0750/0700, database, WAL, SHM, temp files, blobs and the first password 0600',
    async (_label, umask) => {
      const parent = await tempParent();
      const dataDir = path.join(parent, 'data');
      const previous = process.umask(umask);
      try {
        const runtime = await open(dataDir);
        const { layout } = runtime.store;
        const data = testBytes(70_000, 'modes');

        // A temp file is private from its first byte: look at it while the ingest waits for more input.
        let sawTmp: string[] = [];
        const source = (async function* () {
          yield data.subarray(0, 1000);
          await new Promise((r) => setTimeout(r, 1));
          const names = await fs.readdir(layout.tmpDir);
          sawTmp = await Promise.all(names.map((n) => modeOf(path.join(layout.tmpDir, n))));
          yield data.subarray(1000);
        })();
        const { blob } = await ingest(runtime.ingestDeps, { source, fileName: 'modes.pvmp' });
        const sha = blob.sha256 as Sha256;
        // A finished resumable upload is adopted by rename; the file the upload library wrote may be 0644.
        const uploaded = path.join(layout.uploadsDir, 'finished-upload');
        await fs.writeFile(uploaded, testBytes(5000, 'uploaded'));
        await fs.chmod(uploaded, 0o644);
        const adopted = await ingestUploadedFile(runtime.ingestDeps, { file: uploaded, fileName: 'uploaded.pvmp' });
        const admin = await bootstrapAdmin(runtime, layout.root, undefined);
        expect(admin.passwordFile).toBe(path.join(layout.root, INITIAL_PASSWORD_FILE));

        expect(sawTmp).toEqual(['600']);
        expect({
          dataDir: await modeOf(layout.root),
          blobsDir: await modeOf(path.dirname(layout.blobsDir)),
          sha256Dir: await modeOf(layout.blobsDir),
          fanoutDir: await modeOf(layout.blobDir(sha)),
          tmpDir: await modeOf(layout.tmpDir),
          uploadsDir: await modeOf(layout.uploadsDir),
          quarantineDir: await modeOf(layout.quarantineDir),
          database: await modeOf(layout.dbFile),
          wal: await modeOf(`${layout.dbFile}-wal`),
          shm: await modeOf(`${layout.dbFile}-shm`),
          blob: await modeOf(layout.blobFile(sha)),
          adoptedBlob: await modeOf(layout.blobFile(adopted.blob.sha256 as Sha256)),
          initialPassword: await modeOf(admin.passwordFile!),
        }).toEqual({
          dataDir: '750',
          blobsDir: '750',
          sha256Dir: '750',
          fanoutDir: '750',
          tmpDir: '700',
          uploadsDir: '700',
          quarantineDir: '700',
          database: '600',
          wal: '600',
          shm: '600',
          blob: '600',
          adoptedBlob: '600',
          initialPassword: '600',
        });

        // A quarantined copy keeps its mode, in a directory only the owner can enter.
        await fs.appendFile(layout.blobFile(sha), 'rot');
        expect(await runtime.checker.check(sha)).toBe('corrupt');
        const [moved] = await fs.readdir(layout.quarantineDir);
        expect(await modeOf(path.join(layout.quarantineDir, moved!))).toBe('600');

        // And doctor has nothing to say about any of it.
        const report = await runDoctor(runtime);
        expect({ permissions: report.permissions, warnings: report.warnings }).toEqual({
          permissions: [],
          warnings: [],
        });
      } finally {
        process.umask(previous);
      }
    },
  );

  it('a data dir the operator made is kept as it is, and doctor names it', async () => {
    const parent = await tempParent();
    const dataDir = path.join(parent, 'mine');
    await fs.mkdir(dataDir);
    await fs.chmod(dataDir, 0o755);
    const runtime = await open(dataDir);
    expect(await modeOf(dataDir)).toBe('755');
    const report = await runDoctor(runtime);
    expect(report.permissions).toEqual([{ path: runtime.store.layout.root, found: '0755', wanted: '0750' }]);
    expect(report.warnings).toEqual([
      `${runtime.store.layout.root} has mode 0755, looser than 0750 (fix: chmod 750 '${runtime.store.layout.root}')`,
    ]);
    expect(report.ok).toBe(true);
  });
});

describe('the first admin password', () => {
  it('never lands in a looser file that was already there: a fresh 0600 file replaces it', async () => {
    const parent = await tempParent();
    const runtime = await open(parent);
    const file = path.join(runtime.store.layout.root, INITIAL_PASSWORD_FILE);
    await fs.writeFile(file, 'left over\n');
    await fs.chmod(file, 0o644);
    // Someone who could read the old file keeps it open across the start.
    const spy = await fs.open(file, 'r');
    try {
      const admin = await bootstrapAdmin(runtime, runtime.store.layout.root, undefined);
      expect(await modeOf(file)).toBe('600');
      expect(await fs.readFile(file, 'utf8')).toBe(`${admin.generatedPassword}\n`);
      // What that reader sees is still the old content: the secret was never written into the file it holds.
      expect(await spy.readFile({ encoding: 'utf8' })).toBe('left over\n');
      const leftovers = (await fs.readdir(runtime.store.layout.root)).filter(
        (n) => n.includes(INITIAL_PASSWORD_FILE) && n !== INITIAL_PASSWORD_FILE,
      );
      expect(leftovers).toEqual([]);
    } finally {
      await spy.close();
    }
  });
});

describe('goldmirror doctor', () => {
  it('names the first five loose files and counts the rest, so a whole old store stays readable', async () => {
    const runtime = await open(await tempParent());
    const files: string[] = [];
    for (let i = 0; i < 7; i++) {
      const { blob } = await ingest(runtime.ingestDeps, {
        source: [testBytes(100 + i, `many-${i}`)],
        fileName: 'm.pvmp',
      });
      files.push(runtime.store.layout.blobFile(blob.sha256 as Sha256));
    }
    for (const file of files) await fs.chmod(file, 0o640);
    const report = await runDoctor(runtime);
    expect(report.permissions.map((p) => [p.path, p.found, p.wanted])).toEqual(
      [...files].sort().map((f) => [f, '0640', '0600']),
    );
    expect(report.warnings).toHaveLength(6);
    expect(report.warnings[5]).toBe(
      `2 more file(s) or directories in ${runtime.store.layout.root} have looser modes than wanted (see --json)`,
    );
  });

  it('warns about each looser mode, naming the file, the mode found and the mode wanted; exit code stays 0', async () => {
    const parent = await tempParent();
    const dataDir = path.join(parent, 'data');
    const env = {
      MIRROR_DATA_DIR: dataDir,
      MIRROR_DATABASE_URL: '',
      MIRROR_MIN_FREE_BYTES: '0',
      MIRROR_LOG_LEVEL: 'silent',
    };
    const runtime = await open(dataDir);
    const { layout } = runtime.store;
    const { blob } = await ingest(runtime.ingestDeps, {
      source: [testBytes(3000, 'doctor-modes')],
      fileName: 'd.pvmp',
    });
    const blobFile = layout.blobFile(blob.sha256 as Sha256);
    await runtime.close();
    cleanups.pop();
    // What an older goldmirror (or a careless restore) left: world-readable files.
    await fs.chmod(layout.dbFile, 0o644);
    await fs.chmod(blobFile, 0o644);
    await fs.chmod(layout.quarantineDir, 0o755);

    const result = await runCli(['doctor', '--json'], env);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { ok: boolean; permissions: unknown[]; warnings: string[] };
    expect(report.ok).toBe(true);
    // SQLite gives the -wal and -shm files it creates the database file's mode: they are as loose as it is.
    expect(report.permissions).toEqual([
      { path: layout.quarantineDir, found: '0755', wanted: '0700' },
      { path: layout.dbFile, found: '0644', wanted: '0600' },
      { path: `${layout.dbFile}-wal`, found: '0644', wanted: '0600' },
      { path: `${layout.dbFile}-shm`, found: '0644', wanted: '0600' },
      { path: blobFile, found: '0644', wanted: '0600' },
    ]);
    expect(report.warnings).toEqual([
      `${layout.quarantineDir} has mode 0755, looser than 0700 (fix: chmod 700 '${layout.quarantineDir}')`,
      `${layout.dbFile} has mode 0644, looser than 0600 (fix: chmod 600 '${layout.dbFile}')`,
      `${layout.dbFile}-wal has mode 0644, looser than 0600 (fix: chmod 600 '${layout.dbFile}-wal')`,
      `${layout.dbFile}-shm has mode 0644, looser than 0600 (fix: chmod 600 '${layout.dbFile}-shm')`,
      `${blobFile} has mode 0644, looser than 0600 (fix: chmod 600 '${blobFile}')`,
    ]);

    const text = await runCli(['doctor'], env);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`warnings:\n  - ${layout.quarantineDir} has mode 0755, looser than 0700`);
    expect(text.stdout).toContain(`${layout.dbFile} has mode 0644, looser than 0600`);
  });
});
