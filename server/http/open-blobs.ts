/**
 * Keeps recently used blob files open, like nginx's open_file_cache, so a
 * request costs one stat instead of open + fstat + close. Each use first
 * compares the file at the blob's path with the open one (inode, size,
 * mtime; on S3 the object's ETag and time, one HEAD): a blob moved to
 * quarantine, deleted, truncated or replaced by a re-ingest is never served
 * from a stale handle.
 */
import type { BlobReader, BlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { AppError } from '../errors.js';

export interface LeasedReader {
  reader: BlobReader;
  /**
   * Ends this use. `closeNow` (a client that went away) closes the file at
   * once when no other response uses it, instead of keeping it for reuse.
   */
  release(closeNow?: boolean): void;
}

interface Entry {
  reader: BlobReader;
  leases: number;
  stale: boolean;
  idleTimer: NodeJS.Timeout | null;
  /** The object's version being looked up (S3): uses that arrive meanwhile share the one HEAD. */
  checking: Promise<string | null> | null;
}

export interface OpenBlobCache {
  acquire(sha256: Sha256): Promise<LeasedReader>;
  close(): Promise<void>;
}

export function createOpenBlobCache(
  store: BlobStore,
  options: { idleMs?: number; maxOpen?: number } = {},
): OpenBlobCache {
  const idleMs = options.idleMs ?? 10_000;
  const maxOpen = options.maxOpen ?? 256;
  const entries = new Map<string, Entry>();

  const closeEntry = (sha256: string, entry: Entry): void => {
    if (entries.get(sha256) === entry) entries.delete(sha256);
    entry.stale = true;
    if (entry.leases === 0) void entry.reader.close().catch(() => undefined);
  };

  const lease = (sha256: string, entry: Entry): LeasedReader => {
    entry.leases += 1;
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
    let released = false;
    return {
      reader: entry.reader,
      release(closeNow = false) {
        if (released) return;
        released = true;
        entry.leases -= 1;
        if (entry.leases > 0) return;
        if (closeNow) {
          closeEntry(sha256, entry);
          return;
        }
        if (entry.stale) {
          void entry.reader.close().catch(() => undefined);
          return;
        }
        entry.idleTimer = setTimeout(() => closeEntry(sha256, entry), idleMs);
        entry.idleTimer.unref();
      },
    };
  };

  const objectVersion = (sha256: Sha256, entry: Entry): Promise<string | null> =>
    (entry.checking ??= store.version(sha256).finally(() => {
      entry.checking = null;
    }));

  return {
    async acquire(sha256) {
      const cached = entries.get(sha256);
      if (cached) {
        // A local file is checked with one stat; an object with one HEAD, since it can be deleted behind the mirror.
        const current = store.versionSync ? store.versionSync(sha256) : await objectVersion(sha256, cached);
        if (current === cached.reader.version && !cached.stale) return lease(sha256, cached);
        closeEntry(sha256, cached);
        if (current === null) throw new AppError('BLOB_UNKNOWN', `no blob with sha256 ${sha256} is stored`, { sha256 });
      }
      const reader = await store.open(sha256);
      // Another request may have opened it meanwhile: keep one, close the other.
      const raced = entries.get(sha256);
      if (raced && raced.reader.version === reader.version && !raced.stale) {
        void reader.close().catch(() => undefined);
        return lease(sha256, raced);
      }
      if (entries.size >= maxOpen) {
        for (const [key, entry] of entries) {
          if (entry.leases === 0) {
            closeEntry(key, entry);
            break;
          }
        }
      }
      const entry: Entry = { reader, leases: 0, stale: false, idleTimer: null, checking: null };
      if (raced) closeEntry(sha256, raced);
      entries.set(sha256, entry);
      return lease(sha256, entry);
    },
    async close() {
      for (const [key, entry] of [...entries]) {
        if (entry.idleTimer) clearTimeout(entry.idleTimer);
        closeEntry(key, entry);
      }
      await Promise.resolve();
    },
  };
}
