/**
 * tus uploads when the packages live in a bucket (MIRROR_STORAGE=s3), with two
 * goldmirror servers sharing the bucket and one database as two stateless nodes
 * do: an upload begun on one continues and finishes on the other, the finished
 * upload becomes a package by a server-side copy with the digest of every byte,
 * a checksum that does not match stores nothing and leaves nothing in the bucket,
 * and the free-space guard watches only the local disk the parts pass through.
 *
 * @tus/s3-store needs ListParts (and AbortMultipartUpload to discard), which
 * s3rver 3.7.1 lacks: on s3rver these run against moto_server when this machine
 * has it, and are skipped otherwise. MIRROR_TEST_S3_ENDPOINT (CI's Swift) is used as is.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import {
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { Upload } from '@tus/server';
import { HashingBucketStore } from '../../server/http/upload-bucket-store.js';
import type { UnfinishedUpload } from '../../server/http/uploads.js';
import { createLogger } from '../../server/log.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import { startServer, type ServerHandle } from '../../server/serve.js';
import { bootstrapTestAdmin, call, expectError, issueToken, type ApiResult, type CallOptions } from '../helpers/api.js';
import { onPostgres, testDatabaseUrl } from '../helpers/database.js';
import { freePort, makeTempDir, sha256Hex, testBytes, testConfig, type TestMirror } from '../helpers/env.js';
import { createTestBucket, s3SettingsFor, startTestS3, testS3Client, type TestS3Server } from '../helpers/s3.js';
import { openBlobStore } from '../../storage/blob-store.js';
import { createLayout } from '../../storage/layout.js';
import type { S3UploadTarget } from '../../storage/s3/client.js';
import { openPatch, TUS } from '../helpers/tus.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;

function tusMetadata(meta: Record<string, string>): string {
  return Object.entries(meta)
    .map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
    .join(',');
}

/** Whether `server` answers ListParts, which @tus/s3-store calls on every PATCH and HEAD. */
async function listsParts(server: TestS3Server): Promise<boolean> {
  const bucket = await createTestBucket(server);
  const client = testS3Client(server);
  try {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'probe' }));
    await client.send(new ListPartsCommand({ Bucket: bucket, Key: 'probe', UploadId }));
    return true;
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 405 || status === 501) return false;
    throw err;
  } finally {
    client.destroy();
  }
}

