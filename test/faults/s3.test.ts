/**
 * Faults of the S3 store, each against a real server (s3rver in-process, or
 * the one MIRROR_TEST_S3_ENDPOINT names, Swift in CI): a writer killed -9 in
 * the middle of a multipart upload, the bucket going away in the middle of a
 * download and coming back, a flipped byte in a stored object, and two nodes
 * sharing one bucket and one PostgreSQL database.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBlob } from '../../server/db/repos/blobs.js';
import { openBlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { repoRoot } from '../helpers/cli.js';
import {
  makeTempDir,
  putBlob,
  sha256Hex,
  startMirror,
  testBytes,
  testStream,
  type TestMirror,
} from '../helpers/env.js';
import { createTestBucket, s3SettingsFor, startS3rver, startTestS3, type TestS3Server } from '../helpers/s3.js';
import { bucketView, type BucketView } from '../helpers/s3-bucket.js';
import { waitFor } from '../helpers/wait.js';
import { call, type ApiResult } from '../helpers/api.js';
import { onPostgres, testDatabaseUrl } from '../helpers/database.js';
import {
  createToken,
  downloadSha256,
  kill9,
  killAllChildren,
  mirrorEnv,
  request,
  sleep,
  startServe,
  track,
  type ServeProc,
} from './helpers.js';

const MiB = 1024 * 1024;

const blobKey = (sha256: string): string => `blobs/sha256/${sha256.slice(0, 2)}/${sha256}`;

describe('kill -9 of a writer in the middle of a multipart upload', () => {
  let server: TestS3Server;
  let bucket: string;
  let work: string;
  let view: BucketView;

  beforeAll(async () => {
    server = await startTestS3();
    bucket = await createTestBucket(server);
    work = await makeTempDir('goldmirror-s3-kill-');
    view = bucketView(server, bucket, 'killed');
  });
  afterAll(async () => {
    await killAllChildren();
    view.close();
    await server.close();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('leaves nothing under blobs/, and the next start aborts its upload and removes its marker and part files', async () => {
    // Three 32 MiB parts (the part size of an upload of unknown size): killed after the first is uploaded.
    const size = 96 * MiB;
    const seed = 'killed writer';
    const sha256 = sha256Hex(testBytes(size, seed)) as Sha256;
    const settings = s3SettingsFor(server, bucket, 'killed');
    // Two writers on one data dir: one to a temp key (digest unknown), one straight to the blob's key (digest given).
    const dataDir = path.join(work, 'data');
    const writers = [undefined, sha256].map((expectedSha256) => {
      const input = { dataDir, settings, size, seed, expectedSha256, pauseMs: 40 };
      const child = track(
        spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 's3-writer.ts')], {
          cwd: repoRoot,
          env: { ...process.env, GOLDMIRROR_S3_WRITER: JSON.stringify(input) },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      const output = { stdout: '', stderr: '' };
      child.stdout.on('data', (d: Buffer) => (output.stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output.stderr += d.toString()));
      const uploaded = (): number => Math.max(0, ...[...output.stdout.matchAll(/progress (\d+)/g)].map((m) => +m[1]!));
      return { child, output, uploaded };
    });

    // A part uploaded by each, and both markers written: the writers are well inside their uploads.
    await waitFor(
      async () => {
        for (const w of writers) if (w.child.exitCode !== null) throw new Error(`writer exited: ${w.output.stderr}`);
        const markers = (await view.keys('tmp/')).filter((key) => key.endsWith('.json'));
        return markers.length === 2 && writers.every((w) => w.uploaded() >= 32 * MiB);
      },
      { what: 'both writers to upload a part', timeoutMs: 60_000, intervalMs: 50 },
    );
    for (const w of writers) expect(w.uploaded()).toBeLessThan(size);
    await Promise.all(writers.map((w) => kill9(w.child)));

    expect(await view.keys('blobs/')).toEqual([]);
    const markers = await view.keys('tmp/');
    // One marker per writer, named by its PID.
    const pids = writers.map((w) => w.child.pid!).sort();
    const pidOf = (name: string): number => Number(/ingest-(\d+)[@~]/.exec(name)?.[1]);
    expect(markers.map(pidOf).sort()).toEqual(pids);
    const open = await view.openUploads();
    if (open !== null) {
      // Where the server lists uploads: the one at the blob's key and the one at the other writer's temp key.
      expect(open).toHaveLength(2);
      expect(open).toContain(blobKey(sha256));
      expect(markers.map((key) => key.replace(/\.json$/, ''))).toContain(open.find((key) => key !== blobKey(sha256)));
    }

    // The part files each was spooling, in the local tmp/, named after the writer too.
    const localTmp = path.join(dataDir, 'tmp');
    const partFiles = (await fs.readdir(localTmp)).sort();
    expect([...new Set(partFiles.map(pidOf))].sort()).toEqual(pids);

    // What `serve` does when it starts on that data dir.
    const store = await openBlobStore(dataDir, { kind: 's3', settings });
    const removed = await store.removeStaleTmpFiles();
    expect(removed.sort()).toEqual(
      [...partFiles.map((name) => path.join(localTmp, name)), ...markers.map((key) => `${view.prefix}${key}`)].sort(),
    );
    expect(await fs.readdir(localTmp)).toEqual([]);
    expect(await view.keys('tmp/')).toEqual([]);
    expect(await view.keys('blobs/')).toEqual([]);
    if (open !== null) expect(await view.openUploads()).toEqual([]);

    // The killed upload does not get in the way of storing the same content again.
    const again = await store.put(testStream(size, seed), { expectedSha256: sha256 });
    expect(again).toMatchObject({ sha256, size, created: true });
    expect(await view.keys('tmp/')).toEqual([]);
  });
});

/** A GET whose body the test reads at its own pace. */
function openDownload(url: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.pause();
      resolve(res);
    });
    req.on('error', reject);
  });
}

