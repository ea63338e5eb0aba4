/** Moving blobs out of sight (delete, quarantine), listing them, and clearing what dead processes left in tmp/. */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { BlobInfo, DetachedBlob } from './blob-store.js';
import { isSha256, type Sha256 } from './digest.js';
import { DATA_DIR_MODE, ensureDir } from './file-modes.js';
import { isErrno, isLiveWriter } from './fs-utils.js';
import { parseDetachedFile, tmpFileOwnerPid, type Layout } from './layout.js';
import { statBlob } from './reading.js';

/**
 * The first half of a delete, for use inside the transaction that removes
 * the blob's row: moves the file out of blobs/ into tmp/ (one rename), so a
 * crash before the commit leaves a row and a file that recoverDetached()
 * puts back. Call discard() on the result once the transaction committed.
 * Null when there was no file.
 */
export async function detachBlob(layout: Layout, sha256: Sha256): Promise<DetachedBlob | null> {
  const target = layout.detachedFile(sha256);
  try {
    await fs.rename(layout.blobFile(sha256), target);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw err;
  }
  return { discard: () => fs.rm(target, { force: true }) };
}

/**
 * Finishes the deletes of dead processes: a detached file whose row still
 * exists (the process died before its transaction committed) goes back
 * into blobs/, any other is removed. Returns what was restored and removed.
 */
export async function recoverDetached(
  layout: Layout,
  hasRow: (sha256: Sha256) => Promise<boolean>,
): Promise<{ restored: Sha256[]; removed: Sha256[] }> {
  const result = { restored: [] as Sha256[], removed: [] as Sha256[] };
  for (const name of await fs.readdir(layout.tmpDir)) {
    const detached = parseDetachedFile(name);
    if (!detached || isLiveWriter(detached.pid)) continue;
    const file = path.join(layout.tmpDir, name);
    if ((await hasRow(detached.sha256)) && !(await statBlob(layout, detached.sha256))) {
      await ensureDir(layout.blobDir(detached.sha256), DATA_DIR_MODE);
      await fs.rename(file, layout.blobFile(detached.sha256));
      result.restored.push(detached.sha256);
    } else {
      await fs.rm(file, { force: true });
      result.removed.push(detached.sha256);
    }
  }
  return result;
}

/** Every committed blob, in digest order; stray names in the tree are skipped. */
export async function* listBlobs(layout: Layout): AsyncIterable<BlobInfo> {
  for (const fanout of (await fs.readdir(layout.blobsDir)).sort()) {
    if (!/^[0-9a-f]{2}$/.test(fanout)) continue;
    const dir = path.join(layout.blobsDir, fanout);
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (err) {
      if (isErrno(err, 'ENOTDIR') || isErrno(err, 'ENOENT')) continue;
      throw err;
    }
    for (const name of names.sort()) {
      if (!isSha256(name) || !name.startsWith(fanout)) continue;
      const info = await statBlob(layout, name);
      if (info) yield info;
    }
  }
}

export async function quarantineBlob(layout: Layout, sha256: Sha256, atMs: number): Promise<string | null> {
  const target = layout.quarantineFile(sha256, atMs);
  try {
    await fs.rename(layout.blobFile(sha256), target);
    return target;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw err;
  }
}

export async function removeStaleTmpFiles(layout: Layout): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(layout.tmpDir)) {
    const pid = tmpFileOwnerPid(name);
    if (pid === null || isLiveWriter(pid)) continue;
    const file = path.join(layout.tmpDir, name);
    await fs.rm(file, { force: true });
    removed.push(file);
  }
  return removed;
}
