/**
 * What a test data dir's store holds, read and tampered with behind the
 * mirror's back, the same way on both stores: files under the data dir on
 * fs, objects under the data dir's prefix in the run's bucket with
 * MIRROR_TEST_STORAGE=s3 (see s3.ts). Tests that corrupt, delete or look at
 * stored blobs go through here, so one test covers both stores.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { createLayout, type Layout } from '../../storage/layout.js';
import { isNotFound } from '../../storage/s3/client.js';
import { createKeys, type Keys } from '../../storage/s3/keys.js';
import { testS3Client, testS3SettingsOf } from './s3.js';

/** A mirror or runtime (anything with its store), a store, or a data dir. */
export type BlobHolder = string | { runtime: { store: BlobStore } } | { store: BlobStore };

/** Where the holder's blobs are: its local layout, plus the bucket and keys when they are in S3. */
interface Place {
  layout: Layout;
  bucket: { client: S3Client; name: string; keys: Keys } | null;
}

function placeOf(holder: BlobHolder): Place {
  const store = typeof holder === 'string' ? null : 'store' in holder ? holder.store : holder.runtime.store;
  const layout = store?.layout ?? createLayout(holder as string);
  const settings = store?.kind === 'fs' ? null : testS3SettingsOf(layout.root);
  if (store?.kind === 's3' && !settings) throw new Error('an S3 store outside the run bucket: not a test data dir');
  if (!settings) return { layout, bucket: null };
  return {
    layout,
    bucket: { client: testS3Client(settings), name: settings.bucket, keys: createKeys(settings.prefix) },
  };
}

async function withPlace<T>(holder: BlobHolder, run: (place: Place) => Promise<T>): Promise<T> {
  const place = placeOf(holder);
  try {
    return await run(place);
  } finally {
    place.bucket?.client.destroy();
  }
}