/** Reads from `res` into `chunks` until at least `total` bytes are there, then pauses it. */
async function readUpTo(res: http.IncomingMessage, chunks: Buffer[], total: number): Promise<void> {
  const have = (): number => chunks.reduce((n, c) => n + c.length, 0);
  if (have() >= total) return;
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      chunks.push(d);
      if (have() >= total) done();
    };
    const done = (err?: Error): void => {
      res.pause();
      res.off('data', onData);
      res.off('error', done);
      if (err) reject(err);
      else resolve();
    };
    res.on('data', onData);
    res.once('error', done);
    res.resume();
  });
}

/** Reads the rest of `res` into `chunks` until it ends or breaks; resolves with whether all of it came. */
function readToEnd(res: http.IncomingMessage, chunks: Buffer[]): Promise<{ complete: boolean }> {
  return new Promise((resolve) => {
    res.on('data', (d: Buffer) => chunks.push(d));
    res.once('close', () => resolve({ complete: res.complete }));
    res.once('error', () => undefined);
    res.resume();
  });
}

describe('the bucket unreachable in the middle of a download', () => {
  let s3: Awaited<ReturnType<typeof startS3rver>>;
  let mirror: TestMirror;

  beforeAll(async () => {
    s3 = await startS3rver();
    const bucket = await createTestBucket(s3);
    mirror = await startMirror({
      storage: 's3',
      s3Bucket: bucket,
      s3Prefix: '',
      s3Endpoint: s3.endpoint,
      s3ForcePathStyle: true,
      s3AccessKeyId: 'S3RVER',
      s3SecretAccessKey: 'S3RVER',
    });
  });
  afterAll(async () => {
    await mirror?.close();
    await s3?.close();
  });

  it('breaks the transfer without a wrong byte, answers 503 while it is down, and serves again once it is back', async () => {
    const data = testBytes(32 * MiB + 5, 'unreachable');
    const sha256 = await putBlob(mirror, data, 'Win11.pvmp');
    const url = `${mirror.url}/d/${sha256}/Win11.pvmp`;

    const res = await openDownload(url);
    expect(res.statusCode).toBe(200);
    expect(Number(res.headers['content-length'])).toBe(data.length);
    const chunks: Buffer[] = [];
    for (let mib = 1; mib <= 4; mib += 1) {
      await readUpTo(res, chunks, mib * MiB);
      await sleep(50);
    }
    await s3.stop();
    const { complete } = await readToEnd(res, chunks);
    const got = Buffer.concat(chunks);
    expect(complete).toBe(false);
    expect(got.length).toBeGreaterThanOrEqual(4 * MiB);
    expect(got.length).toBeLessThan(data.length);
    // Every byte that arrived is the package's byte at that offset.
    expect(got.equals(data.subarray(0, got.length))).toBe(true);

    await expectUnavailable(url);
    await s3.start();
    expect(await downloadSha256(url)).toEqual({ status: 200, sha256, bytes: data.length });

    // Down again right after a download that went well (its reader still open for reuse): still a clean 503.
    await s3.stop();
    await expectUnavailable(url);
    await s3.start();
    expect(await downloadSha256(url)).toEqual({ status: 200, sha256, bytes: data.length });
  });
});

