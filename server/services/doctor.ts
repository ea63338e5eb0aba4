/**
 * `goldmirror doctor`: a health report of one data directory, for the admin
 * at a terminal: config, data dir, database, where the blobs are (on S3: the
 * bucket answers and takes a probe write and delete), free space of the data
 * dir, and blob files or objects that disagree with the database (orphaned,
 * missing, wrong size). It changes nothing but that probe object.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { formatMode, looseModes } from '../../storage/file-modes.js';
import { quickCheck } from '../db/dialect.js';
import { listBlobsByDigest } from '../db/repos/blobs.js';
import { appliedMigrations, countTableRows } from '../db/repos/database.js';
import { redactedUrl } from '../db/open.js';
import { INITIAL_PASSWORD_FILE } from './auth/credentials.js';
import type { ServiceDeps } from './deps.js';
import { isError } from '../errors.js';

export interface DoctorReport {
  ok: boolean;
  config: Record<string, unknown>;
  dataDir: { path: string; writable: boolean };
  database: {
    engine: 'sqlite' | 'postgres';
    /** The SQLite file, or the PostgreSQL URL without its password. */
    file: string;
    integrity: string;
    migrations: string[];
    blobs: number;
    images: number;
    groups: number;
    users: number;
  };
  /** Where the blobs are: the blobs directory, or a bucket. */
  storage: {
    kind: 'fs' | 's3';
    /** The blobs directory, or "bucket b at <endpoint>" (never a credential). */
    location: string;
    /** The bucket answered (fs: always). */
    reachable: boolean;
    /** The bucket took a write and a delete of a probe object (fs: the data dir is writable). */
    writable: boolean;
    /** Blob files or objects found, and their bytes; null when they could not be listed. */
    blobs: number | null;
    bytes: number | null;
  };
  /** Free space of the local data directory (on S3 it holds temp files and uploads, not blobs). */
  disk: { freeBytes: number; totalBytes: number; minFreeBytes: number; ok: boolean };
  files: {
    orphaned: string[];
    missing: string[];
    wrongSize: Array<{ sha256: string; expected: number; actual: number }>;
    corrupt: string[];
    tmpFiles: number;
    quarantined: number;
    unfinishedUploads: number;
  };
  /** Files and directories readable or writable by more than they should be (storage/file-modes.ts). */
  permissions: Array<{ path: string; found: string; wanted: string }>;
  problems: string[];
  /** Worth fixing, but the mirror works: they do not make `ok` false. */
  warnings: string[];
}

/** Loose blob files are summed up after this many, so a whole store of them stays readable. */
const NAMED_LOOSE_FILES = 5;

const SECRET_KEYS = new Set(['adminPassword', 'syncToken', 's3SecretAccessKey']);

