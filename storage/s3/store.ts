/**
 * The BlobStore on an S3-compatible bucket that every node shares. Same
 * contract as the filesystem store (see blob-store.ts), with these
 * differences, each because objects cannot be renamed:
 * - detach() deletes the object at once (inside the caller's lock) and
 *   leftDetached() finds nothing: a delete whose transaction then fails
 *   leaves a row whose next check reports the package missing.
 * - quarantine() copies the object under quarantine/ and deletes it.
 * - Readers never go stale (a key only ever holds content of its digest),
 *   so there is no versionSync and no blocking readSync.
 * The data directory stays local: the SQLite file and the temp dir whose
 * free space the disk guard watches.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { GetObjectCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BlobStore, LeftDetached, ListedBlob, PutOptions, StaleTmpOptions } from '../blob-store.js';
import type { Sha256 } from '../digest.js';
import { AppError } from '../../server/errors.js';
import { diskUsage, FOREIGN_TMP_STALE_MS, writerMayBeAlive } from '../fs-utils.js';
import { commitStaged, type AdoptOptions } from '../ingest.js';
import type { Layout } from '../layout.js';
import { removeStaleTmpFiles } from '../maintenance.js';
import { createS3Client, describeBucket, s3ClientConfig, type S3Settings } from './client.js';
import { inProgress, inProgressUploads, stageIntoBucket, stageObject } from './ingest.js';
import { createKeys, parseTmpName } from './keys.js';
import {
  abortUpload,
  copyObject,
  createBucket,
  deleteObject,
  headObject,
  listObjects,
  listUploads,
  putObject,
  type Bucket,
} from './objects.js';
import { objectReader } from './reader.js';

/** Bucket usage is a full listing of blobs/: recounted at most this often. */
const USAGE_CACHE_MS = 30_000;

export interface S3StoreOptions {
  /** Objects above this are copied part by part (tests lower it to reach that path). */
  singleCopyMaxBytes?: number | undefined;
}

export async function openS3BlobStore(
  layout: Layout,
  settings: S3Settings,
  options: S3StoreOptions = {},
): Promise<BlobStore> {
  const client = createS3Client(settings);
  const bucket = createBucket(client, settings, createKeys(settings.prefix), options.singleCopyMaxBytes);
  await checkBucket(bucket);
  return s3BlobStore(layout, bucket);
}

/** Start-up check: the bucket answers and takes a write and a delete; otherwise one clear line. */
async function checkBucket(bucket: Bucket): Promise<void> {
  await probeBucket(bucket, { write: true }, 'STARTUP_FAILED');
}

/**
 * The bucket answers (HeadBucket) and, with `write`, takes a write and a
 * delete of a probe object; otherwise `code` with one line naming the bucket,
 * what failed and why.
 */
async function probeBucket(
  bucket: Bucket,
  options: { write: boolean; signal?: AbortSignal | undefined },
  code: 'STARTUP_FAILED' | 'STORAGE_UNAVAILABLE',
): Promise<void> {
  const where = describeBucket(bucket.settings);
  const failed = (what: string, err: unknown): AppError => {
    const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    return new AppError(code, `object storage ${where} is ${what}: ${reason}`, { problem: what }, { cause: err });
  };
  try {
    await bucket.client.send(new HeadBucketCommand({ Bucket: bucket.settings.bucket }), {
      abortSignal: options.signal,
    });
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const reason = status === 404 ? new Error('no such bucket') : status === 403 ? new Error('access denied') : err;
    throw failed('not reachable', options.signal?.aborted ? new Error('no answer in time') : reason);
  }
  if (!options.write) return;
  const probe = bucket.keys.newProbe();
  try {
    await putObject(bucket, probe, 'goldmirror write check\n');
    await deleteObject(bucket, probe);
  } catch (err) {
    throw failed('not writable', err);
  }
}

