/**
 * `goldmirror migrate-storage`: a mirror's packages move from blobs/ into a bucket (s3rver, or the S3 API named by
 * MIRROR_TEST_S3_ENDPOINT) and back, every copy checked against its digest on the way; a server on the bucket then
 * serves them. Each step runs the real CLI against the same data dir and catalog.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { createLogger } from '../../server/log.js';
import { openRuntime } from '../../server/runtime.js';
import { startServer } from '../../server/serve.js';
import { ingest } from '../../server/services/ingest.js';
import type { StorageMigrationReport } from '../../server/services/migrate-storage.js';
import { runCli } from '../helpers/cli.js';
import { onPostgres } from '../helpers/database.js';
import { freePort, makeTempDir, testBytes, testConfig } from '../helpers/env.js';
import { createTestBucket, startTestS3, testS3Client, type TestS3Server } from '../helpers/s3.js';

type Report = StorageMigrationReport & { switchTo: Record<string, string> | null };

const PREFIX = 'mirror-a';

async function flipByte(file: string, offset: number): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
}

describe('goldmirror migrate-storage', () => {
  let s3: TestS3Server;
  let client: S3Client;
  let bucket: string;
  let dir: string;
  /** The three packages that are fine, the one whose row is corrupt, and a file no row lists. */
  const good: Record<'small' | 'medium' | 'big', { sha256: string; name: string; data: Buffer }> = {} as never;
  let rotten: string;
  let unlisted: string;

  const s3Env = (): Record<string, string> => ({
    MIRROR_S3_BUCKET: bucket,
    MIRROR_S3_PREFIX: PREFIX,
    MIRROR_S3_ENDPOINT: s3.endpoint,
    MIRROR_S3_REGION: s3.region,
    MIRROR_S3_FORCE_PATH_STYLE: 'true',
    MIRROR_S3_ACCESS_KEY_ID: s3.accessKeyId,
    MIRROR_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  });
  const env = (storage: 'fs' | 's3'): Record<string, string> => ({
    MIRROR_DATA_DIR: dir,
    MIRROR_STORAGE: storage,
    MIRROR_LOG_LEVEL: 'warn',
    // The AWS SDK warns on every start under Node 20 (it will want 22 from 2027); stderr here must show only our lines.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...s3Env(),
  });
  const configFor = (storage: 'fs' | 's3') =>
    testConfig(dir, {
      storage,
      s3Bucket: bucket,
      s3Prefix: PREFIX,
      s3Endpoint: s3.endpoint,
      s3Region: s3.region,
      s3ForcePathStyle: true,
      s3AccessKeyId: s3.accessKeyId,
      s3SecretAccessKey: s3.secretAccessKey,
    });
  const key = (sha256: string): string => `${PREFIX}/blobs/sha256/${sha256.slice(0, 2)}/${sha256}`;
  const blobFile = (sha256: string): string => path.join(dir, 'blobs', 'sha256', sha256.slice(0, 2), sha256);
  const objectBytes = async (sha256: string): Promise<Buffer> => {
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(sha256) }));
    return Buffer.from(await got.Body!.transformToByteArray());
  };
  const objectExists = async (sha256: string): Promise<boolean> =>
    client.send(new HeadObjectCommand({ Bucket: bucket, Key: key(sha256) })).then(
      () => true,
      (err: { $metadata?: { httpStatusCode?: number } }) => {
        if (err.$metadata?.httpStatusCode === 404) return false;
        throw err;
      },
    );
  const keysUnder = async (prefix: string): Promise<string[]> => {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${PREFIX}/${prefix}` }));
    return (listed.Contents ?? []).map((o) => o.Key!).sort();
  };
  const migrate = async (to: 's3' | 'fs', from: 'fs' | 's3', ...more: string[]) => {
    const run = await runCli(['migrate-storage', '--to', to, '--json', ...more], env(from));
    return { ...run, report: run.stdout ? (JSON.parse(run.stdout) as Report) : null };
  };
  const digests = (list: Array<{ sha256: string }>): string[] => list.map((b) => b.sha256).sort();

  beforeAll(async () => {
    s3 = await startTestS3();
    client = testS3Client(s3);
    bucket = await createTestBucket(s3);
    dir = await makeTempDir('goldmirror-migrate-storage-');
    // A mirror on the filesystem store with the bucket already configured, as an operator prepares the move.
    const runtime = await openRuntime(configFor('fs'), createLogger('silent'));
    try {
      const sizes = { small: 30_000, medium: 1_500_000, big: (9 << 20) + 4321 }; // big: more than one 8 MiB part
      for (const [which, size] of Object.entries(sizes) as Array<[keyof typeof sizes, number]>) {
        const data = testBytes(size, `migrate-storage-${which}`);
        const { blob } = await ingest(runtime.ingestDeps, { source: [data], fileName: `Win11-${which}.pvmp` });
        good[which] = { sha256: blob.sha256, name: blob.name, data };
      }
      // A package whose check found it corrupt: quarantined, and its bad bytes put back where the blob was.
      const { blob } = await ingest(runtime.ingestDeps, {
        source: [testBytes(40_000, 'migrate-storage-rotten')],
        fileName: 'rotten.pvmp',
      });
      rotten = blob.sha256;
      await flipByte(blobFile(rotten), 1234);
      expect(await runtime.checker.check(blob.sha256 as Sha256)).toBe('corrupt');
      const [quarantined] = await fs.readdir(path.join(dir, 'quarantine'));
      await fs.copyFile(path.join(dir, 'quarantine', quarantined!), blobFile(rotten));
    } finally {
      await runtime.close();
    }
    const store = await openBlobStore(dir);
    unlisted = (await store.put([testBytes(25_000, 'migrate-storage-unlisted')])).sha256;
  });

  afterAll(async () => {
    client?.destroy();
    await s3?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('copies every package the catalog lists into the bucket, each checked, and leaves the rest', async () => {
    const { code, stderr, report } = await migrate('s3', 'fs');
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(report).toMatchObject({
      from: { kind: 'fs', location: path.join(dir, 'blobs', 'sha256') },
      to: { kind: 's3', location: expect.stringContaining(`bucket ${bucket} (prefix ${PREFIX})`) as string },
      packages: 4,
      failed: [],
      missing: [],
      skipped: [],
      corrupt: [{ sha256: rotten, size: 40_000, detail: expect.any(String) as string }],
      notInCatalog: [{ sha256: unlisted, size: 25_000 }],
      ok: true,
      switchTo: { MIRROR_STORAGE: 's3' },
    });
    expect(digests(report!.copied)).toEqual(digests(Object.values(good)));
    expect(report!.copiedBytes).toBe(Object.values(good).reduce((n, g) => n + g.data.length, 0));
    for (const g of Object.values(good)) expect((await objectBytes(g.sha256)).equals(g.data)).toBe(true);
    expect(await objectExists(rotten)).toBe(false);
    expect(await objectExists(unlisted)).toBe(false);
    expect(await keysUnder('tmp/')).toEqual([]);
    // Nothing switched: the catalog and the local files are as they were.
    for (const g of Object.values(good)) expect((await fs.readFile(blobFile(g.sha256))).equals(g.data)).toBe(true);
  });

  it('copies nothing on a re-run, and says which settings to change', async () => {
    const run = await runCli(['migrate-storage', '--to', 's3'], env('fs'));
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(
      /4 package\(s\) in the catalog: 0 copied \(0 B\), 3 already there, 0 failed, 1 corrupt or missing \(not copied\)/,
    );
    expect(run.stdout).toMatch(new RegExp(`corrupt  ${rotten}  not copied`));
    expect(run.stdout).toMatch(new RegExp(`unlisted ${unlisted}`));
    expect(run.stdout).toMatch(/set MIRROR_STORAGE=s3 \(keep the MIRROR_S3_\* settings\)/);
    expect(run.stdout).toMatch(/restart every goldmirror process/);
  });

  it('refuses a source copy that does not hash to its digest, stores none of it, and exits non-zero', async () => {
    const big = good.big;
    await flipByte(blobFile(big.sha256), big.data.length - 10);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(big.sha256) }));

    const { code, report } = await migrate('s3', 'fs');
    expect(code).toBe(1);
    expect(report).toMatchObject({
      copied: [],
      failed: [
        {
          sha256: big.sha256,
          size: big.data.length,
          code: 'DIGEST_MISMATCH',
          reason: expect.stringMatching(/hashes to [0-9a-f]{64}: it is corrupt and was not stored/) as string,
        },
      ],
      ok: false,
      switchTo: null,
    });
    expect(digests(report!.skipped)).toEqual(digests([good.small, good.medium]));
    expect(await objectExists(big.sha256)).toBe(false);
    expect(await keysUnder('tmp/')).toEqual([]);

    const text = await runCli(['migrate-storage', '--to', 's3'], env('fs'));
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`FAILED   ${big.sha256}  the copy in .* is corrupt`));
    expect(text.stdout).not.toMatch(/MIRROR_STORAGE=s3/);
    expect(text.stderr).toMatch(/1 package\(s\) could not be copied; do not switch yet/);

    await flipByte(blobFile(big.sha256), big.data.length - 10);
    const repaired = await migrate('s3', 'fs');
    expect(repaired.code).toBe(0);
    expect(repaired.report!.copied).toEqual([{ sha256: big.sha256, size: big.data.length, replaced: false }]);
    expect((await objectBytes(big.sha256)).equals(big.data)).toBe(true);
  });

  it('with --verify-existing re-hashes what the bucket holds and replaces a copy with the wrong bytes', async () => {
    const medium = good.medium;
    const impostor = testBytes(medium.data.length, 'not-the-package');
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key(medium.sha256), Body: impostor }));

    const trusting = await migrate('s3', 'fs');
    expect({ code: trusting.code, copied: trusting.report!.copied }).toEqual({ code: 0, copied: [] });

    const verifying = await migrate('s3', 'fs', '--verify-existing');
    expect(verifying.code).toBe(0);
    expect(verifying.report!.copied).toEqual([{ sha256: medium.sha256, size: medium.data.length, replaced: true }]);
    expect(verifying.report!.skipped).toEqual(
      [good.small, good.big]
        .map((g) => ({ sha256: g.sha256, size: g.data.length, verified: true }))
        .sort((a, b) => a.sha256.localeCompare(b.sha256)),
    );
    expect((await objectBytes(medium.sha256)).equals(medium.data)).toBe(true);
  });

  it('a server with MIRROR_STORAGE=s3 serves the copies, and --to fs brings them back into blobs/', async () => {
    await fs.rm(path.join(dir, 'blobs'), { recursive: true, force: true });
    const runtime = await openRuntime(configFor('s3'), createLogger('silent'));
    const server = await startServer(runtime);
    try {
      for (const g of Object.values(good)) {
        const response = await fetch(`${server.url}/d/${g.sha256}/${g.name}`);
        expect(response.status).toBe(200);
        expect(Buffer.from(await response.arrayBuffer()).equals(g.data)).toBe(true);
      }
    } finally {
      await server.close(1000);
      await runtime.close();
    }

    const back = await migrate('fs', 's3');
    expect({ code: back.code, stderr: back.stderr }).toEqual({ code: 0, stderr: '' });
    expect(back.report).toMatchObject({
      from: { kind: 's3' },
      to: { kind: 'fs', location: path.join(dir, 'blobs', 'sha256') },
      failed: [],
      corrupt: [{ sha256: rotten }],
      notInCatalog: [],
      ok: true,
      switchTo: { MIRROR_STORAGE: 'fs' },
    });
    expect(digests(back.report!.copied)).toEqual(digests(Object.values(good)));
    for (const g of Object.values(good)) expect((await fs.readFile(blobFile(g.sha256))).equals(g.data)).toBe(true);
    await expect(fs.stat(blobFile(rotten))).rejects.toThrow(/ENOENT/);

    const again = await runCli(['migrate-storage', '--to', 'fs'], env('s3'));
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/0 copied \(0 B\), 3 already there/);
    expect(again.stdout).toMatch(/set MIRROR_STORAGE=fs/);
  });

  it('refuses bad input with one clear line', async () => {
    const help = await runCli(['--help']);
    expect(help.stdout).toMatch(/migrate-storage\s+copy every package/);
    const noTarget = await runCli(['migrate-storage'], env('fs'));
    expect({ code: noTarget.code, stderr: noTarget.stderr }).toEqual({
      code: 2,
      stderr: expect.stringMatching(/give --to s3 or --to fs/) as string,
    });
    expect((await runCli(['migrate-storage', '--to', 'gcs'], env('fs'))).code).toBe(2);
    const same = await runCli(['migrate-storage', '--to', 'fs'], env('fs'));
    expect({ code: same.code, stderr: same.stderr }).toEqual({
      code: 2,
      stderr: expect.stringMatching(/MIRROR_STORAGE is already fs/) as string,
    });
    const unnamed = await runCli(['migrate-storage', '--to', 's3'], { ...env('fs'), MIRROR_S3_BUCKET: '' });
    expect({ code: unnamed.code, stderr: unnamed.stderr }).toEqual({
      code: 2,
      stderr: expect.stringMatching(/set MIRROR_S3_BUCKET/) as string,
    });
    const empty = await makeTempDir();
    const noCatalog = await runCli(['migrate-storage', '--to', 's3'], { ...env('fs'), MIRROR_DATA_DIR: empty });
    if (!onPostgres) {
      expect({ code: noCatalog.code, stderr: noCatalog.stderr }).toEqual({
        code: 1,
        stderr: expect.stringMatching(/no catalog at .*goldmirror\.db; point --data-dir/) as string,
      });
      expect(await fs.readdir(empty)).toEqual([]);
    }
    await fs.rm(empty, { recursive: true, force: true });
    const down = await runCli(['migrate-storage', '--to', 's3'], {
      ...env('fs'),
      MIRROR_S3_ENDPOINT: `http://127.0.0.1:${await freePort()}`,
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/object storage bucket .* is not reachable/);
    expect(down.stderr).not.toMatch(/\n\s+at /);
  });
});