/** A download started while the bucket is down: 503 STORAGE_UNAVAILABLE with Retry-After, soon, and no bucket details. */
async function expectUnavailable(url: string): Promise<void> {
  const startedMs = Date.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  const body = await res.text();
  expect({ status: res.status, body }).toMatchObject({ status: 503 });
  expect((JSON.parse(body) as { error: { code: string } }).error.code).toBe('STORAGE_UNAVAILABLE');
  expect(res.headers.get('retry-after')).toBe('5');
  expect(body).not.toMatch(/127\.0\.0\.1|gm-test-/);
  expect(Date.now() - startedMs).toBeLessThan(20_000);
}

describe('a flipped byte in a stored object', () => {
  let server: TestS3Server;
  let mirror: TestMirror;
  let view: BucketView;

  beforeAll(async () => {
    server = await startTestS3();
    const bucket = await createTestBucket(server);
    const settings = s3SettingsFor(server, bucket, 'flipped');
    view = bucketView(server, bucket, 'flipped');
    mirror = await startMirror({
      storage: 's3',
      s3Bucket: bucket,
      s3Prefix: settings.prefix,
      s3Endpoint: settings.endpoint,
      s3Region: settings.region,
      s3ForcePathStyle: true,
      s3AccessKeyId: settings.accessKeyId,
      s3SecretAccessKey: settings.secretAccessKey,
    });
  });
  afterAll(async () => {
    await mirror?.close();
    view?.close();
    await server?.close();
  });

  it('is found by the next check: the blob is corrupt, its object moved under quarantine/, and the link answers 503', async () => {
    const data = testBytes(6 * MiB + 3, 'flip');
    const sha256 = (await putBlob(mirror, data, 'Win11.pvmp')) as Sha256;
    const url = `${mirror.url}/d/${sha256}/Win11.pvmp`;
    expect(await downloadSha256(url)).toEqual({ status: 200, sha256, bytes: data.length });

    const flipped = Buffer.from(await view.get(blobKey(sha256)));
    expect(flipped.equals(data)).toBe(true);
    flipped[5 * MiB + 1] = flipped[5 * MiB + 1]! ^ 0x01;
    await view.put(blobKey(sha256), flipped);

    expect(await mirror.runtime.checker.check(sha256)).toBe('corrupt');
    const row = await findBlob(mirror.runtime.db, sha256);
    expect(row?.state).toBe('corrupt');
    expect(row?.state_detail).toBe(`content hashes to ${sha256Hex(flipped)}`);
    expect(await view.keys('blobs/')).toEqual([]);
    const quarantined = await view.keys('quarantine/');
    expect(quarantined).toEqual([expect.stringMatching(new RegExp(`^quarantine/${sha256}-\\d+$`))]);
    expect((await view.get(quarantined[0]!)).equals(flipped)).toBe(true);

    const res = await fetch(url);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BLOB_UNAVAILABLE');
  });
});