export async function runDoctor(deps: Pick<ServiceDeps, 'config' | 'db' | 'store'>): Promise<DoctorReport> {
  const { config, db, store } = deps;
  const problems: string[] = [];
  const redacted = Object.fromEntries(
    Object.entries(config).map(([k, v]) => [
      k,
      k === 'databaseUrl' && typeof v === 'string' && v ? redactedUrl(v) : SECRET_KEYS.has(k) && v ? '(set)' : v,
    ]),
  );

  let writable = true;
  try {
    await fs.access(store.layout.tmpDir, fs.constants.W_OK);
  } catch {
    writable = false;
    problems.push(`the data directory ${store.layout.root} is not writable`);
  }

  const integrity = await quickCheck(db);
  if (integrity !== 'ok') problems.push(`database integrity check: ${integrity}`);
  const migrations = await appliedMigrations(db);
  const count = (table: 'blobs' | 'images' | 'groups' | 'users') => countTableRows(db, table);

  const usage = await store.diskUsage();
  const diskOk = usage.freeBytes >= config.minFreeBytes;
  if (!diskOk) problems.push(`only ${usage.freeBytes} bytes free, below the minimum of ${config.minFreeBytes}`);

  const storage = await checkStorage(store, writable);
  if (storage.problem) problems.push(storage.problem);

  const rows = await listBlobsByDigest(db);
  const bySha = new Map(rows.map((r) => [r.sha256, r]));
  const onDisk = new Map<string, number>();
  let listed = storage.reachable;
  if (listed) {
    try {
      for await (const blob of store.list()) onDisk.set(blob.sha256, blob.size);
    } catch (err) {
      listed = false;
      onDisk.clear();
      problems.push(`could not list the blobs in ${store.location}: ${(err as Error).message}`);
    }
  }
  const noun = store.kind === 's3' ? 'object' : 'file';
  const orphaned = [...onDisk.keys()].filter((sha) => !bySha.has(sha));
  const missing = listed ? rows.filter((r) => r.state !== 'corrupt' && !onDisk.has(r.sha256)).map((r) => r.sha256) : [];
  const wrongSize = rows
    .filter((r) => onDisk.has(r.sha256) && onDisk.get(r.sha256) !== r.size)
    .map((r) => ({ sha256: r.sha256, expected: r.size, actual: onDisk.get(r.sha256)! }));
  const corrupt = rows.filter((r) => r.state !== 'ok').map((r) => r.sha256);
  if (orphaned.length)
    problems.push(
      `${orphaned.length} blob ${noun}(s) have no database row (goldmirror gc removes them after the grace period)`,
    );
  if (missing.length) problems.push(`${missing.length} package(s) are registered but their ${noun}s are missing`);
  if (wrongSize.length) problems.push(`${wrongSize.length} package ${noun}(s) have the wrong size`);
  if (corrupt.length) problems.push(`${corrupt.length} package(s) are marked corrupt or missing; re-import them`);

  const loose = await looseModes(store.layout, [path.join(store.layout.root, INITIAL_PASSWORD_FILE)]);
  const warnings = loose
    .slice(0, NAMED_LOOSE_FILES)
    .map(
      (l) =>
        `${l.path} has mode ${formatMode(l.found)}, looser than ${formatMode(l.wanted)} (fix: chmod ${formatMode(l.wanted).slice(1)} '${l.path}')`,
    );
  if (loose.length > NAMED_LOOSE_FILES) {
    warnings.push(
      `${loose.length - NAMED_LOOSE_FILES} more file(s) or directories in ${store.layout.root} have looser modes than wanted (see --json)`,
    );
  }

  const countDir = async (dir: string, filter: (name: string) => boolean = () => true) =>
    (await fs.readdir(dir).catch(() => [] as string[])).filter(filter).length;

  return {
    ok: problems.length === 0,
    config: redacted,
    dataDir: { path: store.layout.root, writable },
    database: {
      engine: config.databaseUrl ? 'postgres' : 'sqlite',
      file: config.databaseUrl ? redactedUrl(config.databaseUrl) : store.layout.dbFile,
      integrity,
      migrations,
      blobs: await count('blobs'),
      images: await count('images'),
      groups: await count('groups'),
      users: await count('users'),
    },
    storage: {
      kind: store.kind,
      location: store.location,
      reachable: storage.reachable,
      writable: storage.writable,
      blobs: listed ? onDisk.size : null,
      bytes: listed ? [...onDisk.values()].reduce((n, size) => n + size, 0) : null,
    },
    disk: { freeBytes: usage.freeBytes, totalBytes: usage.totalBytes, minFreeBytes: config.minFreeBytes, ok: diskOk },
    files: {
      orphaned,
      missing,
      wrongSize,
      corrupt,
      tmpFiles: await countDir(store.layout.tmpDir),
      quarantined: await countDir(store.layout.quarantineDir),
      unfinishedUploads: await countDir(store.layout.uploadsDir, (n) => !n.endsWith('.json') && path.extname(n) === ''),
    },
    permissions: loose.map((l) => ({ path: l.path, found: formatMode(l.found), wanted: formatMode(l.wanted) })),
    problems,
    warnings,
  };
}

/** On S3: the bucket answers, then takes a probe write and delete. The data dir's own check stands for fs. */
async function checkStorage(
  store: ServiceDeps['store'],
  dataDirWritable: boolean,
): Promise<{ reachable: boolean; writable: boolean; problem: string | null }> {
  if (!store.checkBucket) return { reachable: true, writable: dataDirWritable, problem: null };
  try {
    await store.checkBucket({ write: true });
    return { reachable: true, writable: true, problem: null };
  } catch (err) {
    const reachable = isError(err) && err.details.problem === 'not writable';
    return { reachable, writable: false, problem: (err as Error).message };
  }
}
