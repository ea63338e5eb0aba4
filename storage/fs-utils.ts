/** Small filesystem steps shared by the blob store's modules. */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import { thisHost, type TmpFileWriter } from './layout.js';

/** True when `err` is a Node system error with this errno `code` (ENOENT, ENOSPC, …). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** Changes whenever a file is replaced: a rename keeps inode and mtime, a re-ingest brings a new inode. */
export function fileVersion(st: { ino: number; mtimeMs: number; size: number }): string {
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
}

/** Makes a rename inside `dir` durable: without it a crash may forget the new name. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function fileExists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/** Free and total bytes of the filesystem holding `dir`. */
export async function diskUsage(dir: string): Promise<{ freeBytes: number; totalBytes: number }> {
  const st = await fs.statfs(dir);
  return { freeBytes: st.bavail * st.bsize, totalBytes: st.blocks * st.bsize };
}

/**
 * A temp file on another machine's name cannot be checked by PID: it counts as in use while it changed within this
 * long (an ingest writes continuously; a delete keeps its file only until its transaction commits).
 */
export const FOREIGN_TMP_STALE_MS = 60 * 60 * 1000;

/**
 * Whether a temp file's writer may still be working on it. On this machine: its PID is alive and is not this
 * process (clean-up runs before this process starts any ingest, so a file with our own PID was left by an earlier
 * process that had the same PID, common in containers where the server is always PID 1 or 7). On another machine
 * sharing the data directory: the file changed within FOREIGN_TMP_STALE_MS.
 */
export async function isLiveWriter(writer: TmpFileWriter, file: string, ownAlive = false): Promise<boolean> {
  const foreign = writer.host !== null && writer.host !== thisHost;
  const modifiedMs = foreign ? ((await fs.stat(file).catch(() => null))?.mtimeMs ?? null) : null;
  return writerMayBeAlive(writer, modifiedMs, ownAlive);
}

/**
 * isLiveWriter's rule for a temp file (or object) whose last change is known (null: it is gone). `ownAlive`: this
 * process's own files count as in use (a clean-up while it runs, not at its start).
 */
export function writerMayBeAlive(writer: TmpFileWriter, modifiedMs: number | null, ownAlive = false): boolean {
  if (writer.host !== null && writer.host !== thisHost) {
    return modifiedMs !== null && Date.now() - modifiedMs < FOREIGN_TMP_STALE_MS;
  }
  if (writer.pid === process.pid) return ownAlive;
  try {
    process.kill(writer.pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}
