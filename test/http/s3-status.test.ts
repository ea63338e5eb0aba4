/**
 * What goldmirror says about itself when its blobs are in a bucket (s3rver on
 * 127.0.0.1): `goldmirror doctor` checks the bucket and compares its objects
 * with the catalog, health fails when the bucket stops answering, and the
 * dashboard and /metrics show the bucket's usage instead of disk figures.
 */
import fs from 'node:fs/promises';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../server/services/doctor.js';
import { runDoctor } from '../../server/services/doctor.js';
import type { Sha256 } from '../../storage/digest.js';
import { createKeys } from '../../storage/s3/keys.js';
import { bootstrapTestAdmin, call, issueToken, mustSignIn } from '../helpers/api.js';
import { runCli } from '../helpers/cli.js';
import { putBlob, sha256Hex, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { createTestBucket, startTestS3, testS3Client, type TestS3Server } from '../helpers/s3.js';
import { waitFor } from '../helpers/wait.js';

function s3Overrides(s3: TestS3Server, bucket: string, prefix: string): Record<string, unknown> {
  return {
    storage: 's3',
    s3Bucket: bucket,
    s3Prefix: prefix,
    s3Endpoint: s3.endpoint,
    s3Region: s3.region,
    s3ForcePathStyle: true,
    s3AccessKeyId: s3.accessKeyId,
    s3SecretAccessKey: s3.secretAccessKey,
  };
}

/** The same settings as MIRROR_* variables, for the CLI. */
function s3Env(s3: TestS3Server, bucket: string, prefix: string, dataDir: string): Record<string, string> {
  return {
    MIRROR_DATA_DIR: dataDir,
    MIRROR_MIN_FREE_BYTES: '0',
    MIRROR_LOG_LEVEL: 'silent',
    MIRROR_STORAGE: 's3',
    MIRROR_S3_BUCKET: bucket,
    MIRROR_S3_PREFIX: prefix,
    MIRROR_S3_ENDPOINT: s3.endpoint,
    MIRROR_S3_REGION: s3.region,
    MIRROR_S3_FORCE_PATH_STYLE: 'true',
    MIRROR_S3_ACCESS_KEY_ID: s3.accessKeyId,
    MIRROR_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
}

describe('status of a mirror on S3', () => {
  let s3: TestS3Server;
  let bucket: string;
  let client: S3Client;
  let m: TestMirror;
  const sizes = { kept: 3000, gone: 1000 };

  beforeAll(async () => {
    s3 = await startTestS3();
    bucket = await createTestBucket(s3);
    client = testS3Client(s3);
    m = await startMirror(s3Overrides(s3, bucket, 'status'));
    await putBlob(m, testBytes(sizes.kept, 'status-kept'), 'Kept.pvmp');
  });
  afterAll(async () => {
    await m?.close();
    client?.destroy();
    await s3?.close();
  });

  it('doctor checks the bucket, names where it is (not the secret) and compares its objects with the catalog', async () => {
    const keys = createKeys('status');
    const clean = await runDoctor(m.runtime);
    expect(clean.problems).toEqual([]);
    expect(clean.ok).toBe(true);
    expect(clean.storage).toEqual({
      kind: 's3',
      location: `bucket ${bucket} (prefix status) at ${s3.endpoint}`,
      reachable: true,
      writable: true,
      blobs: 1,
      bytes: sizes.kept,
    });
    expect(clean.config.s3SecretAccessKey).toBe('(set)');
    // The write probe leaves nothing behind.
    const probes = await listKeys(client, bucket, keys.tmpPrefix);
    expect(probes).toEqual([]);

    // A registered package whose object is gone, and an object nobody registered.
    const gone = await putBlob(m, testBytes(sizes.gone, 'status-gone'), 'Gone.pvmp');
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keys.blob(gone as Sha256) }));
    const stray = testBytes(500, 'status-stray');
    const strayDigest = sha256Hex(stray);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: keys.blob(strayDigest as Sha256), Body: stray }));

    const report = await runDoctor(m.runtime);
    expect(report.ok).toBe(false);
    expect(report.files.missing).toEqual([gone]);
    expect(report.files.orphaned).toEqual([strayDigest]);
    expect(report.files.wrongSize).toEqual([]);
    expect(report.storage).toMatchObject({ blobs: 2, bytes: sizes.kept + 500 });
    expect(report.problems).toEqual([
      '1 blob object(s) have no database row (goldmirror gc removes them after the grace period)',
      '1 package(s) are registered but their objects are missing',
    ]);
    // The data dir's free space is still checked: it holds the temp files.
    expect(report.disk.freeBytes).toBeGreaterThan(0);
    expect(report.dataDir).toEqual({ path: m.dir, writable: true });

    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keys.blob(strayDigest as Sha256) }));
  });

  it('goldmirror doctor (CLI) reports the bucket in text and --json', async () => {
    const cli = await startMirror(s3Overrides(s3, bucket, 'status-cli'));
    const dir = cli.dir;
    await putBlob(cli, testBytes(2048, 'status-cli'), 'Cli.pvmp');
    await cli.server.close(1000);
    await cli.runtime.close();
    const env = s3Env(s3, bucket, 'status-cli', dir);
    try {
      const json = await runCli(['doctor', '--json'], env);
      expect(json.code, json.stderr).toBe(0);
      const report = JSON.parse(json.stdout) as DoctorReport;
      expect(report.storage).toEqual({
        kind: 's3',
        location: `bucket ${bucket} (prefix status-cli) at ${s3.endpoint}`,
        reachable: true,
        writable: true,
        blobs: 1,
        bytes: 2048,
      });
      expect(report.config.s3SecretAccessKey).toBe('(set)');
      const text = await runCli(['doctor'], env);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain(
        `storage:   bucket ${bucket} (prefix status-cli) at ${s3.endpoint}: reachable, writable, 1 blob(s), 2.0 kB`,
      );
      expect(text.stdout).toMatch(/^disk: .* free of .*, data dir$/m);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('shows the bucket on the dashboard and in /metrics instead of disk figures for the blobs', async () => {
    await bootstrapTestAdmin(m);
    const session = await mustSignIn(m.url);
    const dashboard = await call(m.url, 'GET', '/admin', { session });
    expect(dashboard.status).toBe(200);
    expect(dashboard.text).not.toContain('Disk free');
    expect(dashboard.text).toContain('Bucket');
    expect(dashboard.text).toContain(`object(s) in bucket ${bucket} (prefix status) at ${s3.endpoint}`);

    const token = await issueToken(m, 'status-metrics');
    const metrics = await call(m.url, 'GET', '/metrics', { token });
    expect(metrics.status).toBe(200);
    const objects = Number(/^goldmirror_bucket_objects (\d+)$/m.exec(metrics.text)?.[1]);
    const bytes = Number(/^goldmirror_bucket_bytes (\d+)$/m.exec(metrics.text)?.[1]);
    const usage = await m.runtime.store.bucketUsage!();
    expect(objects).toBe(usage.objects);
    expect(bytes).toBe(usage.bytes);
    expect(bytes).toBeGreaterThanOrEqual(sizes.kept);
    // The local free space guards temp files and stays; disk "used" said nothing about blobs in a bucket.
    expect(metrics.text).toMatch(/^goldmirror_disk_free_bytes \d+$/m);
    expect(metrics.text).not.toContain('goldmirror_disk_used_bytes');
  });

  it('health passes while the bucket answers, and fails with STORAGE_UNAVAILABLE once it does not', async () => {
    const own = await startTestS3({ stoppable: true });
    const ownBucket = await createTestBucket(own);
    const mirror = await startMirror(s3Overrides(own, ownBucket, 'health'));
    try {
      const token = await issueToken(mirror, 'health');
      const good = await call<{ checks: Record<string, string> }>(mirror.url, 'GET', '/api/v1/health', { token });
      expect(good.status).toBe(200);
      expect(good.body.checks).toEqual({ database: 'ok', storage: 'ok', dataDir: 'ok', disk: 'ok' });
      expect(JSON.parse((await call(mirror.url, 'GET', '/healthz')).text)).toEqual({ status: 'ok', reason: null });

      await own.close();
      // Answers are reused for a few seconds, so a flood of health checks costs the bucket one probe…
      const soon = await call(mirror.url, 'GET', '/healthz');
      expect(soon.status).toBe(200);
      // …and then the silent bucket shows.
      await waitFor(async () => (await call(mirror.url, 'GET', '/healthz')).status === 503, {
        timeoutMs: 15_000,
        intervalMs: 250,
      });
      const bad = await call(mirror.url, 'GET', '/healthz');
      expect(JSON.parse(bad.text)).toEqual({ status: 'unhealthy', reason: 'STORAGE_UNAVAILABLE' });
      const detail = await call<{ reason: string; checks: Record<string, string> }>(
        mirror.url,
        'GET',
        '/api/v1/health',
        { token },
      );
      expect(detail.status).toBe(503);
      expect(detail.body.reason).toBe('STORAGE_UNAVAILABLE');
      expect(detail.body.checks.storage).toMatch(
        new RegExp(`^object storage bucket ${ownBucket} \\(prefix health\\) at .* is not reachable: `),
      );
      expect(detail.body.checks.disk).toBe('ok');

      const report = await runDoctor(mirror.runtime);
      expect(report.ok).toBe(false);
      expect(report.storage).toMatchObject({ reachable: false, writable: false, blobs: null, bytes: null });
      expect(report.problems[0]).toMatch(/is not reachable: /);
      // Nothing could be listed, so nothing is called missing.
      expect(report.files.missing).toEqual([]);

      await bootstrapTestAdmin(mirror);
      const session = await mustSignIn(mirror.url);
      const dashboard = await call(mirror.url, 'GET', '/admin', { session });
      expect(dashboard.status).toBe(200);
      expect(dashboard.text).toContain('<div class="stat">unavailable</div>');
      expect(dashboard.text).toContain(`object storage bucket ${ownBucket} (prefix health)`);
    } finally {
      await mirror.close();
      await own.close().catch(() => undefined);
    }
  });
});

async function listKeys(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (page.Contents ?? []).map((c) => c.Key ?? '');
}
