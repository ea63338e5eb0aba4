/**
 * Export: a plain POSIX (ustar) tar, written as a stream: manifest.json first,
 * then every referenced blob under blobs/sha256/<digest>. Blob bytes are
 * re-hashed on the way out, so a bundle never carries a corrupt package:
 * a mismatch aborts the stream with an error.
 */
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { BlobStore } from '../../storage/blob-store.js';
import { newSha256, type Sha256 } from '../../storage/digest.js';
import { AppError } from '../errors.js';
import { blobEntryName, MANIFEST_ENTRY, type Manifest } from './manifest.js';

/** The bundle as a tar stream: the manifest (services/bundle-manifest.ts builds it), then the packages it lists. */
export function exportBundle(store: BlobStore, manifest: Manifest): Readable {
  const pack = tar.pack();
  const run = async (): Promise<void> => {
    const json = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    await addEntry(
      pack,
      { name: MANIFEST_ENTRY, size: json.length, mtime: new Date(manifest.createdAt) },
      Readable.from([json]),
    );
    if (manifest.includesBlobs) {
      for (const blob of manifest.blobs) {
        await addEntry(
          pack,
          { name: blobEntryName(blob.sha256), size: blob.size, mtime: new Date(manifest.createdAt) },
          verifiedBlobStream(store, blob.sha256 as Sha256, blob.size),
        );
      }
    }
    pack.finalize();
  };
  run().catch((err: unknown) => pack.destroy(err as Error));
  // tar-stream speaks streamx; iterate it into a Node stream (backpressure carries through).
  return Readable.from(pack, { objectMode: false });
}

function addEntry(
  pack: tar.Pack,
  header: { name: string; size: number; mtime: Date },
  source: Readable,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const entry = pack.entry({ ...header, type: 'file', mode: 0o644 }, (err) => (err ? reject(err) : resolve()));
    // The error reaches the caller through reject() and the destroyed pack. Without a
    // listener here, Node's pipe() re-emits the destroyed entry's 'error' with no one
    // listening: an uncaught exception that killed the server (and the CLI before it
    // could remove its .partial file) whenever a package turned out corrupt on disk.
    entry.on('error', () => undefined);
    source.on('error', (err) => {
      entry.destroy(err);
      reject(err);
    });
    source.pipe(entry);
  });
}

/** Reads a blob in 1 MiB chunks, re-hashing it; fails instead of passing on bytes that do not match. */
function verifiedBlobStream(store: BlobStore, sha256: Sha256, size: number): Readable {
  return Readable.from(
    (async function* () {
      const reader = await store.open(sha256);
      try {
        if (reader.size !== size)
          throw new AppError('BLOB_UNAVAILABLE', `package ${sha256} has the wrong size on disk; verify it`);
        const hash = newSha256();
        for (let position = 0; position < size;) {
          const chunk = Buffer.allocUnsafe(Math.min(1 << 20, size - position));
          const got = await reader.read(chunk, chunk.length, position);
          if (got === 0) throw new AppError('BLOB_UNAVAILABLE', `package ${sha256} ended early on disk`);
          const bytes = got === chunk.length ? chunk : chunk.subarray(0, got);
          hash.update(bytes);
          position += got;
          yield bytes;
        }
        if (hash.digest('hex') !== sha256)
          throw new AppError('BLOB_UNAVAILABLE', `package ${sha256} is corrupt on disk; the export was stopped`);
      } finally {
        await reader.close();
      }
    })(),
    { objectMode: false, highWaterMark: 1 },
  );
}
