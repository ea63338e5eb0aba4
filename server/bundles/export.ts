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
import { findBlobsByDigests } from '../db/repos/blobs.js';
import { listGroupRows } from '../db/repos/groups.js';
import { listImageRows } from '../db/repos/images.js';
import { AppError } from '../errors.js';
import type { DbDeps } from '../services/deps.js';
import { findImageRef } from '../services/images.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, blobEntryName, MANIFEST_ENTRY, type Manifest } from './manifest.js';

export interface ExportOptions {
  /** Image names or ids; empty = everything. */
  images?: string[];
  includeBlobs: boolean;
}

/** The manifest of the chosen images (all by default), their groups and packages, dated by the deps' clock. */
export async function buildManifest(deps: DbDeps, options: ExportOptions): Promise<Manifest> {
  const { db } = deps;
  let rows = await listImageRows(db);
  if (options.images && options.images.length > 0) {
    const wanted = new Set<number>();
    for (const ref of options.images) wanted.add((await findImageRef(deps, ref)).id);
    rows = rows.filter((r) => wanted.has(r.id));
  }
  const imageIds = new Set(rows.map((r) => r.id));
  const names = new Map(rows.map((r) => [r.id, r.name]));
  const everything = !options.images || options.images.length === 0;
  const groups = (await listGroupRows(db, { byName: true })).filter(
    (g) => everything || (g.image_id !== null && imageIds.has(g.image_id)),
  );
  const digests = [
    ...new Set(rows.flatMap((r) => [r.arm64_sha256, r.x86_64_sha256]).filter((d): d is string => d !== null)),
  ].sort();
  const blobs = await findBlobsByDigests(db, digests);
  const unavailable = blobs.filter((b) => b.state !== 'ok');
  if (options.includeBlobs && unavailable.length > 0) {
    throw new AppError(
      'BLOB_UNAVAILABLE',
      `cannot export: package ${unavailable[0]!.sha256} is ${unavailable[0]!.state}; re-import it first`,
    );
  }
  return {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    createdAt: new Date(deps.clock.now()).toISOString(),
    includesBlobs: options.includeBlobs,
    images: rows.map((r) => ({
      name: r.name,
      description: r.description,
      arm64: { enabled: r.arm64_enabled === 1, sha256: r.arm64_sha256 },
      x86_64: { enabled: r.x86_64_enabled === 1, sha256: r.x86_64_sha256 },
    })),
    groups: groups.map((g) => ({
      name: g.name,
      licenseKey: g.license_key,
      primary: g.is_primary === 1,
      image: g.image_id !== null ? (names.get(g.image_id) ?? null) : null,
    })),
    blobs: blobs.map((b) => ({ sha256: b.sha256, size: b.size, name: b.name })),
  };
}

/** The tar stream of a manifest (and its blobs when the manifest says so). Consume it with backpressure. */
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
