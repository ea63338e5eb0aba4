/**
 * Shared pieces of the bundle tests: seeding a mirror with images, groups and
 * packages through the real services, snapshots of everything an import could
 * touch (tables and files), and hand-built tar archives for hostile cases.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { expect } from 'vitest';
import { exportBundle } from '../../server/bundles/export.js';
import { buildManifest, type ExportOptions } from '../../server/services/bundle-manifest.js';
import { blobEntryName, MANIFEST_ENTRY, type Manifest } from '../../server/bundles/manifest.js';
import type { Db } from '../../server/db/open.js';
import { createLogger } from '../../server/log.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import { cliActor } from '../../server/services/audit.js';
import { createGroup } from '../../server/services/groups.js';
import { createImage } from '../../server/services/images.js';
import { ingest } from '../../server/services/ingest.js';
import { storedFiles } from '../helpers/blobs.js';
import { cliArgs, repoRoot } from '../helpers/cli.js';
import { makeTempDir, sha256Hex, testBytes, testConfig } from '../helpers/env.js';
import { withTestDatabase } from '../helpers/database.js';
import { withTestStorage } from '../helpers/s3.js';

/** Anything with a runtime: a TestMirror (with server) or a LocalMirror (data dir only). */
export interface HasRuntime {
  dir: string;
  runtime: Runtime;
}

export interface LocalMirror extends HasRuntime {
  close(): Promise<void>;
}

/** A data dir with store and database but no HTTP server (cheap; for library-only tests). */
export async function openLocal(dir?: string): Promise<LocalMirror> {
  const root = dir ?? (await makeTempDir('goldmirror-bundle-'));
  const runtime = await openRuntime(testConfig(root), createLogger('silent'));
  return {
    dir: root,
    runtime,
    async close() {
      await runtime.close();
      if (!dir) await fs.rm(root, { recursive: true, force: true });
    },
  };
}

export async function store(m: HasRuntime, data: Buffer, fileName: string): Promise<string> {
  const { blob } = await ingest(m.runtime.ingestDeps, {
    source: [data],
    fileName,
  });
  return blob.sha256;
}

export interface Seed {
  /** digest → bytes of every package the seed stored. */
  bytes: Map<string, Buffer>;
  winArm: string;
  winX86: string;
  mac: string;
  linux: string;
}

/**
 * Three images over four packages, odd sizes so tar padding is exercised:
 * Windows 11 (both arches), macOS Sonoma (arm64 only), Ubuntu (x86_64 package
 * stored but disabled); groups Engineering (primary, key, Windows),
 * Design (key, macOS), Interns (nothing).
 */
export async function seed(
  m: HasRuntime,
  tag = 'seed',
  sizes = {
    winArm: 1024 * 1024 + 333,
    winX86: 777_777,
    mac: 65_537,
    linux: 4_097,
  },
): Promise<Seed> {
  const bytes = new Map<string, Buffer>();
  const put = async (size: number, name: string): Promise<string> => {
    const data = testBytes(size, `${tag}-${name}`);
    const sha = await store(m, data, name);
    bytes.set(sha, data);
    return sha;
  };
  const winArm = await put(sizes.winArm, 'Windows 11 ARM.pvmp');
  const winX86 = await put(sizes.winX86, 'Windows 11 Intel.pvmp');
  const mac = await put(sizes.mac, 'macOS Sonoma.pvmp');
  const linux = await put(sizes.linux, 'Ubuntu 24.04.pvmp');
  const deps = m.runtime;
  const win = await createImage(
    deps,
    cliActor,
    {
      name: 'Windows 11',
      description: 'Corporate build',
      arm64: { enabled: true, sha256: winArm },
      x86_64: { enabled: true, sha256: winX86 },
    },
    'http://x',
  );
  const macImage = await createImage(
    deps,
    cliActor,
    { name: 'macOS Sonoma', arm64: { enabled: true, sha256: mac } },
    'http://x',
  );
  await createImage(
    deps,
    cliActor,
    {
      name: 'Ubuntu',
      description: 'lab only',
      x86_64: { enabled: false, sha256: linux },
    },
    'http://x',
  );
  await createGroup(deps, cliActor, {
    name: 'Engineering',
    licenseKey: 'ENG-0001-KEY',
    primary: true,
    imageId: win.id,
  });
  await createGroup(deps, cliActor, {
    name: 'Design',
    licenseKey: 'DES-0002-KEY',
    imageId: macImage.id,
  });
  await createGroup(deps, cliActor, { name: 'Interns' });
  return { bytes, winArm, winX86, mac, linux };
}

/** What a mirror holds, independent of local ids and times: comparable across mirrors. */
export async function logical(db: Db): Promise<{ images: unknown[]; groups: unknown[]; blobs: unknown[] }> {
  const images = await db
    .selectFrom('images')
    .select(['name', 'description', 'arm64_enabled', 'arm64_sha256', 'x86_64_enabled', 'x86_64_sha256'])
    .orderBy('name')
    .execute();
  const groups = await db
    .selectFrom('groups')
    .leftJoin('images', 'images.id', 'groups.image_id')
    .select(['groups.name', 'groups.license_key', 'groups.is_primary', 'images.name as image'])
    .orderBy('groups.name')
    .execute();
  const blobs = await db.selectFrom('blobs').select(['sha256', 'size', 'name', 'state']).orderBy('sha256').execute();
  return { images, groups, blobs };
}

