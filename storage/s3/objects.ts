/** The S3 calls the store is built from, each turning failures into STORAGE_UNAVAILABLE. */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { isNotFound, isNotImplemented, storageError, type S3Settings } from './client.js';
import type { Keys } from './keys.js';

/**
 * Largest object one CopyObject copies; larger ones go part by part. S3 allows 5 GiB, but a copy says nothing until it
 * is done, and every request must finish within the socket's idle timeout (client.ts).
 */
export const MAX_SINGLE_COPY_BYTES = 1024 ** 3;
/** Part size of a multipart copy. */
const COPY_PART_BYTES = 1024 ** 3;
/** The S3 API's smallest part (every part but the last). */
export const MIN_PART_BYTES = 5 * 1024 ** 2;
const CONTENT_TYPE = 'application/octet-stream';

export interface Bucket {
  readonly client: S3Client;
  readonly settings: S3Settings;
  readonly keys: Keys;
  /** Objects above this are copied with UploadPartCopy (a setting so tests can reach that path with small data). */
  readonly singleCopyMaxBytes: number;
  fail: (doing: string, err: unknown) => Error;
}

export function createBucket(client: S3Client, settings: S3Settings, keys: Keys, singleCopyMaxBytes?: number): Bucket {
  return {
    client,
    settings,
    keys,
    singleCopyMaxBytes: singleCopyMaxBytes ?? MAX_SINGLE_COPY_BYTES,
    fail: (doing, err) => storageError(settings, doing, err),
  };
}

export interface ObjectHead {
  size: number;
  /** Changes when the object is written again (ETag and time), like BlobReader.version on disk. */
  version: string;
  modifiedMs: number;
}

async function call<T>(bucket: Bucket, doing: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw bucket.fail(doing, err);
  }
}

export async function headObject(bucket: Bucket, key: string): Promise<ObjectHead | null> {
  try {
    const head = await bucket.client.send(new HeadObjectCommand({ Bucket: bucket.settings.bucket, Key: key }));
    const modifiedMs = head.LastModified?.getTime() ?? 0;
    return { size: head.ContentLength ?? 0, version: `${head.ETag ?? ''}@${modifiedMs}`, modifiedMs };
  } catch (err) {
    if (isNotFound(err)) return null;
    throw bucket.fail(`looking up ${key}`, err);
  }
}

export async function putObject(bucket: Bucket, key: string, body: Buffer | string): Promise<void> {
  await call(bucket, `writing ${key}`, () =>
    bucket.client.send(
      new PutObjectCommand({
        Bucket: bucket.settings.bucket,
        Key: key,
        Body: body,
        ContentLength: Buffer.byteLength(body),
        ContentType: CONTENT_TYPE,
      }),
    ),
  );
}

/** Deletes a key; a key that is already gone is fine. */
export async function deleteObject(bucket: Bucket, key: string): Promise<void> {
  try {
    await bucket.client.send(new DeleteObjectCommand({ Bucket: bucket.settings.bucket, Key: key }));
  } catch (err) {
    if (!isNotFound(err)) throw bucket.fail(`deleting ${key}`, err);
  }
}

export interface ListedObject {
  key: string;
  size: number;
  modifiedMs: number;
}

/** Every object under `prefix`, in key order (UTF-8 bytes), a page at a time. */
export async function* listObjects(bucket: Bucket, prefix: string): AsyncIterable<ListedObject> {
  let token: string | undefined;
  do {
    const page = await call(bucket, `listing ${prefix}`, () =>
      bucket.client.send(
        new ListObjectsV2Command({ Bucket: bucket.settings.bucket, Prefix: prefix, ContinuationToken: token }),
      ),
    );
    for (const item of page.Contents ?? []) {
      if (item.Key) yield { key: item.Key, size: item.Size ?? 0, modifiedMs: item.LastModified?.getTime() ?? 0 };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

export async function createUpload(bucket: Bucket, key: string): Promise<string> {
  const created = await call(bucket, `starting an upload to ${key}`, () =>
    bucket.client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket.settings.bucket, Key: key, ContentType: CONTENT_TYPE }),
    ),
  );
  if (!created.UploadId) throw bucket.fail(`starting an upload to ${key}`, new Error('the server sent no UploadId'));
  return created.UploadId;
}