/** moto's S3 on a free loopback port, or null when this machine has no moto_server. */
async function startMoto(): Promise<TestS3Server | null> {
  const port = await freePort();
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const started = await new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', () => resolve(false));
  });
  if (!started) return null;
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor(
    () =>
      fetch(endpoint).then(
        () => true,
        () => false,
      ),
    { what: 'moto_server', timeoutMs: 30_000 },
  );
  return {
    endpoint,
    region: 'us-east-1',
    accessKeyId: 'moto',
    secretAccessKey: 'moto',
    kind: 'external',
    async close() {
      child.kill();
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/** An S3 API with the multipart calls @tus/s3-store uses, or why there is none here. */
async function startMultipartS3(): Promise<{ server: TestS3Server } | { skip: string }> {
  const server = await startTestS3();
  if (await listsParts(server)) return { server };
  await server.close();
  const moto = await startMoto();
  if (moto) return { server: moto };
  return {
    skip:
      's3rver 3.7.1 answers ListParts (GET /<bucket>/<key>?uploadId=…) with 405 MethodNotAllowed and @tus/s3-store ' +
      'needs it on every PATCH and HEAD; no moto_server here either (set MIRROR_TEST_S3_ENDPOINT)',
  };
}

interface Node {
  dir: string;
  runtime: Runtime;
  server: ServerHandle;
  url: string;
}

describe('tus uploads on S3, across nodes sharing the bucket', () => {
  let s3: TestS3Server | null = null;
  let skip = '';
  let client: S3Client;
  let bucket: string;
  const prefix = 'gm-tus';
  const nodes: Node[] = [];
  let a: Node;
  let b: Node;
  let token: string;

  /** A server over the bucket; `shareWith`: the node whose database it uses (SQLite: its data dir too). */
  async function startNode(shareWith?: Node): Promise<Node> {
    const server = s3!;
    // Two nodes have separate local dirs and one PostgreSQL; on SQLite they share one data dir to share the database.
    const dir = shareWith && !onPostgres ? shareWith.dir : await makeTempDir();
    const config = testConfig(dir, {
      storage: 's3',
      s3Bucket: bucket,
      s3Prefix: prefix,
      s3Endpoint: server.endpoint,
      s3Region: server.region,
      s3ForcePathStyle: true,
      s3AccessKeyId: server.accessKeyId,
      s3SecretAccessKey: server.secretAccessKey,
      ...(shareWith && onPostgres ? { databaseUrl: testDatabaseUrl(shareWith.dir) } : {}),
    });
    const runtime = await openRuntime(config, createLogger('silent'));
    const handle = await startServer(runtime);
    const node = { dir, runtime, server: handle, url: handle.url };
    nodes.push(node);
    return node;
  }

  const api = <T = unknown>(node: Node, method: string, p: string, options: CallOptions = {}): Promise<ApiResult<T>> =>
    call<T>(node.url, method, `/api/v1${p}`, { token, ...options });
  async function create(node: Node, meta: Record<string, string>, length: number): Promise<string> {
    const res = await api(node, 'POST', '/uploads', {
      headers: { ...TUS, 'Upload-Length': String(length), 'Upload-Metadata': tusMetadata(meta) },
    });
    expect(res.status, res.text).toBe(201);
    return res.headers.get('location')!.split('/').pop()!;
  }
  const patch = (node: Node, id: string, offset: number, data: Buffer): Promise<ApiResult> =>
    api(node, 'PATCH', `/uploads/${id}`, {
      raw: data,
      contentType: 'application/offset+octet-stream',
      headers: { ...TUS, 'Upload-Offset': String(offset) },
    });
  const head = (node: Node, id: string): Promise<ApiResult> => api(node, 'HEAD', `/uploads/${id}`, { headers: TUS });
  const unfinished = async (node: Node, id: string): Promise<UnfinishedUpload | undefined> =>
    (await api<UnfinishedUpload[]>(node, 'GET', '/uploads')).body.find((u) => u.id === id);
  async function download(node: Node, sha: string, name: string): Promise<Buffer> {
    const res = await fetch(`${node.url}/d/${sha}/${name}`);
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  }
  async function keys(under: string): Promise<string[]> {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/${under}` }));
    return (page.Contents ?? []).map((o) => o.Key!).sort();
  }
  /** Files the upload left on the nodes' local disks (their parts pass through tmp/; nothing stays). */
  async function localLeftovers(): Promise<string[]> {
    const found: string[] = [];
    for (const node of [a, b]) {
      const { tmpDir, uploadsDir } = node.runtime.store.layout;
      for (const dir of [tmpDir, uploadsDir]) for (const name of await fs.readdir(dir)) found.push(`${dir}/${name}`);
    }
    return [...new Set(found)];
  }

  beforeAll(async () => {
    const started = await startMultipartS3();
    if ('skip' in started) {
      skip = started.skip;
      return;
    }
    s3 = started.server;
    bucket = await createTestBucket(s3);
    client = testS3Client(s3);
    a = await startNode();
    b = await startNode(a);
    token = await issueToken({ runtime: a.runtime } as TestMirror, 's3-uploads');
    await bootstrapTestAdmin({ runtime: a.runtime, dir: a.dir } as TestMirror);
  });
  afterAll(async () => {
    for (const node of nodes.reverse()) {
      await node.server.close(1000);
      await node.runtime.close();
    }
    for (const dir of new Set(nodes.map((n) => n.dir))) await fs.rm(dir, { recursive: true, force: true });
    client?.destroy();
    await s3?.close();
  });

  it('one node: parts, a short tail and the rest make the package, checked against its .txt, with nothing left over', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const data = testBytes(13 * MiB + 17, 's3-one-node');
    const sha = sha256Hex(data);
    const id = await create(
      a,
      { filename: 'Win11-arm.pvmp', arch: 'arm64', checksum: `${sha}  Win11-arm.pvmp\n` },
      data.length,
    );
    expect(await keys('uploads/')).toEqual([`${prefix}/uploads/${id}.info`]);

    // 6 MiB: a part; 3 MiB: below the 5 MiB minimum, kept as the tail object; the rest joins the tail as the last part.
    expect((await patch(a, id, 0, data.subarray(0, 6 * MiB))).status).toBe(204);
    const second = await patch(a, id, 6 * MiB, data.subarray(6 * MiB, 9 * MiB));
    expect(second.status, second.text).toBe(204);
    expect(second.headers.get('upload-offset')).toBe(String(9 * MiB));
    expect(await keys('uploads/')).toEqual([`${prefix}/uploads/${id}.info`, `${prefix}/uploads/${id}.part`]);
    expect((await head(a, id)).headers.get('upload-offset')).toBe(String(9 * MiB));

    const last = await patch(a, id, 9 * MiB, data.subarray(9 * MiB));
    expect(last.status, last.text).toBe(204);
    expect(last.headers.get('upload-sha256')).toBe(sha);
    expect((await api<{ arch: string; size: number }>(a, 'GET', `/blobs/${sha}`)).body).toMatchObject({
      arch: 'arm64',
      size: data.length,
    });
    expect((await download(a, sha, 'Win11-arm.pvmp')).equals(data)).toBe(true);
    expect(await keys('blobs/')).toEqual([`${prefix}/blobs/sha256/${sha.slice(0, 2)}/${sha}`]);
    expect(await keys('uploads/')).toEqual([]);
    expect(await localLeftovers()).toEqual([]);
  });

  it('an upload begun on A is resumed on B (HEAD, list, PATCH), finished back on A, and stored with the digest of every byte', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const data = testBytes(14 * MiB + 5, 's3-a-b-a');
    const sha = sha256Hex(data);
    const id = await create(a, { filename: 'Across.pvmp' }, data.length);
    expect((await patch(a, id, 0, data.subarray(0, 6 * MiB))).status).toBe(204);

    // B knows it from the bucket: where it stopped, and that it is unfinished.
    const resumed = await head(b, id);
    expect(resumed.status).toBe(200);
    expect(resumed.headers.get('upload-offset')).toBe(String(6 * MiB));
    const listed = await unfinished(b, id);
    expect(listed).toMatchObject({ name: 'Across.pvmp', offset: 6 * MiB, size: data.length, receiving: false });
    expect(listed?.lastDataAt).not.toBeNull();

    // B writes a short tail; A, which hashed only the first part itself, must not trust its own digest after that.
    expect((await patch(b, id, 6 * MiB, data.subarray(6 * MiB, 8 * MiB))).status).toBe(204);
    const last = await patch(a, id, 8 * MiB, data.subarray(8 * MiB));
    expect(last.status, last.text).toBe(204);
    expect(last.headers.get('upload-sha256')).toBe(sha);

    // The outcome is in the database: B answers a late HEAD with the digest too, and serves the package.
    const late = await head(b, id);
    expect(late.status).toBe(200);
    expect(late.headers.get('upload-sha256')).toBe(sha);
    expect((await download(b, sha, 'Across.pvmp')).equals(data)).toBe(true);
    expect(await keys('uploads/')).toEqual([]);
    expect(await localLeftovers()).toEqual([]);
  });

  it('an upload created on A and written entirely on B is stored by B, its digest read from the object', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const data = testBytes(5 * MiB + 3, 's3-all-on-b');
    const sha = sha256Hex(data);
    const id = await create(a, { filename: 'OnB.pvmp', checksum: sha }, data.length);
    const done = await patch(b, id, 0, data);
    expect(done.status, done.text).toBe(204);
    expect(done.headers.get('upload-sha256')).toBe(sha);
    expect((await download(a, sha, 'OnB.pvmp')).equals(data)).toBe(true);
    expect(await keys('uploads/')).toEqual([]);
  });

  it('a checksum that does not match stores nothing and leaves nothing under blobs/ or uploads/, on one node or two', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const before = await keys('blobs/');
    const data = testBytes(7 * MiB + 1, 's3-mismatch');
    const wrong = sha256Hex(testBytes(7 * MiB + 1, 'something-else'));

    // Every byte on A: the digest computed on the way refuses it.
    const one = await create(a, { filename: 'Wrong.pvmp', checksum: `${wrong}  Wrong.pvmp` }, data.length);
    const refused = await patch(a, one, 0, data);
    expect(expectError(refused, 422, 'DIGEST_MISMATCH').message).toContain(wrong);

    // Across nodes: the digest read from the object refuses it just the same.
    const two = await create(a, { filename: 'Wrong.pvmp', checksum: wrong }, data.length);
    expect((await patch(a, two, 0, data.subarray(0, 5 * MiB))).status).toBe(204);
    expectError(await patch(b, two, 5 * MiB, data.subarray(5 * MiB)), 422, 'DIGEST_MISMATCH');

    expect(await keys('blobs/')).toEqual(before);
    expect(await keys('uploads/')).toEqual([]);
    expect(
      await a.runtime.db.selectFrom('blobs').select('sha256').where('sha256', '=', sha256Hex(data)).execute(),
    ).toEqual([]);
    // A late HEAD on either node reports the refusal, not an offset to resume at.
    for (const node of [a, b]) expect((await head(node, one)).status).toBe(404);
  });

  it('when another writer replaced bytes this node had hashed (same offset, new tail), the digest is that of the stored bytes', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const data = testBytes(9 * MiB, 's3-rewritten');
    const id = await create(a, { filename: 'Rewritten.pvmp' }, data.length);
    expect((await patch(a, id, 0, data.subarray(0, 6 * MiB))).status).toBe(204);
    expect((await patch(a, id, 6 * MiB, data.subarray(6 * MiB, 8 * MiB))).status).toBe(204);
    // As a PATCH on another node that lost the tail and was resent other bytes of the same length would leave it.
    const other = testBytes(2 * MiB, 's3-rewritten-tail');
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/uploads/${id}.part`, Body: other }));
    const stored = Buffer.concat([data.subarray(0, 6 * MiB), other, data.subarray(8 * MiB)]);

    const last = await patch(a, id, 8 * MiB, data.subarray(8 * MiB));
    expect(last.status, last.text).toBe(204);
    expect(last.headers.get('upload-sha256')).toBe(sha256Hex(stored));
    expect((await download(b, sha256Hex(stored), 'Rewritten.pvmp')).equals(stored)).toBe(true);
  });

  it('a PATCH cut off half-way keeps what arrived (sent on as the tail); the upload resumes there on the other node', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const data = testBytes(10 * MiB, 's3-cut-off');
    const sha = sha256Hex(data);
    const id = await create(a, { filename: 'CutOff.pvmp' }, data.length);
    const { request: req, answered } = openPatch(a.url, id, token, data.length);
    req.write(data.subarray(0, 3 * MiB));
    // The 3 MiB reached A: its part file in tmp/ holds them.
    const { tmpDir } = a.runtime.store.layout;
    await waitFor(
      async () => {
        for (const name of await fs.readdir(tmpDir)) {
          if ((await fs.stat(`${tmpDir}/${name}`).catch(() => null))?.size === 3 * MiB) return true;
        }
        return false;
      },
      { what: 'the bytes in a part file' },
    );
    req.destroy();
    await answered;
    await waitFor(async () => (await head(b, id)).headers.get('upload-offset') === String(3 * MiB), {
      what: 'the offset after the cut',
    });
    expect(await keys(`uploads/${id}`)).toEqual([`${prefix}/uploads/${id}.info`, `${prefix}/uploads/${id}.part`]);
    const done = await patch(b, id, 3 * MiB, data.subarray(3 * MiB));
    expect(done.status, done.text).toBe(204);
    expect(done.headers.get('upload-sha256')).toBe(sha);
    expect((await download(a, sha, 'CutOff.pvmp')).equals(data)).toBe(true);
  });

  it('an unfinished upload is discarded from either node: its objects in the bucket go', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const data = testBytes(8 * MiB, 's3-discard');
    const id = await create(a, { filename: 'Discard.pvmp' }, 20 * MiB);
    expect((await patch(a, id, 0, data.subarray(0, 6 * MiB))).status).toBe(204);
    expect((await patch(a, id, 6 * MiB, data.subarray(6 * MiB))).status).toBe(204);
    expect(await keys(`uploads/${id}`)).toEqual([`${prefix}/uploads/${id}.info`, `${prefix}/uploads/${id}.part`]);
    const gone = await api(b, 'DELETE', `/uploads/${id}`, { headers: TUS });
    expect(gone.status, gone.text).toBe(204);
    expect(await keys(`uploads/${id}`)).toEqual([]);
    expect(await unfinished(a, id)).toBeUndefined();
    expect((await head(a, id)).status).toBe(404);
  });

  it('the free-space guard watches the local disk the parts pass through: 507 keeps the upload, which resumes later', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const data = testBytes(12 * MiB, 's3-guard');
    const sha = sha256Hex(data);
    const id = await create(a, { filename: 'Guarded.pvmp' }, data.length);
    expect((await patch(a, id, 0, data.subarray(0, 6 * MiB))).status).toBe(204);

    // The local disk "fills up": the part files of the rest no longer fit above the reserve.
    a.runtime.ingestDeps.minFreeBytes = (await a.runtime.store.diskUsage()).totalBytes + 1;
    try {
      const refused = await patch(a, id, 6 * MiB, data.subarray(6 * MiB));
      expect(expectError(refused, 507, 'INSUFFICIENT_STORAGE').message).toContain('local disk');
      expect((await head(a, id)).headers.get('upload-offset')).toBe(String(6 * MiB));
    } finally {
      a.runtime.ingestDeps.minFreeBytes = 0;
    }
    const done = await patch(a, id, 6 * MiB, data.subarray(6 * MiB));
    expect(done.status, done.text).toBe(204);
    expect(done.headers.get('upload-sha256')).toBe(sha);
  });

  it('uploads past their expiry are removed from the bucket; complete and fresh ones stay', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const stale = await create(a, { filename: 'Stale.pvmp' }, 10 * MiB);
    expect((await patch(a, stale, 0, testBytes(MiB, 's3-stale'))).status).toBe(204);
    const target = a.runtime.store.uploadTarget!();
    const store = (expiry: number): HashingBucketStore =>
      new HashingBucketStore(target, {
        newTmpFile: () => a.runtime.store.layout.newTmpFile(),
        headroom: () => Promise.resolve(Number.MAX_SAFE_INTEGER),
        fence: () => true,
        expirationPeriodInMilliseconds: expiry,
      });
    expect(await store(60 * 60 * 1000).deleteExpired()).toBe(0);
    expect(await keys(`uploads/${stale}`)).toHaveLength(2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await store(10).deleteExpired()).toBeGreaterThanOrEqual(1);
    expect(await keys(`uploads/${stale}`)).toEqual([]);
    expect((await head(b, stale)).status).toBe(404);
  });
});

