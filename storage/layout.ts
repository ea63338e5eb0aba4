/**
 * The only module that builds paths inside the data directory.
 *
 *   <data>/
 *     goldmirror.db                 SQLite database (+ -wal, -shm)
 *     blobs/sha256/<aa>/<aabb…>     committed blobs, named by their full digest,
 *                                   fanned out by the first two hex digits
 *     tmp/ingest-<writer>-<rand>.part  ingests in progress; same filesystem
 *                                   as blobs/ so the final rename is atomic
 *     tmp/delete-<writer>-<digest>  a blob moved out of blobs/ by a delete
 *                                   whose row change has not committed yet
 *                                   (<writer> = <pid>@<host>: nodes on several
 *                                   boxes may share one data directory)
 *     quarantine/<digest>-<time>    blobs that failed verification, kept for
 *                                   inspection, never served
 *     uploads/<id>, <id>.json       resumable browser uploads in progress (tus);
 *                                   adopted into blobs/ by rename once verified
 *
 * Every name that ends up in a path comes from a validated digest or from
 * this process; nothing a client or an archive sends is ever used here.
 * The modes these get are in file-modes.ts.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { isSha256, type Sha256 } from './digest.js';

const TMP_PREFIX = 'ingest-';
const TMP_SUFFIX = '.part';
const DETACHED_PREFIX = 'delete-';

export interface Layout {
  readonly root: string;
  readonly dbFile: string;
  readonly blobsDir: string;
  readonly tmpDir: string;
  readonly quarantineDir: string;
  readonly uploadsDir: string;
  blobDir(sha256: Sha256): string;
  blobFile(sha256: Sha256): string;
  newTmpFile(): string;
  detachedFile(sha256: Sha256): string;
  quarantineFile(sha256: Sha256, atMs: number): string;
}

export function createLayout(dataDir: string): Layout {
  const root = path.resolve(dataDir);
  const blobsDir = path.join(root, 'blobs', 'sha256');
  const tmpDir = path.join(root, 'tmp');
  const quarantineDir = path.join(root, 'quarantine');
  const assertDigest = (sha256: string): void => {
    // Belt and braces: callers pass parsed digests, but a path must never be
    // built from anything else.
    if (!isSha256(sha256)) throw new Error(`not a sha256 digest: ${JSON.stringify(sha256)}`);
  };
  return Object.freeze({
    root,
    dbFile: path.join(root, 'goldmirror.db'),
    blobsDir,
    tmpDir,
    quarantineDir,
    uploadsDir: path.join(root, 'uploads'),
    blobDir(sha256: Sha256) {
      assertDigest(sha256);
      return path.join(blobsDir, sha256.slice(0, 2));
    },
    blobFile(sha256: Sha256) {
      assertDigest(sha256);
      return path.join(blobsDir, sha256.slice(0, 2), sha256);
    },
    newTmpFile() {
      return path.join(tmpDir, `${TMP_PREFIX}${thisWriter}-${randomBytes(8).toString('hex')}${TMP_SUFFIX}`);
    },
    detachedFile(sha256: Sha256) {
      assertDigest(sha256);
      return path.join(tmpDir, `${DETACHED_PREFIX}${thisWriter}-${sha256}`);
    },
    quarantineFile(sha256: Sha256, atMs: number) {
      assertDigest(sha256);
      return path.join(quarantineDir, `${sha256}-${atMs}`);
    },
  });
}

/** This machine's name as it appears in temp file names (letters, digits, dots and dashes only). */
export const thisHost = hostLabel(os.hostname());
/** `<pid>@<host>`: who wrote a temp file, so clean-up can tell a dead writer's leftovers from a live one's. */
export const thisWriter = `${process.pid}@${thisHost}`;

function hostLabel(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9.-]/g, '-')
      .slice(0, 63) || 'host'
  );
}

/** The process that wrote a temp file: its PID and machine (null host: a name from before hosts were recorded). */
export interface TmpFileWriter {
  pid: number;
  host: string | null;
}

/** The writer encoded in a temp file name, or null when the name is not one of ours. */
export function tmpFileWriter(fileName: string): TmpFileWriter | null {
  const match = /^ingest-(\d+)(?:@([a-z0-9.-]+))?-[0-9a-f]+\.part$/.exec(fileName);
  return match?.[1] ? { pid: Number(match[1]), host: match[2] ?? null } : null;
}

/** The deleting process and the digest of a detached blob's file name, or null when the name is not one. */
export function parseDetachedFile(fileName: string): (TmpFileWriter & { sha256: Sha256 }) | null {
  const match = /^delete-(\d+)(?:@([a-z0-9.-]+))?-([0-9a-f]{64})$/.exec(fileName);
  if (!match?.[1] || !match[3] || !isSha256(match[3])) return null;
  return { pid: Number(match[1]), host: match[2] ?? null, sha256: match[3] };
}
