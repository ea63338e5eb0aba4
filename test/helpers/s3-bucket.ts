/**
 * A test's view into a bucket from outside the store: the raw keys under a
 * prefix, the multipart uploads left open, and what the server implements
 * (s3rver lacks ListMultipartUploads and UploadPartCopy; Swift has both).
 */
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { isNotImplemented } from '../../storage/s3/client.js';
import { testS3Client, type TestS3Server } from './s3.js';

export interface BucketView {
  readonly client: S3Client;
  readonly bucket: string;
  /** The prefix with its trailing slash ('' for none), as storage/s3/keys.ts writes it. */
  readonly prefix: string;
  /** Every key under `<prefix><under>`, sorted, without the prefix. */
  keys(under?: string): Promise<string[]>;
  /** Keys (without the prefix) of the multipart uploads open under the prefix; null when the server cannot list them. */
  openUploads(): Promise<string[] | null>;
  put(key: string, body: Buffer | string): Promise<void>;
  get(key: string): Promise<Buffer>;
  /** Starts a multipart upload at `key` and uploads one part of `part`; returns the upload id. */
  startUpload(key: string, part: Buffer): Promise<string>;
  close(): void;
}

export function bucketView(server: TestS3Server, bucket: string, prefix = ''): BucketView {
  const client = testS3Client(server);
  const base = prefix === '' ? '' : `${prefix.replace(/^\/+|\/+$/g, '')}/`;
  return {
    client,
    bucket,
    prefix: base,
    async keys(under = '') {
      const found: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: `${base}${under}`, ContinuationToken: token }),
        );
        for (const item of page.Contents ?? []) if (item.Key) found.push(item.Key.slice(base.length));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return found.sort();
    },
    async openUploads() {
      try {
        const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: base }));
        return (page.Uploads ?? []).map((u) => (u.Key ?? '').slice(base.length)).sort();
      } catch (err) {
        if (isNotImplemented(err)) return null;
        throw err;
      }
    },
    async put(key, body) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${base}${key}`, Body: body }));
    },
    async get(key) {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `${base}${key}` }));
      return Buffer.from(await res.Body!.transformToByteArray());
    },
    async startUpload(key, part) {
      const { UploadId } = await client.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${base}${key}` }),
      );
      await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: `${base}${key}`,
          UploadId,
          PartNumber: 1,
          Body: part,
          ContentLength: part.length,
        }),
      );
      return UploadId!;
    },
    close: () => client.destroy(),
  };
}

/** Whether the server implements UploadPartCopy (the store's copy of objects above its single-copy limit). */
export async function supportsUploadPartCopy(server: TestS3Server, bucket: string): Promise<boolean> {
  const client = testS3Client(server);
  const source = `probe-copy-source-${randomBytes(4).toString('hex')}`;
  const target = `${source}-target`;
  let uploadId: string | undefined;
  try {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: source, Body: 'copy me' }));
    uploadId = (await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: target }))).UploadId;
    await client.send(
      new UploadPartCopyCommand({
        Bucket: bucket,
        Key: target,
        UploadId: uploadId,
        PartNumber: 1,
        CopySource: `${bucket}/${source}`,
      }),
    );
    return true;
  } catch (err) {
    if (isNotImplemented(err)) return false;
    throw err;
  } finally {
    if (uploadId)
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId: uploadId }))
        .catch(() => undefined);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: source })).catch(() => undefined);
    client.destroy();
  }
}
