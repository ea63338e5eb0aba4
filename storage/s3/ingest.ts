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
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { UploadPartCommand } from '@aws-sdk/client-s3';
import type { ByteSource, PutOptions, PutResult, StagedBlob } from '../blob-store.js';
import { isSha256, newSha256, type Sha256 } from '../digest.js';
import { AppError } from '../../server/errors.js';
import { createFile, FILE_MODE } from '../file-modes.js';
import { assertNotLonger, validateContent, type AdoptOptions } from '../ingest.js';
import type { Layout } from '../layout.js';
import {
  abortUpload,
  completeUpload,
  copyObject,
  createUpload,
  deleteObject,
  headObject,
  putObject,
  type Bucket,
} from './objects.js';
import { objectReader } from './reader.js';

/** Content up to this size is held in memory and written by one PutObject; larger content goes in parts. */
const SMALL_BYTES = 8 << 20;
/** Parts an upload may have: OpenStack Swift's default limit (S3 allows 10,000). */
const MAX_PARTS = 1_000;
/** Smallest part of a known size (larger when size / MAX_PARTS is: 60 GB → 60 MiB parts). */
const MIN_SPOOLED_PART_BYTES = 8 << 20;
/** Without a known size, parts start at this and double every PARTS_PER_SIZE_STEP parts: 1,000 parts hold 120 GB. */
const UNKNOWN_SIZE_PART_BYTES = 32 << 20;
const PARTS_PER_SIZE_STEP = 250;
const PARTS_IN_FLIGHT = 2;
const PART_ATTEMPTS = 3;
/** Writes to a part file are gathered to this size (as in the filesystem store). */
const SPOOL_WRITE_BYTES = 1 << 20;
/** A marker is rewritten this often while its upload runs, so other nodes never take a slow upload for a dead one. */
export const MARKER_REFRESH_MS = 10 * 60 * 1000;

interface Upload {
  key: string;
  marker: string;
  uploadId: string;
  parts: { PartNumber: number; ETag: string }[];
  /** Ends this process's claim on the upload (see claimUpload). */
  release: () => void;
}

/** This process's temp objects and markers, and its open uploads: clean-up never touches them, whatever it reads. */
export const inProgress = new Set<string>();
export const inProgressUploads = new Set<string>();

/**
 * Records an open upload: in this process's sets, and in its marker object, rewritten every MARKER_REFRESH_MS (an
 * unref'd timer) so other nodes see a live writer however slowly its source flows or long its commit waits.
 * Returns the release, which stops all of it (the marker itself is deleted by the caller).
 */
async function claimUpload(
  bucket: Bucket,
  names: { object: string; marker: string },
  key: string,
  uploadId: string,
): Promise<() => void> {
  inProgress.add(names.marker).add(names.object);
  inProgressUploads.add(uploadId);
  const body = JSON.stringify({ key, uploadId });
  const timer = setInterval(() => void putObject(bucket, names.marker, body).catch(() => undefined), MARKER_REFRESH_MS);
  timer.unref();
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    clearInterval(timer);
    inProgress.delete(names.marker);
    inProgress.delete(names.object);
    inProgressUploads.delete(uploadId);
  };
  try {
    await putObject(bucket, names.marker, body);
  } catch (err) {
    release();
    throw err;
  }
  return release;
}

export async function stageIntoBucket(
  bucket: Bucket,
  layout: Layout,
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
      ? Math.max(MIN_SPOOLED_PART_BYTES, Math.ceil(expectedSize / MAX_PARTS))
      : UNKNOWN_SIZE_PART_BYTES * 2 ** Math.floor((partNumber - 1) / PARTS_PER_SIZE_STEP);

  const hash = newSha256();
  let size = 0;
  let uploaded = 0;
  // Content is held in memory while it may still be small; past SMALL_BYTES it goes to part files.
  let memory: Uint8Array[] | null = [];
  let memoryBytes = 0;
  let spool: Spool | null = null;
  let upload: Upload | null = null;
  let partsCut = 0;
  let claim: (() => void) | null = null;
  const inflight: Promise<void>[] = [];
  const spoolFiles = new Set<string>();

  /** The multipart upload, opened with the first part together with its marker (see claimUpload). */
  const openUpload = async (): Promise<Upload> => {
    if (!upload) {
      const uploadId = await createUpload(bucket, target);
      upload = { key: target, marker: names.marker, uploadId, parts: [], release: () => claim?.() };
      claim = await claimUpload(bucket, names, target, uploadId);
    }
    return upload;
  };

  const uploadPart = async (current: Upload, part: Spool, partNumber: number): Promise<void> => {
    try {
      const etag = await sendPartFile(bucket, current, partNumber, part, signal);
      current.parts.push({ PartNumber: partNumber, ETag: etag });
      uploaded += part.bytes;
      onProgress?.(uploaded);
    } finally {
      spoolFiles.delete(part.file);
      await fs.rm(part.file, { force: true });
    }
  };

  /** Hands the full part file to an upload in the background; waits while PARTS_IN_FLIGHT of them run. */
  const cutPart = async (): Promise<void> => {
    const part = spool!;
    spool = null;
    await part.close();
    partsCut += 1;
    const sent = uploadPart(await openUpload(), part, partsCut);
    // A failure surfaces where the part is awaited; until then it counts as handled.
    sent.catch(() => undefined);
    inflight.push(sent);
    while (inflight.length >= PARTS_IN_FLIGHT) await inflight.shift();
  };

  const spoolChunk = async (chunk: Uint8Array): Promise<void> => {
    let rest = chunk;
    while (rest.byteLength > 0) {
      if (!spool) {
        spool = await openSpool(layout);
        spoolFiles.add(spool.file);
      }
      const partSize = partSizeAt(partsCut + 1);
      const piece = rest.byteLength <= partSize - spool.bytes ? rest : rest.subarray(0, partSize - spool.bytes);
      await spool.append(piece);
      rest = rest.subarray(piece.byteLength);
      if (spool.bytes >= partSize) await cutPart();
    }
  };

  try {
    for await (const chunk of source) {
      signal?.throwIfAborted();
      if (chunk.byteLength === 0) continue;
      hash.update(chunk);
      size += chunk.byteLength;
      assertNotLonger(size, expectedSize);
      if (memory) {
        memory.push(chunk);
        memoryBytes += chunk.byteLength;
        if (memoryBytes <= SMALL_BYTES) continue;
        const held = memory;
        memory = null;
        for (const piece of held) await spoolChunk(piece);
        continue;
      }
      await spoolChunk(chunk);
    }
    signal?.throwIfAborted();
    const content = { sha256: hash.digest('hex') as Sha256, size };
    validateContent(content, { expectedSize, expectedSha256 });
    if (memory) return smallBlob(bucket, content, Buffer.concat(memory));
    if (spool) await cutPart();
    while (inflight.length > 0) await inflight.shift();
    const finished = upload as Upload | null;
    if (!finished) throw new Error('no part was uploaded');
    finished.parts.sort((a, b) => a.PartNumber - b.PartNumber);
    if (expectedSha256) return uploadedBlob(bucket, content, finished);
    await completeUpload(bucket, finished.key, finished.uploadId, finished.parts);
    return await copiedBlob(bucket, content, finished.key, [finished.key, finished.marker], finished.release);
  } catch (err) {
    (claim as (() => void) | null)?.();
    await Promise.allSettled(inflight);
    const left = spool as Spool | null;
    await left?.close().catch(() => undefined);
    for (const file of spoolFiles) await fs.rm(file, { force: true }).catch(() => undefined);
    const open = upload as Upload | null;
    if (open) {
      await abortUpload(bucket, open.key, open.uploadId).catch(() => undefined);
      await deleteObject(bucket, open.marker).catch(() => undefined);
      if (!expectedSha256) await deleteObject(bucket, names.object).catch(() => undefined);
    }
    throw err;
  }
}