function s3BlobStore(layout: Layout, bucket: Bucket): BlobStore {
  const { keys } = bucket;
  let usage: { at: number; value: Promise<{ objects: number; bytes: number }> } | null = null;
  const blobUnknown = (sha256: Sha256) =>
    new AppError('BLOB_UNKNOWN', `no blob with sha256 ${sha256} is stored`, { sha256 });
  const readerOf = async (sha256: Sha256) => {
    const key = keys.blob(sha256);
    const head = await headObject(bucket, key);
    if (!head) throw blobUnknown(sha256);
    return objectReader(bucket, key, head);
  };

  return {
    kind: 's3',
    location: describeBucket(bucket.settings),
    layout,
    stage: (source, options?: PutOptions) => stageIntoBucket(bucket, layout, source, options),
    put: async (source, options?: PutOptions) => commitStaged(await stageIntoBucket(bucket, layout, source, options)),
    stageFile: (file: string, options: AdoptOptions) => stageLocalFile(bucket, layout, file, options),
    adoptFile: async (file: string, options: AdoptOptions) =>
      commitStaged(await stageLocalFile(bucket, layout, file, options)),
    stageObject: (key: string, options: AdoptOptions) => stageObject(bucket, key, options),
    uploadTarget: () => ({
      bucket: bucket.settings.bucket,
      keyPrefix: keys.uploadsPrefix,
      clientConfig: s3ClientConfig(bucket.settings),
    }),
    open: readerOf,
    async stat(sha256) {
      const head = await headObject(bucket, keys.blob(sha256));
      return head ? { sha256, size: head.size } : null;
    },
    async version(sha256) {
      return (await headObject(bucket, keys.blob(sha256)))?.version ?? null;
    },
    async detach(sha256) {
      const key = keys.blob(sha256);
      if (!(await headObject(bucket, key))) return null;
      await deleteObject(bucket, key);
      usage = null;
      return { discard: async () => undefined };
    },
    leftDetached: async (): Promise<LeftDetached[]> => [],
    async *list(): AsyncIterable<ListedBlob> {
      for await (const object of listObjects(bucket, keys.blobsPrefix)) {
        const sha256 = keys.digestOf(object.key);
        if (sha256) yield { sha256, size: object.size, modifiedMs: object.modifiedMs };
      }
    },
    async quarantine(sha256, atMs) {
      const key = keys.blob(sha256);
      const head = await headObject(bucket, key);
      if (!head) return null;
      const target = keys.quarantine(sha256, atMs);
      await copyObject(bucket, key, target, head.size);
      await deleteObject(bucket, key);
      usage = null;
      return `s3://${bucket.settings.bucket}/${target}`;
    },
    async removeStaleTmpFiles(options?: StaleTmpOptions) {
      const removed = await removeStaleTmpFiles(layout, options);
      return [...removed, ...(await removeStaleObjects(bucket, options?.whileRunning === true))];
    },
    diskUsage: () => diskUsage(layout.tmpDir),
    checkBucket: (options) => probeBucket(bucket, options, 'STORAGE_UNAVAILABLE'),
    bucketUsage() {
      if (!usage || Date.now() - usage.at > USAGE_CACHE_MS) {
        const value = (async () => {
          let objects = 0;
          let bytes = 0;
          for await (const object of listObjects(bucket, keys.blobsPrefix)) {
            if (!keys.digestOf(object.key)) continue;
            objects += 1;
            bytes += object.size;
          }
          return { objects, bytes };
        })();
        usage = { at: Date.now(), value };
        value.catch(() => {
          usage = null;
        });
      }
      return usage.value;
    },
    async presignDownload(sha256, { contentDisposition, expiresInSeconds }) {
      return getSignedUrl(
        bucket.client,
        new GetObjectCommand({
          Bucket: bucket.settings.bucket,
          Key: keys.blob(sha256),
          ResponseContentDisposition: contentDisposition,
          ResponseContentType: 'application/octet-stream',
        }),
        { expiresIn: expiresInSeconds },
      );
    },
  };
}

