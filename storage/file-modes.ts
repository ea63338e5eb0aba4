/**
 * File modes of everything goldmirror creates in the data directory, and the
 * helpers that set them at creation time whatever the process umask is.
 *
 *   data dir, blobs/ tree                      0750  the group may list and traverse (du, monitoring)
 *   tmp/, uploads/, quarantine/                0700  partial, unverified or corrupt bytes; nobody else's business
 *   every file: blobs, temp files, database,   0600  read only by this process: downloads are served by
 *   -wal, -shm, initial-admin-password               goldmirror (logged, counted, withheld when corrupt),
 *                                                    never by a web server reading the directory
 *
 * A mode is applied with fchmod on the descriptor that created the file, before
 * a byte is written: the umask can only have narrowed the creation mode, so the
 * file is never looser than wanted, not even for a moment. Directories get an
 * exact chmod right after mkdir for the same reason. Existing directories and
 * files (an operator's own data dir, an older install) are left as they are;
 * `goldmirror doctor` reports the ones that are looser (see looseModes()).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Layout } from './layout.js';

export const DATA_DIR_MODE = 0o750;
export const PRIVATE_DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/**
 * Creates `dir` (and missing parents) when it does not exist; every directory
 * created here gets exactly `mode`. Resolves to whether `dir` was created.
 */
export async function ensureDir(dir: string, mode: number): Promise<boolean> {
  const first = await fs.mkdir(dir, { recursive: true, mode });
  if (first === undefined) return false;
  // mkdir reports the top-most directory it created; fix the mode of each from there down to `dir`.
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    await fs.chmod(at, mode);
    if (at === path.resolve(first) || at === path.dirname(at)) break;
  }
  return true;
}

/** Opens a new file (fails when it exists) with exactly `mode`, before anything is written to it. */
export async function createFile(file: string, mode: number = FILE_MODE): Promise<fs.FileHandle> {
  const handle = await fs.open(file, 'wx', mode);
  try {
    await handle.chmod(mode);
    return handle;
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs.rm(file, { force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * Writes a small secret (a password) to `file` with mode 0600: a fresh temp
 * file is created 0600, written, fsynced and renamed over `file`, so the
 * secret never lands in a file someone else could open, even when `file`
 * already existed with a looser mode.
 */
export async function writePrivateFile(file: string, content: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  let renamed = false;
  try {
    const handle = await createFile(tmp, FILE_MODE);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
    renamed = true;
  } finally {
    if (!renamed) await fs.rm(tmp, { force: true }).catch(() => undefined);
  }
}

export interface LooseMode {
  path: string;
  /** Permission bits found, e.g. 0o644. */
  found: number;
  /** The loosest mode that is fine, e.g. 0o600. */
  wanted: number;
}

/** Permission bits of `file` beyond `wanted`, or null when it is fine or missing. */
export async function looseMode(file: string, wanted: number): Promise<LooseMode | null> {
  const st = await fs.lstat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!st) return null;
  const found = st.mode & 0o777;
  return (found & ~wanted) === 0 ? null : { path: file, found, wanted };
}

/** `0644`: how modes are written in messages and in chmod. */
export function formatMode(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/**
 * Everything in the data dir that is looser than the modes above: the
 * directories, the database and its -wal/-shm, `privateFiles` (secrets kept
 * next to them) and every blob file. Missing ones are skipped.
 */
export async function looseModes(layout: Layout, privateFiles: string[] = []): Promise<LooseMode[]> {
  const wanted: Array<[string, number]> = [
    [layout.root, DATA_DIR_MODE],
    [path.dirname(layout.blobsDir), DATA_DIR_MODE],
    [layout.blobsDir, DATA_DIR_MODE],
    [layout.tmpDir, PRIVATE_DIR_MODE],
    [layout.uploadsDir, PRIVATE_DIR_MODE],
    [layout.quarantineDir, PRIVATE_DIR_MODE],
    [layout.dbFile, FILE_MODE],
    [`${layout.dbFile}-wal`, FILE_MODE],
    [`${layout.dbFile}-shm`, FILE_MODE],
    ...privateFiles.map((file): [string, number] => [file, FILE_MODE]),
  ];
  for (const fanout of (await fs.readdir(layout.blobsDir).catch(() => [] as string[])).sort()) {
    const dir = path.join(layout.blobsDir, fanout);
    wanted.push([dir, DATA_DIR_MODE]);
    for (const name of (await fs.readdir(dir).catch(() => [] as string[])).sort())
      wanted.push([path.join(dir, name), FILE_MODE]);
  }
  const loose: LooseMode[] = [];
  for (const [file, mode] of wanted) {
    const found = await looseMode(file, mode);
    if (found) loose.push(found);
  }
  return loose;
}
