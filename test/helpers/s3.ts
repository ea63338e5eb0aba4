/**
 * S3 for tests: s3rver started in-process on a free loopback port, or an
 * external S3 API named by MIRROR_TEST_S3_ENDPOINT (CI's OpenStack Swift,
 * started by test/s3/swift.sh). With MIRROR_TEST_STORAGE=s3 the whole run
 * stores blobs there: the global setup starts the server and makes one
 * bucket, and every test data dir gets its own prefix in it.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from '../../storage/s3/client.js';

export const onS3 = process.env.MIRROR_TEST_STORAGE === 's3';

export interface TestS3Server {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** 's3rver' (in-process) or 'external' (MIRROR_TEST_S3_ENDPOINT: Swift in CI). */
  kind: 's3rver' | 'external';
  close(): Promise<void>;
}

/**
 * The server named by MIRROR_TEST_S3_* (external), or a fresh s3rver on 127.0.0.1:<free port>. `stoppable`: always
 * an s3rver of the test's own, for tests that make the bucket go away (an external server cannot be stopped).
 */
export async function startTestS3(options: { stoppable?: boolean } = {}): Promise<TestS3Server> {
  const external = options.stoppable ? undefined : process.env.MIRROR_TEST_S3_ENDPOINT;
  if (external) {
    return {
      endpoint: external,
      region: process.env.MIRROR_TEST_S3_REGION ?? 'us-east-1',
      accessKeyId: process.env.MIRROR_TEST_S3_ACCESS_KEY_ID ?? '',
      secretAccessKey: process.env.MIRROR_TEST_S3_SECRET_ACCESS_KEY ?? '',
      kind: 'external',
      close: async () => undefined,
    };
  }
  return startS3rver();
}

/** An s3rver of the caller's own on 127.0.0.1, which can be stopped and started again on the same port and directory. */
export async function startS3rver(): Promise<TestS3Server & { stop(): Promise<void>; start(): Promise<void> }> {
  const { default: S3rver } = await import('s3rver');
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'goldmirror-s3rver-'));
  let port = 0;
  let running: InstanceType<typeof S3rver> | null = null;
  const start = async (): Promise<void> => {
    if (running) return;
    const server = new S3rver({ address: '127.0.0.1', port, silent: true, directory });
    port = (await server.run()).port;
    running = server;
  };
  const stop = async (): Promise<void> => {
    if (!running) return;
    const server = running;
    running = null;
    (server as unknown as { httpServer?: { closeAllConnections(): void } }).httpServer?.closeAllConnections();
    await server.close();
  };
  await start();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    kind: 's3rver',
    stop,
    start,
    async close() {
      await stop();
      await fs.rm(directory, { recursive: true, force: true });
    },
  };
}

export function testS3Client(server: Pick<TestS3Server, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey'>) {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** A new empty bucket on `server` (a random name, so runs never meet). */
export async function createTestBucket(server: TestS3Server): Promise<string> {
  const bucket = `gm-test-${randomBytes(6).toString('hex')}`;
  const client = testS3Client(server);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

export function s3SettingsFor(server: TestS3Server, bucket: string, prefix = ''): S3Settings {
  return {
    bucket,
    prefix,
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
  };
}

// The run-wide server and bucket, handed from the global setup to the test processes through the environment.
const RUN_S3_ENV = 'GOLDMIRROR_TEST_S3';

export function shareRunS3(server: TestS3Server, bucket: string): void {
  const { endpoint, region, accessKeyId, secretAccessKey } = server;
  process.env[RUN_S3_ENV] = JSON.stringify({ endpoint, region, accessKeyId, secretAccessKey, bucket });
}

function runS3(): (S3Settings & { bucket: string }) | null {
  const shared = process.env[RUN_S3_ENV];
  if (!onS3 || !shared) return null;
  const { endpoint, region, accessKeyId, secretAccessKey, bucket } = JSON.parse(shared) as Record<string, string>;
  return {
    bucket: bucket!,
    prefix: '',
    endpoint: endpoint!,
    region: region!,
    forcePathStyle: true,
    accessKeyId: accessKeyId!,
    secretAccessKey: secretAccessKey!,
  };
}

/** The data dir's own prefix in the run's bucket, so tests sharing it never see each other's blobs. */
function prefixOf(dataDir: string): string {
  return `t-${createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16)}`;
}

/** Config overrides that put a test data dir's blobs in the run's bucket (none unless MIRROR_TEST_STORAGE=s3). */
export function testStorageOverrides(dataDir: string): Record<string, unknown> {
  const s3 = runS3();
  if (!s3) return {};
  return {
    storage: 's3',
    s3Bucket: s3.bucket,
    s3Prefix: prefixOf(dataDir),
    s3Endpoint: s3.endpoint,
    s3Region: s3.region,
    s3ForcePathStyle: true,
    s3AccessKeyId: s3.accessKeyId,
    s3SecretAccessKey: s3.secretAccessKey,
  };
}

/** The same as MIRROR_* variables, for CLI processes (kept when the caller set MIRROR_STORAGE itself). */
export function withTestStorage(env: Record<string, string>): Record<string, string> {
  const s3 = runS3();
  if (!s3 || env.MIRROR_STORAGE !== undefined || env.MIRROR_DATA_DIR === undefined) return env;
  return {
    ...env,
    MIRROR_STORAGE: 's3',
    MIRROR_S3_BUCKET: s3.bucket,
    MIRROR_S3_PREFIX: prefixOf(env.MIRROR_DATA_DIR),
    MIRROR_S3_ENDPOINT: s3.endpoint,
    MIRROR_S3_REGION: s3.region,
    MIRROR_S3_FORCE_PATH_STYLE: 'true',
    MIRROR_S3_ACCESS_KEY_ID: s3.accessKeyId,
    MIRROR_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
}

/** The run's bucket settings for a data dir (for tests that reach into the bucket), or null when not on S3. */
export function testS3SettingsOf(dataDir: string): S3Settings | null {
  const s3 = runS3();
  return s3 ? { ...s3, prefix: prefixOf(dataDir) } : null;
}