/** Everything an import may touch: full rows (times and ids included), the audit log size, and the files or objects. */
export async function snapshot(m: HasRuntime): Promise<unknown> {
  const db = m.runtime.db;
  const layout = m.runtime.store.layout;
  const audit = await db
    .selectFrom('audit_log')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return {
    blobs: await db.selectFrom('blobs').selectAll().orderBy('sha256').execute(),
    images: await db.selectFrom('images').selectAll().orderBy('id').execute(),
    groups: await db.selectFrom('groups').selectAll().orderBy('id').execute(),
    audit: Number(audit.n),
    blobFiles: await storedFiles(m, 'blobs'),
    tmpFiles: await storedFiles(m, 'tmp'),
    quarantine: await storedFiles(m, 'quarantine'),
    // Nothing may ever be written next to the data dir (path traversal).
    siblings: (await fs.readdir(path.dirname(layout.root))).filter((n) => /evil|^x$/.test(n)),
  };
}

export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of source) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

export async function exportToBuffer(
  m: HasRuntime,
  options: ExportOptions,
): Promise<{ manifest: Manifest; tar: Buffer }> {
  const manifest = await buildManifest(m.runtime, options);
  return {
    manifest,
    tar: await collect(exportBundle(m.runtime.store, manifest)),
  };
}

/** A byte stream of `buf` in slices whose sizes cycle through `sizes`. */
export function sliced(buf: Buffer, sizes: number[]): Readable {
  return Readable.from(
    (function* () {
      let i = 0;
      for (let at = 0; at < buf.length; i++) {
        const n = sizes[i % sizes.length]!;
        yield buf.subarray(at, at + n);
        at += n;
      }
    })(),
    { objectMode: false, highWaterMark: 1 },
  );
}

export interface TarEntrySpec {
  name: string;
  data?: Buffer;
  type?: tar.Header['type'];
  linkname?: string;
  pax?: Record<string, string>;
}

/** Builds a tar with tar-stream's pack(), entries exactly as given (no checks). */
export async function buildTar(entries: TarEntrySpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const out = collect(pack as unknown as AsyncIterable<Uint8Array>);
  for (const e of entries) {
    const header: Partial<tar.Header> & { name: string } = {
      name: e.name,
      type: e.type ?? 'file',
      mode: e.type === 'directory' ? 0o755 : 0o644,
      mtime: new Date(0),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.pax ? { pax: e.pax } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      if (e.data !== undefined)
        pack.entry({ ...header, size: e.data.length }, e.data, (err) => (err ? reject(err) : resolve()));
      else pack.entry({ ...header, size: 0 }, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  return out;
}

export function manifestEntry(manifest: unknown): TarEntrySpec {
  return { name: MANIFEST_ENTRY, data: Buffer.from(JSON.stringify(manifest)) };
}

export function blobEntry(sha256: string, data: Buffer): TarEntrySpec {
  return { name: blobEntryName(sha256), data };
}

/** Offset of the 512-byte ustar header block whose name is `name`. */
export function headerOffset(archive: Buffer, name: string): number {
  for (let at = archive.indexOf(name); at !== -1; at = archive.indexOf(name, at + 1)) {
    if (at % 512 === 0 && archive[at + name.length] === 0) return at;
  }
  throw new Error(`no tar header named ${name}`);
}

export { sha256Hex };

/** A CLI child process with stdin/stdout as pipes (for `export -` | `import-bundle -`). */
export function spawnCliPiped(args: string[], env: Record<string, string>, stdin: 'pipe' | Readable = 'pipe') {
  return spawn(process.execPath, cliArgs(args), {
    cwd: repoRoot,
    env: { ...process.env, ...withTestStorage(withTestDatabase(env)) },
    stdio: [stdin, 'pipe', 'pipe'],
  });
}

export function cliEnv(dataDir: string): Record<string, string> {
  return {
    MIRROR_DATA_DIR: dataDir,
    MIRROR_MIN_FREE_BYTES: '0',
    MIRROR_LOG_LEVEL: 'silent',
    MIRROR_PUBLIC_URL: 'http://mirror.test',
    MIRROR_FETCH_ALLOW: '127.0.0.0/8',
  };
}

/** Runs the CLI and keeps stdout as bytes (a tar on stdout is binary). */
export function runCliBytes(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnCliPiped(args, env);
    child.stdin?.end();
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

/** The entries of a tar: name, type and content. */
export async function readTar(archive: Buffer): Promise<Array<{ name: string; type: string; data: Buffer }>> {
  const extract = tar.extract();
  const done = (async () => {
    const out: Array<{ name: string; type: string; data: Buffer }> = [];
    for await (const entry of extract)
      out.push({
        name: entry.header.name,
        type: String(entry.header.type),
        data: await collect(entry as AsyncIterable<Uint8Array>),
      });
    return out;
  })();
  extract.end(archive);
  return done;
}

/** Asymmetric matchers typed as strings (the lint rules refuse `any` inside objects). */
export const matching = (pattern: RegExp): string => expect.stringMatching(pattern) as string;
export const containing = (text: string): string => expect.stringContaining(text) as string;
