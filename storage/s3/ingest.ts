/**
 * Getting bytes into the bucket with the filesystem store's guarantees:
 * the content streams once, hashed on the way, in parts of a multipart
 * upload (memory: two parts in flight and one filling, whatever the size);
 * nothing appears under blobs/ unless the digest checks out; a mismatch, a
 * short stream or an error aborts the upload.
 *
 * - Expected digest known: the upload goes straight to the blob's key and
 *   commit() completes it (a single request, inside the caller's lock).
 * - Unknown: the upload goes to a temp key, is completed and copied
 *   server-side to the blob's key before commit(), which only checks that
 *   the copy is still there (a delete of the same digest may have raced it)
 *   and copies again if not; discard() removes the temp object.
 * - Smaller than one part: kept in memory and written by one PutObject in commit().
 *
 * An open upload is recorded in a marker object (tmp/ingest-<writer>-….json)
 * so that removeStaleTmp() can abort the uploads of a writer that died.
 */
import { UploadPartCommand } from '@aws-sdk/client-s3';
import type { ByteSource, PutOptions, PutResult, StagedBlob } from '../blob-store.js';
import { isSha256, newSha256, type Sha256 } from '../digest.js';
import { AppError } from '../../server/errors.js';
import { validateContent, type AdoptOptions } from '../ingest.js';
import {
  abortUpload,
  completeUpload,
  copyObject,
  createUpload,
  deleteObject,
  headObject,
  MIN_PART_BYTES,
  putObject,
  type Bucket,
} from './objects.js';
import { objectReader } from './reader.js';

const PART_BYTES = 8 << 20;
/** Parts an upload may have (S3 allows 10,000; some room is kept for a size guessed short). */
const MAX_PARTS = 9_500;
/** Without a known size, the part size doubles every this many parts, so no upload runs out of parts. */
const PARTS_PER_SIZE_STEP = 2_000;
const PARTS_IN_FLIGHT = 2;
/** A marker is rewritten this often while its upload runs, so other nodes never take a slow upload for a dead one. */
export const MARKER_REFRESH_MS = 10 * 60 * 1000;

interface Upload {
  key: string;
  marker: string;
  uploadId: string;
  parts: { PartNumber: number; ETag: string }[];
}

/** Markers of this process's uploads in progress: clean-up never touches them, whatever their PID says. */
export const inProgress = new Set<string>();

export async function stageIntoBucket(
  bucket: Bucket,
  source: ByteSource,
  options: PutOptions = {},
): Promise<StagedBlob> {
  const { expectedSha256, expectedSize, signal, onProgress } = options;
  if (expectedSha256 !== undefined && !isSha256(expectedSha256)) {
    throw new AppError('DIGEST_INVALID', `expected digest is not a sha256: ${String(expectedSha256)}`);
  }
  signal?.throwIfAborted();
  const names = bucket.keys.newIngest();
  const target = expectedSha256 ? bucket.keys.blob(expectedSha256) : names.object;
  const partSizeAt = (partNumber: number): number =>
    expectedSize !== undefined
      ? Math.max(PART_BYTES, Math.ceil(expectedSize / MAX_PARTS))
      : PART_BYTES * 2 ** Math.floor((partNumber - 1) / PARTS_PER_SIZE_STEP);

  const hash = newSha256();
  let size = 0;
  let uploaded = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let upload: Upload | null = null;
  let partsSent = 0;
  let markerWrittenAt = 0;
  const inflight: Promise<void>[] = [];

  const sendPart = async (body: Buffer): Promise<void> => {
    if (!upload) {
      const uploadId = await createUpload(bucket, target);
      upload = { key: target, marker: names.marker, uploadId, parts: [] };
      inProgress.add(names.marker).add(names.object);
    }
    if (Date.now() - markerWrittenAt >= MARKER_REFRESH_MS) {
      markerWrittenAt = Date.now();
      await putObject(bucket, names.marker, JSON.stringify({ key: target, uploadId: upload.uploadId }));
    }
    const current: Upload = upload;
    partsSent += 1;
    const partNumber = partsSent;
    const sent = bucket.client
      .send(
        new UploadPartCommand({
          Bucket: bucket.settings.bucket,
          Key: current.key,
          UploadId: current.uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.length,
        }),
        { abortSignal: signal },
      )
      .then(
        (result) => {
          if (!result.ETag) throw new Error(`part ${partNumber} came back without an ETag`);
          current.parts.push({ PartNumber: partNumber, ETag: result.ETag });
          uploaded += body.length;
          onProgress?.(uploaded);
        },
        (err: unknown) => {
          throw bucket.fail(`uploading part ${partNumber} of ${current.key}`, err);
        },
      );
    // Rejections surface where the part is awaited; until then they count as handled.
    sent.catch(() => undefined);
    inflight.push(sent);
    if (inflight.length >= PARTS_IN_FLIGHT) await inflight.shift();
  };

  try {
    for await (const chunk of source) {
      signal?.throwIfAborted();
      if (chunk.byteLength === 0) continue;
      hash.update(chunk);
      size += chunk.byteLength;
      if (expectedSize !== undefined && size > expectedSize) {
        throw new AppError('SIZE_MISMATCH', `content is longer than the expected ${expectedSize} bytes`, {
          expected: expectedSize,
        });
      }
      pending.push(chunk);
      pendingBytes += chunk.byteLength;
      if (pendingBytes >= Math.max(MIN_PART_BYTES, partSizeAt(partsSent + 1))) {
        const body = Buffer.concat(pending);
        pending = [];
        pendingBytes = 0;
        await sendPart(body);
      }
    }
    signal?.throwIfAborted();
    const content = { sha256: hash.digest('hex') as Sha256, size };
    validateContent(content, { expectedSize, expectedSha256 });
    const rest = Buffer.concat(pending);
    pending = [];
    if (!upload) return smallBlob(bucket, content, rest);
    if (rest.length > 0) await sendPart(rest);
    while (inflight.length > 0) await inflight.shift();
    const finished: Upload = upload;
    finished.parts.sort((a, b) => a.PartNumber - b.PartNumber);
    if (expectedSha256) return uploadedBlob(bucket, content, finished);
    await completeUpload(bucket, finished.key, finished.uploadId, finished.parts);
    return await copiedBlob(bucket, content, finished.key, [finished.key, finished.marker]);
  } catch (err) {
    inProgress.delete(names.marker);
    inProgress.delete(names.object);
    await Promise.allSettled(inflight);
    const open = upload as Upload | null;
    if (open) {
      await abortUpload(bucket, open.key, open.uploadId).catch(() => undefined);
      await deleteObject(bucket, open.marker).catch(() => undefined);
      if (!expectedSha256) await deleteObject(bucket, names.object).catch(() => undefined);
    }
    throw err;
  }
}