describe('the bucket store vouches for a digest only when it wrote every part itself', () => {
  let s3: TestS3Server | null = null;
  let skip = '';
  let dir: string;
  let target: S3UploadTarget;
  const data = testBytes(13 * MiB + 9, 's3-store-digest');
  const sha = sha256Hex(data);

  beforeAll(async () => {
    dir = await makeTempDir();
    const started = await startMultipartS3();
    if ('skip' in started) {
      skip = started.skip;
      return;
    }
    s3 = started.server;
    const store = await openBlobStore(dir, {
      kind: 's3',
      settings: { ...s3SettingsFor(s3, await createTestBucket(s3)), prefix: 'digest' },
    });
    target = store.uploadTarget!();
  });
  afterAll(async () => {
    await s3?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** One process's store over the shared bucket (free space and lock always fine here). */
  const storeOf = (): HashingBucketStore =>
    new HashingBucketStore(target, {
      newTmpFile: () => createLayout(dir).newTmpFile(),
      headroom: () => Promise.resolve(Number.MAX_SAFE_INTEGER),
      fence: () => true,
      expirationPeriodInMilliseconds: 0,
    });
  async function newUpload(store: HashingBucketStore, id: string): Promise<void> {
    await store.create(new Upload({ id, size: data.length, offset: 0, metadata: { filename: 'Two.pvmp' } }));
  }
  const write = (store: HashingBucketStore, id: string, from: number, to: number): Promise<number> =>
    store.write(Readable.from([data.subarray(from, to)]), id, from);
  const id = (n: number): string => n.toString(16).padStart(32, '0');

  it('the process that received every byte, in PATCHes of any size, has the digest; the other has none', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const [a, b] = [storeOf(), storeOf()];
    await newUpload(a, id(1));
    expect(await write(a, id(1), 0, 6 * MiB)).toBe(6 * MiB);
    expect(await write(a, id(1), 6 * MiB, 7 * MiB)).toBe(7 * MiB);
    // B looks (HEAD) without writing: A's state stays good.
    expect((await b.getUpload(id(1))).offset).toBe(7 * MiB);
    expect(await write(a, id(1), 7 * MiB, data.length)).toBe(data.length);
    expect(await b.takeDigest(id(1), data.length)).toBeUndefined();
    expect(await a.takeDigest(id(1), data.length)).toBe(sha);
    await a.dropFinished(id(1));
  });

  it('after a PATCH on the other process neither has one, wherever the upload ends', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const [a, b] = [storeOf(), storeOf()];
    await newUpload(a, id(2));
    await write(a, id(2), 0, 6 * MiB);
    await write(b, id(2), 6 * MiB, 7 * MiB);
    await write(a, id(2), 7 * MiB, data.length);
    expect(a.running.has(id(2))).toBe(false);
    expect(await a.takeDigest(id(2), data.length)).toBeUndefined();
    expect(await b.takeDigest(id(2), data.length)).toBeUndefined();
    await a.dropFinished(id(2));
  });

  it('its tail replaced in the bucket by another writer at the same offset voids its state before it hashes more', async (ctx) => {
    ctx.skip(skip !== '', skip);
    const [a, b] = [storeOf(), storeOf()];
    await newUpload(a, id(3));
    await write(a, id(3), 0, 6 * MiB);
    await write(a, id(3), 6 * MiB, 8 * MiB);
    // A PATCH on B that took the tail, failed to send it on, and was then resent other bytes of the same length.
    const client = testS3Client(s3!);
    try {
      await client.send(new DeleteObjectCommand({ Bucket: target.bucket, Key: `${target.keyPrefix}${id(3)}.part` }));
    } finally {
      client.destroy();
    }
    expect((await a.getUpload(id(3))).offset).toBe(6 * MiB);
    expect(await b.write(Readable.from([testBytes(2 * MiB, 'other-tail')]), id(3), 6 * MiB)).toBe(8 * MiB);
    expect(await write(a, id(3), 8 * MiB, data.length)).toBe(data.length);
    expect(await a.takeDigest(id(3), data.length)).toBeUndefined();
    await a.dropFinished(id(3));
  });
});
