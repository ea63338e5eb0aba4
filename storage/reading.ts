/** Reading committed blobs: open with random access, size and version lookups. */
import { constants as fsConstants, readSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { BlobInfo, BlobReader } from './blob-store.js';
import type { Sha256 } from './digest.js';
import { AppError } from '../server/errors.js';
import { fileVersion, isErrno } from './fs-utils.js';
import type { Layout } from './layout.js';

/** Opens the blob's file; throws BLOB_UNKNOWN when it is missing. */
export async function openBlob(layout: Layout, sha256: Sha256): Promise<BlobReader> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(layout.blobFile(sha256), fsConstants.O_RDONLY);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw blobUnknown(sha256);
    throw err;
  }
  try {
    const st = await handle.stat();
    const size = st.size;
    return {
      size,
      version: fileVersion(st),
      read: async (target, length, position) => (await handle.read(target, 0, length, position)).bytesRead,
      readSync: (target, length, position) => readSync(handle.fd, target, 0, length, position),
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

export async function statBlob(layout: Layout, sha256: Sha256): Promise<BlobInfo | null> {
  try {
    const st = await fs.stat(layout.blobFile(sha256));
    return { sha256, size: st.size };
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw err;
  }
}

export async function blobVersion(layout: Layout, sha256: Sha256): Promise<string | null> {
  try {
    return fileVersion(await fs.stat(layout.blobFile(sha256)));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw err;
  }
}

export function blobVersionSync(layout: Layout, sha256: Sha256): string | null {
  try {
    return fileVersion(statSync(layout.blobFile(sha256)));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw err;
  }
}

function blobUnknown(sha256: Sha256): AppError {
  return new AppError('BLOB_UNKNOWN', `no blob with sha256 ${sha256} is stored`, { sha256 });
}