describe.skipIf(!onPostgres)('two nodes on one bucket and one PostgreSQL database', () => {
  let server: TestS3Server;
  let view: BucketView;
  let work: string;
  let token: string;
  let one: ServeProc;
  let two: ServeProc;
  const api = <T>(node: ServeProc, method: string, route: string, json?: unknown): Promise<ApiResult<T>> =>
    call<T>(node.url, method, `/api/v1${route}`, { token, json });

  /**
   * A package uploaded through `node` with the upload form (multipart/form-data), with its checksum file first or
   * without one; resolves with its digest once stored. (tus on S3 needs ListParts, which s3rver lacks.)
   */
  async function upload(node: ServeProc, data: Buffer, filename: string, checked: boolean): Promise<string> {
    const sha256 = sha256Hex(data);
    const boundary = '----goldmirror-two-nodes';
    const part = (name: string, file: string, content: Buffer | string): Buffer[] => [
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${file}"\r\n` +
          'Content-Type: application/octet-stream\r\n\r\n',
      ),
      Buffer.from(content),
      Buffer.from('\r\n'),
    ];
    const body = Buffer.concat([
      ...(checked ? part('checksum', `${filename}.txt`, `${sha256}  ${filename}\n`) : []),
      ...part('package', filename, data),
      Buffer.from(`--${boundary}--\r\n`),
    ]);
    const res = await fetch(`${node.url}/admin/upload`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': `multipart/form-data; boundary=${boundary}` },
      body,
      redirect: 'manual',
    });
    expect(res.status, await res.text()).toBe(303);
    const done = checked ? 'blob-uploaded' : 'blob-uploaded-unchecked';
    expect(res.headers.get('location')).toBe(`/admin/blobs/${sha256}?done=${done}`);
    return sha256;
  }

  beforeAll(async () => {
    server = await startTestS3();
    const bucket = await createTestBucket(server);
    view = bucketView(server, bucket, 'nodes');
    work = await makeTempDir('goldmirror-s3-nodes-');
    const shared = {
      MIRROR_STORAGE: 's3',
      MIRROR_S3_BUCKET: bucket,
      MIRROR_S3_PREFIX: 'nodes',
      MIRROR_S3_ENDPOINT: server.endpoint,
      MIRROR_S3_REGION: server.region,
      MIRROR_S3_FORCE_PATH_STYLE: 'true',
      MIRROR_S3_ACCESS_KEY_ID: server.accessKeyId,
      MIRROR_S3_SECRET_ACCESS_KEY: server.secretAccessKey,
      // One schema for both nodes, though each has its own data dir (and so its own local temp dir).
      MIRROR_DATABASE_URL: testDatabaseUrl(path.join(work, 'catalog')),
      MIRROR_GC_GRACE: '0',
    };
    const envOne = mirrorEnv(path.join(work, 'one'), shared);
    token = await createToken(envOne, 'nodes');
    [one, two] = await Promise.all([startServe(envOne), startServe(mirrorEnv(path.join(work, 'two'), shared))]);
  });
  afterAll(async () => {
    await killAllChildren();
    view?.close();
    await server?.close();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('serves through one node what was uploaded through the other, and a delete through one is seen by the other', async () => {
    const data = testBytes(9 * MiB + 7, 'two nodes');
    const sha256 = await upload(one, data, 'Win11.pvmp', true);
    expect(await view.keys('blobs/')).toEqual([blobKey(sha256)]);
    expect(await downloadSha256(`${two.url}/d/${sha256}/Win11.pvmp`)).toEqual({
      status: 200,
      sha256,
      bytes: data.length,
    });
    const ranged = await request(`${two.url}/d/${sha256}/Win11.pvmp`, { headers: { Range: 'bytes=8388600-8388700' } });
    expect(ranged.status).toBe(206);
    expect(ranged.bytes.equals(data.subarray(8_388_600, 8_388_701))).toBe(true);

    const deleted = await api(one, 'DELETE', `/blobs/${sha256}`);
    expect(deleted.status, deleted.text).toBe(200);
    expect(await view.keys('blobs/')).toEqual([]);
    expect((await api(two, 'GET', `/blobs/${sha256}`)).status).toBe(404);
    const gone = await request(`${two.url}/d/${sha256}/Win11.pvmp`);
    expect({ status: gone.status, code: (JSON.parse(gone.body) as { error: { code: string } }).error.code }).toEqual({
      status: 404,
      code: 'BLOB_UNKNOWN',
    });
  });

  it('garbage collected through one node is gone for the other', async () => {
    const data = testBytes(6 * MiB + 1, 'collected');
    // Without a checksum file: an ingest of a known digest keeps it "in use" for GC a minute after it ends.
    const sha256 = await upload(two, data, 'Old.pvmp', false);
    expect((await api(one, 'GET', `/blobs/${sha256}`)).status).toBe(200);
    const gc = await api<{ removed: Array<{ sha256: string }> }>(two, 'POST', '/gc', {});
    expect(gc.status, gc.text).toBe(200);
    expect(
      gc.body.removed.map((r) => r.sha256),
      gc.text,
    ).toEqual([sha256]);
    expect(await view.keys('blobs/')).toEqual([]);
    expect((await api(one, 'GET', `/blobs/${sha256}`)).status).toBe(404);
    expect((await request(`${one.url}/d/${sha256}/Old.pvmp`)).status).toBe(404);
    // Nothing of either upload is left in the bucket or in either node's temp dir.
    expect(await view.keys('tmp/')).toEqual([]);
    for (const node of ['one', 'two']) expect(await fs.readdir(path.join(work, node, 'tmp'))).toEqual([]);
  });
});