/** One part's bytes in a local temp file (named like every ingest temp file, so clean-up knows its writer). */
interface Spool {
  readonly file: string;
  bytes: number;
  append(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

async function openSpool(layout: Layout): Promise<Spool> {
  const file = layout.newTmpFile();
  const handle = await createFile(file, FILE_MODE);
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let written = 0;
  let closed = false;
  const flush = async (): Promise<void> => {
    if (batchBytes === 0) return;
    const buffers = batch;
    const bytes = batchBytes;
    batch = [];
    batchBytes = 0;
    let done = (await handle.writev(buffers, written)).bytesWritten;
    if (done < bytes) {
      const rest = Buffer.concat(buffers).subarray(done);
      while (done < bytes) {
        const { bytesWritten } = await handle.write(rest, done - (bytes - rest.length), bytes - done, written + done);
        if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'ENOSPC' });
        done += bytesWritten;
      }
    }
    written += bytes;
  };
  const spool: Spool = {
    file,
    bytes: 0,
    async append(chunk) {
      batch.push(chunk);
      batchBytes += chunk.byteLength;
      spool.bytes += chunk.byteLength;
      if (batchBytes >= SPOOL_WRITE_BYTES) await flush();
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        await flush();
      } finally {
        await handle.close();
      }
    },
  };
  return spool;
}

/** Uploads one part from its file, retrying a failed attempt from the start of the file. */
async function sendPartFile(
  bucket: Bucket,
  upload: Upload,
  partNumber: number,
  part: Spool,
  signal: AbortSignal | undefined,
): Promise<string> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= PART_ATTEMPTS; attempt += 1) {
    signal?.throwIfAborted();
    const body = createReadStream(part.file, { highWaterMark: SPOOL_WRITE_BYTES });
    try {
      const result = await bucket.client.send(
        new UploadPartCommand({
          Bucket: bucket.settings.bucket,
          Key: upload.key,
          UploadId: upload.uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: part.bytes,
        }),
        { abortSignal: signal },
      );
      if (!result.ETag) throw new Error(`part ${partNumber} came back without an ETag`);
      return result.ETag;
    } catch (err) {
      lastError = err;
      if (signal?.aborted) break;
    } finally {
      body.destroy();
    }
  }
  throw bucket.fail(`uploading part ${partNumber} of ${upload.key}`, lastError);
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
  const reader = objectReader(bucket, key, head);
  try {
    const hash = newSha256();
    const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(SPOOL_WRITE_BYTES, head.size)));
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

/** The version of an object just written; a store whose reads lag its writes (replicas) gets a few short retries. */
async function versionAfterWrite(bucket: Bucket, key: string): Promise<string> {
  for (let attempt = 1; ; attempt += 1) {
    const head = await headObject(bucket, key);
    if (head) return head.version;
    if (attempt >= 4) throw bucket.fail(`writing ${key}`, new Error('the object is not there after it was written'));
    await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
  }
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
      try {
        if (!committed) await abortUpload(bucket, upload.key, upload.uploadId);
        await deleteObject(bucket, upload.marker);
      } finally {
        upload.release();
      }
    },
  );
}

/** Copies `from` to the blob's key now (outside the caller's lock); commit() only makes sure it is still there. */
async function copiedBlob(
  bucket: Bucket,
  content: Content,
  from: string,
  leftovers: string[],
  release: () => void = () => undefined,
): Promise<StagedBlob> {
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
      try {
        for (const leftover of leftovers) await deleteObject(bucket, leftover);
      } finally {
        release();
      }
    },
  );
}