async function getObject(client: S3Client, bucket: string, key: string): Promise<Buffer | null> {
  try {
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await got.Body!.transformToByteArray());
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

async function readFileOrNull(file: string): Promise<Buffer | null> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The stored bytes of a blob, or null when nothing is stored under its digest. */
export function storedBytes(holder: BlobHolder, sha256: string): Promise<Buffer | null> {
  return withPlace(holder, ({ layout, bucket }) =>
    bucket
      ? getObject(bucket.client, bucket.name, bucket.keys.blob(sha256 as Sha256))
      : readFileOrNull(layout.blobFile(sha256 as Sha256)),
  );
}

/** The sha256 of what is stored under a blob's digest (it differs once corrupted), or null when nothing is. */
export async function storedDigest(holder: BlobHolder, sha256: string): Promise<string | null> {
  const bytes = await storedBytes(holder, sha256);
  return bytes && createHash('sha256').update(bytes).digest('hex');
}

/** Replaces what is stored under a blob's digest with `bytes` (any content, any size). */
export function replaceStored(holder: BlobHolder, sha256: string, bytes: Buffer): Promise<void> {
  return withPlace(holder, async ({ layout, bucket }) => {
    if (bucket) {
      // A new object, as S3 makes it: s3rver would rewrite the old one's file in place, under GETs still reading it.
      const key = bucket.keys.blob(sha256 as Sha256);
      await bucket.client.send(new DeleteObjectCommand({ Bucket: bucket.name, Key: key }));
      await bucket.client.send(new PutObjectCommand({ Bucket: bucket.name, Key: key, Body: bytes }));
      return;
    }
    // In place (same inode), as a disk changing under the mirror would.
    const handle = await fs.open(layout.blobFile(sha256 as Sha256), 'r+');
    try {
      await handle.truncate(0);
      await handle.write(bytes, 0, bytes.length, 0);
    } finally {
      await handle.close();
    }
  });
}

/** Flips (xor 0xff) the stored byte at each offset: same size, different content. */
export async function corruptStored(holder: BlobHolder, sha256: string, offsets: number | number[]): Promise<void> {
  const place = placeOf(holder);
  place.bucket?.client.destroy();
  if (!place.bucket) {
    // Only the flipped bytes are written, in place.
    const handle = await fs.open(place.layout.blobFile(sha256 as Sha256), 'r+');
    try {
      for (const offset of [offsets].flat()) {
        const one = Buffer.alloc(1);
        await handle.read(one, 0, 1, offset);
        one[0] = one[0]! ^ 0xff;
        await handle.write(one, 0, 1, offset);
      }
    } finally {
      await handle.close();
    }
    return;
  }
  const bytes = await storedBytes(holder, sha256);
  if (!bytes) throw new Error(`no blob ${sha256} is stored`);
  for (const offset of [offsets].flat()) bytes[offset] = bytes[offset]! ^ 0xff;
  await replaceStored(holder, sha256, bytes);
}

/** Cuts a stored blob to its first `size` bytes. */
export async function truncateStored(holder: BlobHolder, sha256: string, size: number): Promise<void> {
  const place = placeOf(holder);
  place.bucket?.client.destroy();
  if (!place.bucket) return fs.truncate(place.layout.blobFile(sha256 as Sha256), size);
  const bytes = await storedBytes(holder, sha256);
  if (!bytes) throw new Error(`no blob ${sha256} is stored`);
  await replaceStored(holder, sha256, bytes.subarray(0, size));
}

/** Deletes a stored blob behind the mirror's back (no error when it is not there). */
export function removeStored(holder: BlobHolder, sha256: string): Promise<void> {
  return withPlace(holder, async ({ layout, bucket }) => {
    if (bucket) {
      await bucket.client.send(
        new DeleteObjectCommand({ Bucket: bucket.name, Key: bucket.keys.blob(sha256 as Sha256) }),
      );
      return;
    }
    await fs.rm(layout.blobFile(sha256 as Sha256), { force: true });
  });
}

export type StoreArea = 'blobs' | 'tmp' | 'quarantine';

/**
 * Everything in one area of the store, path (relative to the area) → size:
 * on fs the files under blobs/sha256, tmp/ or quarantine/; on S3 the objects
 * under the same prefixes in the bucket, plus the data dir's local files
 * (temp files of ingests staged on this node).
 */
export function storedFiles(holder: BlobHolder, area: StoreArea): Promise<Record<string, number>> {
  return withPlace(holder, async ({ layout, bucket }) => {
    const dir = { blobs: layout.blobsDir, tmp: layout.tmpDir, quarantine: layout.quarantineDir }[area];
    const files = await listFiles(dir);
    if (!bucket) return files;
    const prefix = {
      blobs: bucket.keys.blobsPrefix,
      tmp: bucket.keys.tmpPrefix,
      quarantine: bucket.keys.quarantinePrefix,
    }[area];
    for (const object of await listObjects(bucket.client, bucket.name, prefix)) {
      files[object.key.slice(prefix.length)] = object.size;
    }
    return files;
  });
}

/** The digests stored under blobs/, sorted. */
export async function storedDigests(holder: BlobHolder): Promise<string[]> {
  return Object.keys(await storedFiles(holder, 'blobs'))
    .map((name) => path.basename(name))
    .sort();
}

/** What quarantine() moved aside: name (<digest>-<time>) and bytes, sorted by name. */
export function quarantined(holder: BlobHolder): Promise<Array<{ name: string; bytes: Buffer }>> {
  return withPlace(holder, async ({ layout, bucket }) => {
    const out: Array<{ name: string; bytes: Buffer }> = [];
    if (bucket) {
      for (const object of await listObjects(bucket.client, bucket.name, bucket.keys.quarantinePrefix)) {
        const bytes = await getObject(bucket.client, bucket.name, object.key);
        if (bytes) out.push({ name: object.key.slice(bucket.keys.quarantinePrefix.length), bytes });
      }
    } else {
      for (const name of await fs.readdir(layout.quarantineDir)) {
        out.push({ name, bytes: await fs.readFile(path.join(layout.quarantineDir, name)) });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  });
}

/** Every regular file under `dir` (relative path → size); directories themselves are not listed. */
export async function listFiles(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const walk = async (sub: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(path.join(dir, sub), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const rel = path.join(sub, e.name);
      if (e.isDirectory()) await walk(rel);
      else {
        // A temp file may go between the listing and its lstat (its writer finished or cleaned up): not there then.
        const st = await fs.lstat(path.join(dir, rel)).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return null;
          throw err;
        });
        if (st) out[rel] = st.size;
      }
    }
  };
  await walk('');
  return out;
}

async function listObjects(client: S3Client, bucket: string, prefix: string): Promise<{ key: string; size: number }[]> {
  const out: { key: string; size: number }[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) out.push({ key: object.Key!, size: object.Size ?? 0 });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}
