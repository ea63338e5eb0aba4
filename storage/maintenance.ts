/** Moving blobs out of sight (delete, quarantine), listing them, and clearing what dead processes left in tmp/. */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { DetachedBlob, LeftDetached, ListedBlob, StaleTmpOptions } from './blob-store.js';
import { isSha256, type Sha256 } from './digest.js';
import { DATA_DIR_MODE, ensureDir } from './file-modes.js';
import { isErrno, isLiveWriter } from './fs-utils.js';
import { parseDetachedFile, tmpFileWriter, type Layout } from './layout.js';
import { statBlob } from './reading.js';

/**
 * The first half of a delete, for use inside the transaction that removes
 * the blob's row: moves the file out of blobs/ into tmp/ (one rename), so a
 * crash before the commit leaves a row and a file that leftDetached()
 * offers back. Call discard() on the result once the transaction committed.
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
 * The files detach() left in tmp/ for deletes that never reached discard()
 * (the deleting process died, or has not got there yet). The caller decides
 * each one inside the blob lock, against the row: restore() puts the file
 * back (false when a file is already in place, which the caller then
 * discards), discard() removes it.
 */
export async function leftDetached(layout: Layout): Promise<LeftDetached[]> {
  const left: LeftDetached[] = [];
  for (const name of await fs.readdir(layout.tmpDir)) {
    const detached = parseDetachedFile(name);
    // Another live process finishes its own; this process's are decided like any other (see above).
    const file = path.join(layout.tmpDir, name);
    if (!detached || (await isLiveWriter(detached, file))) continue;
    const { sha256 } = detached;
    left.push({
      sha256,
      async restore() {
        if (await statBlob(layout, sha256)) return false;
        await ensureDir(layout.blobDir(sha256), DATA_DIR_MODE);
        await fs.rename(file, layout.blobFile(sha256));
        return true;
      },
      discard: () => fs.rm(file, { force: true }),
    });
  }
  return left;
}

/** Every committed blob, in digest order; stray names in the tree are skipped. */
export async function* listBlobs(layout: Layout): AsyncIterable<ListedBlob> {
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
      const st = await fs.stat(path.join(dir, name)).catch((err: unknown) => {
        if (isErrno(err, 'ENOENT')) return null;
        throw err;
      });
      if (st) yield { sha256: name, size: st.size, modifiedMs: st.mtimeMs };
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

export async function removeStaleTmpFiles(layout: Layout, options: StaleTmpOptions = {}): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(layout.tmpDir)) {
    const writer = tmpFileWriter(name);
    const file = path.join(layout.tmpDir, name);
    if (writer === null || (await isLiveWriter(writer, file, options.whileRunning))) continue;
    await fs.rm(file, { force: true });
    removed.push(file);
  }
  return removed;
}
