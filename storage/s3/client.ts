/** The S3 client goldmirror uses, and what its errors mean to the rest of the server. */
import http from 'node:http';
import https from 'node:https';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { AppError, isError } from '../../server/errors.js';

export interface S3Settings {
  bucket: string;
  prefix: string;
  /** '' = AWS itself. */
  endpoint: string;
  region: string;
  forcePathStyle: boolean;
  /** Both '' = the SDK's default chain (AWS_* variables, shared config files, instance roles). */
  accessKeyId: string;
  secretAccessKey: string;
}

/** How long an S3 socket may stay silent; every single request (a copy of at most 1 GiB included) must fit in it. */
export const SOCKET_IDLE_MS = 120_000;

/** Sockets kept per process; each download reading from S3 holds one while it streams. */
const MAX_SOCKETS = 512;

export function createS3Client(settings: S3Settings): S3Client {
  return new S3Client(s3ClientConfig(settings));
}

/** The client settings every S3 client of goldmirror uses (the blob store's, and the resumable uploads'). */
export function s3ClientConfig(settings: S3Settings): S3ClientConfig {
  // The SDK's notice that its releases after January 2027 need Node 22 is for whoever upgrades it, not for an
  // operator on Node 20 (which goldmirror supports): on stderr it broke the CLI's one-line output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS };
  return {
    region: settings.region,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    forcePathStyle: settings.forcePathStyle,
    ...(settings.accessKeyId
      ? { credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey } }
      : {}),
    // Checksums only where the API demands them: MinIO, Ceph and Swift reject or ignore the newer AWS-only ones.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: {
      connectionTimeout: 5_000,
      // A socket silent this long is closed, also while a body streams (a parked reader then reconnects, reader.ts):
      // a bucket that hangs fails calls within this bound instead of the kernel's quarter of an hour.
      socketTimeout: SOCKET_IDLE_MS,
      // Until the answer's headers, request body included (a part of up to a few hundred MiB on a slow link).
      requestTimeout: 10 * 60_000,
      throwOnRequestTimeout: true,
      httpAgent: new http.Agent(agentOptions),
      httpsAgent: new https.Agent(agentOptions),
    },
  };
}

/**
 * Where resumable uploads keep their objects: the store's bucket, under its uploads/ key prefix,
 * reached with the same client settings (for a tus datastore that shares the bucket across nodes).
 */
export interface S3UploadTarget {
  bucket: string;
  /** Ends with a slash: every key of an upload starts with it. */
  keyPrefix: string;
  clientConfig: S3ClientConfig;
}

/** Where a message says the bucket is: "bucket b at http://host:9000" (AWS: its region). */
export function describeBucket(settings: S3Settings): string {
  const where = settings.endpoint || `AWS ${settings.region}`;
  return `bucket ${settings.bucket}${settings.prefix ? ` (prefix ${settings.prefix})` : ''} at ${where}`;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string {
  const name = typeof err === 'object' && err !== null ? (err as { name?: unknown }).name : undefined;
  return typeof name === 'string' ? name : '';
}

/** A key (or upload) that is not there: the one S3 failure that is an answer, not an outage. */
export function isNotFound(err: unknown): boolean {
  const name = nameOf(err);
  return name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchUpload' || statusOf(err) === 404;
}

/** A call the server does not implement (s3rver has no ListMultipartUploads or AbortMultipartUpload). */
export function isNotImplemented(err: unknown): boolean {
  const status = statusOf(err);
  return nameOf(err) === 'NotImplemented' || status === 501 || status === 405;
}

/** Any other failure becomes STORAGE_UNAVAILABLE (503), naming the bucket and what was being done. */
export function storageError(settings: S3Settings, doing: string, err: unknown): AppError {
  if (isError(err)) return err;
  const status = statusOf(err);
  const reason = err instanceof Error ? err.message || nameOf(err) : String(err);
  return new AppError(
    'STORAGE_UNAVAILABLE',
    `object storage ${describeBucket(settings)}: ${doing} failed: ${reason}${status ? ` (HTTP ${status})` : ''}`,
    { operation: doing, ...(status ? { status } : {}) },
    { cause: err },
  );
}