/** A finished local file (a resumable upload kept on this node's disk) streamed into the bucket, then removed. */
async function stageLocalFile(bucket: Bucket, layout: Layout, file: string, options: AdoptOptions) {
  try {
    const size = (await fs.stat(file)).size;
    return await stageIntoBucket(bucket, layout, createReadStream(file, { highWaterMark: 1 << 20 }), {
      expectedSha256: options.expectedSha256 ?? options.knownSha256,
      expectedSize: size,
    });
  } finally {
    await fs.rm(file, { force: true });
  }
}

/**
 * Clears what dead writers left under tmp/: markers (aborting their uploads),
 * temp objects and probes, by the same liveness rule as local temp files;
 * then multipart uploads under blobs/, tmp/ and quarantine/ that no marker claims and
 * that started over an hour ago (a writer that died before its marker).
 */
async function removeStaleObjects(bucket: Bucket, whileRunning: boolean): Promise<string[]> {
  const removed: string[] = [];
  const claimed = new Set<string>(inProgressUploads);
  // A live marker that cannot be read hides an upload id: then no unclaimed upload is aborted in this pass.
  let allMarkersRead = true;
  const entries: { key: string; alive: boolean; marker: { key: string; uploadId: string } | null }[] = [];
  for await (const object of listObjects(bucket, bucket.keys.tmpPrefix)) {
    const tmp = parseTmpName(object.key.slice(bucket.keys.tmpPrefix.length));
    if (!tmp) continue;
    const alive = inProgress.has(object.key) || writerMayBeAlive(tmp, object.modifiedMs, whileRunning);
    const marker = tmp.kind === 'marker' ? await readMarker(bucket, object.key) : null;
    if (tmp.kind === 'marker' && alive && !marker) allMarkersRead = false;
    if (alive && marker) claimed.add(marker.uploadId);
    entries.push({ key: object.key, alive, marker });
  }
  // A temp object lives as long as its marker (the marker is refreshed while the ingest runs; the object is not).
  const liveMarkers = new Set(entries.filter((e) => e.alive && e.key.endsWith('.json')).map((e) => e.key));
  for (const entry of entries) {
    if (entry.alive || liveMarkers.has(`${entry.key}.json`)) continue;
    if (entry.marker) await abortUpload(bucket, entry.marker.key, entry.marker.uploadId);
    await deleteObject(bucket, entry.key);
    removed.push(entry.key);
  }
  if (!allMarkersRead) return removed;
  for (const prefix of [bucket.keys.blobsPrefix, bucket.keys.tmpPrefix, bucket.keys.quarantinePrefix]) {
    for (const upload of await listUploads(bucket, prefix)) {
      if (claimed.has(upload.uploadId) || Date.now() - upload.startedMs < FOREIGN_TMP_STALE_MS) continue;
      await abortUpload(bucket, upload.key, upload.uploadId);
      removed.push(`${upload.key} (upload ${upload.uploadId})`);
    }
  }
  return removed;
}

async function readMarker(bucket: Bucket, key: string): Promise<{ key: string; uploadId: string } | null> {
  try {
    const response = await bucket.client.send(new GetObjectCommand({ Bucket: bucket.settings.bucket, Key: key }));
    const text = (await response.Body?.transformToString()) ?? '';
    const parsed = JSON.parse(text) as { key?: unknown; uploadId?: unknown };
    // Only our own keys: a marker is never trusted to name something outside blobs/ or tmp/.
    if (
      typeof parsed.key === 'string' &&
      typeof parsed.uploadId === 'string' &&
      (bucket.keys.digestOf(parsed.key) !== null ||
        (parsed.key.startsWith(bucket.keys.tmpPrefix) && parseTmpName(parsed.key.slice(bucket.keys.tmpPrefix.length))))
    )
      return { key: parsed.key, uploadId: parsed.uploadId };
    return null;
  } catch {
    return null;
  }
}