/**
 * A finished object already in the bucket (a resumable upload) made a blob without
 * downloading it: hashed by reading it unless its digest was computed while it
 * streamed in, checked, then copied server-side. On any failure it is deleted.
 */
export async function stageObject(bucket: Bucket, key: string, options: AdoptOptions): Promise<StagedBlob> {
  try {
    const head = await headObject(bucket, key);
    if (!head) throw new AppError('BLOB_UNKNOWN', `the uploaded object ${key} is missing`);
    const content = { size: head.size, sha256: options.knownSha256 ?? (await hashObject(bucket, key, head)) };
    validateContent(content, options);
    return await copiedBlob(bucket, content, key, [key]);
  } catch (err) {
    await deleteObject(bucket, key).catch(() => undefined);
    throw err;
  }
}

async function hashObject(bucket: Bucket, key: string, head: { size: number; version: string }): Promise<Sha256> {
  const reader = objectReader({
    client: bucket.client,
    bucket: bucket.settings.bucket,
    key,
    size: head.size,
    version: head.version,
    fail: bucket.fail,
  });
  try {
    const hash = newSha256();
    const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(PART_BYTES, head.size)));
    for (let position = 0; position < head.size;) {
      const got = await reader.read(buffer, buffer.length, position);
      if (got === 0) break;
      hash.update(buffer.subarray(0, got));
      position += got;
    }
    return hash.digest('hex') as Sha256;
  } finally {
    await reader.close();
  }
}

interface Content {
  sha256: Sha256;
  size: number;
}

function staged(
  content: Content,
  commit: () => Promise<{ created: boolean; version: string }>,
  cleanUp: (committed: boolean) => Promise<void>,
): StagedBlob {
  let state: 'staged' | 'committed' | 'discarded' = 'staged';
  return {
    ...content,
    async commit(): Promise<PutResult> {
      if (state !== 'staged') throw new Error(`staged blob ${content.sha256} was already ${state}`);
      const { created, version } = await commit();
      state = 'committed';
      return { ...content, created, version };
    },
    async discard() {
      if (state === 'discarded') return;
      const committed = state === 'committed';
      state = 'discarded';
      await cleanUp(committed).catch(() => undefined);
    },
  };
}

async function versionAfterWrite(bucket: Bucket, key: string): Promise<string> {
  const head = await headObject(bucket, key);
  if (!head) throw bucket.fail(`writing ${key}`, new Error('the object is not there after it was written'));
  return head.version;
}

function smallBlob(bucket: Bucket, content: Content, body: Buffer): StagedBlob {
  const key = bucket.keys.blob(content.sha256);
  return staged(
    content,
    async () => {
      const existed = (await headObject(bucket, key)) !== null;
      await putObject(bucket, key, body);
      return { created: !existed, version: await versionAfterWrite(bucket, key) };
    },
    async () => undefined,
  );
}

function uploadedBlob(bucket: Bucket, content: Content, upload: Upload): StagedBlob {
  return staged(
    content,
    async () => {
      const existed = (await headObject(bucket, upload.key)) !== null;
      await completeUpload(bucket, upload.key, upload.uploadId, upload.parts);
      return { created: !existed, version: await versionAfterWrite(bucket, upload.key) };
    },
    async (committed) => {
      if (!committed) await abortUpload(bucket, upload.key, upload.uploadId);
      await deleteObject(bucket, upload.marker);
      inProgress.delete(upload.marker);
      inProgress.delete(upload.marker.replace(/\.json$/, ''));
    },
  );
}

/** Copies `from` to the blob's key now (outside the caller's lock); commit() only makes sure it is still there. */
async function copiedBlob(bucket: Bucket, content: Content, from: string, leftovers: string[]): Promise<StagedBlob> {
  const key = bucket.keys.blob(content.sha256);
  const existed = (await headObject(bucket, key)) !== null;
  await copyObject(bucket, from, key, content.size);
  return staged(
    content,
    async () => {
      let head = await headObject(bucket, key);
      if (!head) {
        await copyObject(bucket, from, key, content.size);
        head = await headObject(bucket, key);
      }
      if (!head) throw bucket.fail(`copying ${from} to ${key}`, new Error('the copy is not there after it was made'));
      return { created: !existed, version: head.version };
    },
    async () => {
      for (const leftover of leftovers) await deleteObject(bucket, leftover);
      for (const leftover of leftovers) inProgress.delete(leftover);
    },
  );
}