export async function completeUpload(
  bucket: Bucket,
  key: string,
  uploadId: string,
  parts: { PartNumber: number; ETag: string }[],
): Promise<void> {
  await call(bucket, `completing the upload to ${key}`, () =>
    bucket.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket.settings.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
    ),
  );
}

/** Aborts an upload; one that is already gone, or a server without the call (s3rver), is not an error. */
export async function abortUpload(bucket: Bucket, key: string, uploadId: string): Promise<void> {
  try {
    await bucket.client.send(
      new AbortMultipartUploadCommand({ Bucket: bucket.settings.bucket, Key: key, UploadId: uploadId }),
    );
  } catch (err) {
    if (!isNotFound(err) && !isNotImplemented(err)) throw bucket.fail(`aborting the upload to ${key}`, err);
  }
}

/** Open multipart uploads under `prefix`; none on a server without ListMultipartUploads. */
export async function listUploads(
  bucket: Bucket,
  prefix: string,
): Promise<{ key: string; uploadId: string; startedMs: number }[]> {
  const found: { key: string; uploadId: string; startedMs: number }[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  try {
    do {
      const page = await bucket.client.send(
        new ListMultipartUploadsCommand({
          Bucket: bucket.settings.bucket,
          Prefix: prefix,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key && upload.UploadId)
          found.push({ key: upload.Key, uploadId: upload.UploadId, startedMs: upload.Initiated?.getTime() ?? 0 });
      }
      const more = page.IsTruncated === true;
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
  } catch (err) {
    if (isNotImplemented(err)) return found;
    throw bucket.fail(`listing open uploads under ${prefix}`, err);
  }
  return found;
}

/** Server-side copy: one CopyObject up to the single-copy limit, UploadPartCopy in 1 GiB parts above it. */
export async function copyObject(bucket: Bucket, from: string, to: string, size: number): Promise<void> {
  const source = `${bucket.settings.bucket}/${from.split('/').map(encodeURIComponent).join('/')}`;
  if (size <= bucket.singleCopyMaxBytes) {
    await call(bucket, `copying ${from} to ${to}`, () =>
      bucket.client.send(
        new CopyObjectCommand({
          Bucket: bucket.settings.bucket,
          Key: to,
          CopySource: source,
          ContentType: CONTENT_TYPE,
          MetadataDirective: 'REPLACE',
        }),
      ),
    );
    return;
  }
  const uploadId = await createUpload(bucket, to);
  try {
    const partBytes = Math.max(
      MIN_PART_BYTES,
      Math.min(COPY_PART_BYTES, bucket.singleCopyMaxBytes),
      Math.ceil(size / 1_000),
    );
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let start = 0, number = 1; start < size; start += partBytes, number += 1) {
      const end = Math.min(size, start + partBytes) - 1;
      const copied = await call(bucket, `copying ${from} to ${to}`, () =>
        bucket.client.send(
          new UploadPartCopyCommand({
            Bucket: bucket.settings.bucket,
            Key: to,
            UploadId: uploadId,
            PartNumber: number,
            CopySource: source,
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        ),
      );
      const etag = copied.CopyPartResult?.ETag;
      if (!etag) throw bucket.fail(`copying ${from} to ${to}`, new Error(`part ${number} came back without an ETag`));
      parts.push({ PartNumber: number, ETag: etag });
    }
    await completeUpload(bucket, to, uploadId, parts);
  } catch (err) {
    await abortUpload(bucket, to, uploadId).catch(() => undefined);
    throw err;
  }
}
