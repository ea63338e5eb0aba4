/** Small filesystem steps shared by the blob store's modules. */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';

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
 * A temp file belongs to a live writer when its PID is alive and is not this
 * process: clean-up runs before this process starts any ingest, so a file
 * with our own PID was left by an earlier process that had the same PID
 * (common in containers, where the server is always PID 1 or 7).
 */
export function isLiveWriter(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}
