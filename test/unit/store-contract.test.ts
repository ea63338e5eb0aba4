/**
 * The blob store's contract, one set of cases run against both stores: the
 * data directory (fs) and a bucket (s3: s3rver in-process, or the server
 * MIRROR_TEST_S3_ENDPOINT names, Swift in CI). Each test gets a fresh data dir
 * and, on S3, a fresh prefix in the run's bucket. "Nothing left" on S3 means
 * no object under blobs/ or tmp/ and, where the server can list them, no open
 * multipart upload. fs-only details stay in blob-store.test.ts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openBlobStore, type BlobStore, type ListedBlob } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { thisHost } from '../../storage/layout.js';
import { isError } from '../../server/errors.js';
import { makeTempDir, sha256Hex, testBytes, testStream } from '../helpers/env.js';
import { createTestBucket, s3SettingsFor, startTestS3, type TestS3Server } from '../helpers/s3.js';
import { bucketView, supportsUploadPartCopy, type BucketView } from '../helpers/s3-bucket.js';

const MiB = 1024 * 1024;
/** Two parts of an S3 upload of unknown size (32 MiB each): a failure after FAILS_AT leaves an upload open to clean up. */
const MULTIPART = 40 * MiB + 13;
const FAILS_AT = 36 * MiB;

// A real collection before each memory sample, so the peak is what the ingest holds, not garbage not yet collected.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

async function* slices(data: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  for (let offset = 0, i = 0; offset < data.length; i += 1) {
    const n = sizes[i % sizes.length]!;
    yield data.subarray(offset, offset + n);
    offset += n;
  }
}

async function* failingAfter(data: Buffer, bytes: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < bytes; offset += MiB) yield data.subarray(offset, Math.min(bytes, offset + MiB));
  throw new Error('connection reset by peer');
}

async function listed(store: BlobStore): Promise<ListedBlob[]> {
  const found: ListedBlob[] = [];
  for await (const blob of store.list()) found.push(blob);
  return found;
}

const digests = async (store: BlobStore): Promise<string[]> => (await listed(store)).map((b) => b.sha256);

/** A PID that was just in use and is now free: a child that already exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

/** What each store needs for the shared cases: how to open it, and where an ingest's leftovers would be. */
interface Harness {
  open(options?: { singleCopyMaxBytes?: number }): Promise<BlobStore>;
  /** Temp files, and on S3 temp objects and open uploads (as `upload <key>`); [] when nothing is left. */
  tmpLeft(): Promise<string[]>;
  /** Everything under blobs/, whatever its name: a partial object would show here even where list() skips it. */
  rawBlobs(): Promise<string[]>;
  /** Leaves what a writer with this PID (on this host) leaves mid-ingest; `remains` is how tmpLeft() shows it. */
  leaveWriter(pid: number): Promise<{ removedAs: string; remains: string[] }>;
  /** Where quarantine() of `sha256` at `atMs` puts it, and that copy's size (null when it is not there). */
  quarantined(sha256: Sha256, atMs: number): Promise<{ location: string; size: number | null }>;
  cleanUp(): Promise<void>;
}

function fsHarness(dir: string): Harness {
  const tmp = path.join(dir, 'tmp');
  return {
    open: () => openBlobStore(dir),
    tmpLeft: async () => (await fs.readdir(tmp)).sort(),
    async rawBlobs() {
      const root = path.join(dir, 'blobs');
      const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
      return entries.filter((e) => !e.isDirectory()).map((e) => path.relative(root, path.join(e.parentPath, e.name)));
    },
    async leaveWriter(pid) {
      const name = `ingest-${pid}@${thisHost}-${randomBytes(8).toString('hex')}.part`;
      await fs.writeFile(path.join(tmp, name), 'partial');
      return { removedAs: path.join(tmp, name), remains: [name] };
    },
    async quarantined(sha256, atMs) {
      const location = path.join(dir, 'quarantine', `${sha256}-${atMs}`);
      return { location, size: (await fs.stat(location).catch(() => null))?.size ?? null };
    },
    cleanUp: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

function s3Harness(server: TestS3Server, bucket: string, dir: string, listsUploads: boolean): Harness {
  const prefix = `contract-${randomBytes(6).toString('hex')}`;
  const view: BucketView = bucketView(server, bucket, prefix);
  const uploads = async (): Promise<string[]> => ((await view.openUploads()) ?? []).map((key) => `upload ${key}`);
  return {
    open: (options = {}) =>
      openBlobStore(dir, {
        kind: 's3',
        settings: s3SettingsFor(server, bucket, prefix),
        singleCopyMaxBytes: options.singleCopyMaxBytes,
      }),
    // Part files in the local tmp/ too: S3 ingests spool each part there before uploading it.
    tmpLeft: async () =>
      [
        ...(await fs.readdir(path.join(dir, 'tmp'))).map((name) => `local ${name}`),
        ...(await view.keys('tmp/')),
        ...(await uploads()),
      ].sort(),
    rawBlobs: () => view.keys('blobs/'),
    async leaveWriter(pid) {
      // Named as storage/s3/keys.ts names them: an open upload to a temp key, and its marker.
      const object = `tmp/ingest-${pid}~${thisHost}-${randomBytes(8).toString('hex')}`;
      const uploadId = await view.startUpload(object, testBytes(5 * MiB, `writer ${pid}`));
      await view.put(`${object}.json`, JSON.stringify({ key: `${view.prefix}${object}`, uploadId }));
      const remains = [`${object}.json`, ...(listsUploads ? [`upload ${object}`] : [])];
      return { removedAs: `${view.prefix}${object}.json`, remains };
    },
    async quarantined(sha256, atMs) {
      const key = `quarantine/${sha256}-${atMs}`;
      const keys = await view.keys('quarantine/');
      const size = keys.includes(key) ? (await view.get(key)).length : null;
      return { location: `s3://${bucket}/${view.prefix}${key}`, size };
    },
    async cleanUp() {
      view.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

describe.each(['fs', 's3'] as const)('blob store contract (%s)', (kind) => {
  let server: TestS3Server | null = null;
  let bucket = '';
  let listsUploads = false;
  let copiesParts = false;
  let h: Harness;
  let store: BlobStore;

  beforeAll(async () => {
    if (kind !== 's3') return;
    server = await startTestS3();
    bucket = await createTestBucket(server);
    const view = bucketView(server, bucket);
    listsUploads = (await view.openUploads()) !== null;
    view.close();
    copiesParts = await supportsUploadPartCopy(server, bucket);
  });
  afterAll(async () => {
    await server?.close();
  });
  beforeEach(async () => {
    const dir = await makeTempDir('goldmirror-contract-');
    h = kind === 's3' ? s3Harness(server!, bucket, dir, listsUploads) : fsHarness(dir);
    store = await h.open();
  });
  afterEach(async () => {
    await h.cleanUp();
  });

  /** The store shows no blob and no part of one: nothing listed, nothing under blobs/, no temp file, object or upload. */
  async function expectNothingStored(): Promise<void> {
    expect(await listed(store)).toEqual([]);
    expect(await h.rawBlobs()).toEqual([]);
    expect(await h.tmpLeft()).toEqual([]);
  }

  it('stores content under its digest and reads it back whole, at any position, and 0 bytes past the end', async () => {
    const data = testBytes(MULTIPART, 'read back');
    const result = await store.put(testStream(data.length, 'read back', 3 * MiB + 1));
    expect(result).toEqual({
      sha256: sha256Hex(data),
      size: data.length,
      created: true,
      version: expect.any(String) as string,
    });
    expect(await store.stat(result.sha256)).toEqual({ sha256: result.sha256, size: data.length });

    const reader = await store.open(result.sha256);
    try {
      expect(reader.size).toBe(data.length);
      expect(reader.version).toBe(result.version);
      const whole = Buffer.alloc(data.length);
      expect(await reader.read(whole, data.length, 0)).toBe(data.length);
      expect(whole.equals(data)).toBe(true);

      const positions = [0, 1, 4095, 5 * MiB - 1, 8 * MiB - 3, 8 * MiB, 13 * MiB + 7, data.length - 100, 17, 11 * MiB];
      for (const position of positions) {
        const buf = Buffer.alloc(4321);
        const got = await reader.read(buf, buf.length, position);
        const want = Math.min(buf.length, data.length - position);
        expect({ position, got }).toEqual({ position, got: want });
        expect(buf.subarray(0, got).equals(data.subarray(position, position + got)), `bytes at ${position}`).toBe(true);
      }

      // The download path: 1 MiB after 1 MiB, front to back.
      const chunk = Buffer.alloc(MiB);
      let position = 0;
      while (position < data.length) {
        const got = await reader.read(chunk, MiB, position);
        expect(got).toBe(Math.min(MiB, data.length - position));
        expect(chunk.subarray(0, got).equals(data.subarray(position, position + got)), `chunk at ${position}`).toBe(
          true,
        );
        position += got;
      }
      expect(await reader.read(chunk, MiB, data.length)).toBe(0);
      expect(await reader.read(chunk, MiB, data.length + 12_345)).toBe(0);
    } finally {
      await reader.close();
    }
    expect(await h.tmpLeft()).toEqual([]);
  });

  it('gives the right digest whatever the chunk sizes', async () => {
    const data = testBytes(11 * MiB + 5, 'odd chunks');
    const result = await store.put(slices(data, [1, 7, 4093, 65537, MiB, 3, 3 * MiB + 11]));
    expect({ sha256: result.sha256, size: result.size }).toEqual({ sha256: sha256Hex(data), size: data.length });
    const reader = await store.open(result.sha256);
    const back = Buffer.alloc(data.length);
    expect(await reader.read(back, back.length, 0)).toBe(data.length);
    await reader.close();
    expect(back.equals(data)).toBe(true);
  });

  it('stores empty content', async () => {
    const result = await store.put([]);
    expect(result).toMatchObject({
      sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      size: 0,
      created: true,
    });
    expect(await store.stat(result.sha256)).toEqual({ sha256: result.sha256, size: 0 });
    const reader = await store.open(result.sha256);
    expect(reader.size).toBe(0);
    expect(await reader.read(Buffer.alloc(10), 10, 0)).toBe(0);
    await reader.close();
    expect(await digests(store)).toEqual([result.sha256]);
  });

  it('stores the same content once', async () => {
    for (const size of [100_000, MULTIPART]) {
      const data = testBytes(size, `twice ${size}`);
      const first = await store.put([data]);
      const second = await store.put(slices(data, [333_333]));
      expect({ first: first.created, second: second.created }).toEqual({ first: true, second: false });
      expect(second.sha256).toBe(first.sha256);
    }
    expect(await listed(store)).toHaveLength(2);
    expect(await h.tmpLeft()).toEqual([]);
  });

  it('stores nothing when the content does not match the expected digest', async () => {
    const wrong = sha256Hex(Buffer.from('something else')) as Sha256;
    for (const size of [500_000, MULTIPART]) {
      const data = testBytes(size, 'mismatch');
      const err = await store.put([data], { expectedSha256: wrong }).catch((e: unknown) => e);
      expect(isError(err, 'DIGEST_MISMATCH'), String(err)).toBe(true);
      expect((err as { details: unknown }).details).toEqual({ expected: wrong, actual: sha256Hex(data) });
      await expectNothingStored();
    }
  });

  it('stores nothing from a stream shorter or longer than announced', async () => {
    const data = testBytes(MULTIPART, 'short');
    const short = await store.put([data], { expectedSize: data.length + 1 }).catch((e: unknown) => e);
    expect(isError(short, 'SIZE_MISMATCH'), String(short)).toBe(true);
    await expectNothingStored();
    // Longer: refused in the middle, after parts (8 MiB with a known size) went out.
    const long = await store.put(slices(data, [MiB]), { expectedSize: 17 * MiB }).catch((e: unknown) => e);
    expect(isError(long, 'SIZE_MISMATCH'), String(long)).toBe(true);
    await expectNothingStored();
  });

  it('stores nothing when the source fails mid-stream', async () => {
    const data = testBytes(MULTIPART, 'fails');
    await expect(store.put(failingAfter(data, FAILS_AT))).rejects.toThrow('connection reset by peer');
    await expectNothingStored();
    await expect(
      store.put(failingAfter(data, FAILS_AT), { expectedSha256: sha256Hex(data) as Sha256 }),
    ).rejects.toThrow('connection reset by peer');
    await expectNothingStored();
  });

  it('stops when aborted and stores nothing', async () => {
    for (const expectedSha256 of [undefined, sha256Hex(testBytes(MULTIPART, 'aborted')) as Sha256]) {
      const controller = new AbortController();
      const source = (async function* () {
        let sent = 0;
        for await (const chunk of testStream(MULTIPART, 'aborted', MiB)) {
          yield chunk;
          sent += chunk.length;
          if (sent === FAILS_AT) controller.abort(new Error('cancelled by admin'));
        }
      })();
      await expect(store.put(source, { signal: controller.signal, expectedSha256 })).rejects.toThrow(
        'cancelled by admin',
      );
      await expectNothingStored();
    }
  });

  it('keeps memory bounded while ingesting a large stream', async () => {
    const size = 192 * MiB;
    collectGarbage();
    const before = process.memoryUsage();
    let peakLive = 0;
    let peakRss = 0;
    let sampledAt = -Infinity;
    const result = await store.put(testStream(size, 'big', MiB), {
      onProgress: (written) => {
        if (written - sampledAt < 4 * MiB) return;
        sampledAt = written;
        collectGarbage();
        const now = process.memoryUsage();
        peakLive = Math.max(peakLive, now.heapUsed + now.arrayBuffers - before.heapUsed - before.arrayBuffers);
        peakRss = Math.max(peakRss, now.rss - before.rss);
      },
    });
    expect(result.size).toBe(size);
    expect(sampledAt).toBeGreaterThan(size / 2);
    // Both stores hold a few 1 MiB write batches (S3 spools its parts to local files); s3rver, in this process,
    // adds the buffers of the parts it receives. Either way far below the 192 MiB ingested.
    expect(peakLive).toBeLessThan(64 * MiB);
    expect(peakRss).toBeLessThan(96 * MiB);
  });

  it('stage() with the expected digest keeps the content out of sight until commit(), once; discard() after it is harmless', async () => {
    for (const size of [12_345, MULTIPART]) {
      const data = testBytes(size, `staged ${size}`);
      const sha256 = sha256Hex(data) as Sha256;
      const staged = await store.stage(slices(data, [MiB + 1]), { expectedSha256: sha256 });
      expect({ sha256: staged.sha256, size: staged.size }).toEqual({ sha256, size });
      expect(await digests(store)).not.toContain(sha256);
      expect(await store.stat(sha256)).toBeNull();
      await expect(store.open(sha256)).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });

      const put = await staged.commit();
      expect(put).toEqual({ sha256, size, created: true, version: await store.version(sha256) });
      expect(await digests(store)).toContain(sha256);
      await expect(staged.commit()).rejects.toThrow(/already committed/);
      await staged.discard();
      await staged.discard();
      expect(await store.stat(sha256)).toEqual({ sha256, size });
      const reader = await store.open(sha256);
      const back = Buffer.alloc(size);
      expect(await reader.read(back, size, 0)).toBe(size);
      await reader.close();
      expect(back.equals(data)).toBe(true);
    }
    expect(await h.tmpLeft()).toEqual([]);
  });

  it('a discarded stage() stores nothing and cannot be committed', async () => {
    for (const size of [10, MULTIPART]) {
      const data = testBytes(size, `dropped ${size}`);
      const staged = await store.stage([data], { expectedSha256: sha256Hex(data) as Sha256 });
      await staged.discard();
      await expect(staged.commit()).rejects.toThrow(/already discarded/);
      await expectNothingStored();
    }
    // Without an expected digest: the temp data goes too (on S3 a copy already made under blobs/ is left to gc).
    const unknown = await store.stage([testBytes(MULTIPART, 'dropped unknown')]);
    await unknown.discard();
    expect(await h.tmpLeft()).toEqual([]);
  });

  it('stat(), version() and list(): sizes, versions and modification times, in digest order', async () => {
    const startedMs = Date.now();
    const sizes = [1, 1000, 5 * MiB + 3, 77_777];
    const puts = [];
    for (const [i, size] of sizes.entries()) puts.push(await store.put([testBytes(size, `list ${i}`)]));
    const endedMs = Date.now();
    const blobs = await listed(store);
    expect(blobs.map((b) => ({ sha256: b.sha256, size: b.size }))).toEqual(
      puts.map((p) => ({ sha256: p.sha256, size: p.size })).sort((a, b) => a.sha256.localeCompare(b.sha256)),
    );
    for (const blob of blobs) {
      // S3 keeps whole seconds.
      expect(blob.modifiedMs).toBeGreaterThanOrEqual(Math.floor(startedMs / 1000) * 1000 - 1000);
      expect(blob.modifiedMs).toBeLessThanOrEqual(endedMs + 1000);
    }
    for (const put of puts) {
      expect(await store.stat(put.sha256)).toEqual({ sha256: put.sha256, size: put.size });
      expect(await store.version(put.sha256)).toBe(put.version);
    }
    const missing = sha256Hex(Buffer.from('never stored')) as Sha256;
    expect(await store.stat(missing)).toBeNull();
    expect(await store.version(missing)).toBeNull();
    await expect(store.open(missing)).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
  });

  it('detach() takes a blob out of sight; a second detach() finds nothing; discard() is final', async () => {
    const kept = await store.put([testBytes(1000, 'kept')]);
    const { sha256 } = await store.put([testBytes(MULTIPART, 'detached')]);
    const detached = await store.detach(sha256);
    expect(detached).not.toBeNull();
    expect(await store.stat(sha256)).toBeNull();
    expect(await store.version(sha256)).toBeNull();
    expect(await digests(store)).toEqual([kept.sha256]);
    await expect(store.open(sha256)).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    expect(await store.detach(sha256)).toBeNull();
    await detached!.discard();
    expect(await digests(store)).toEqual([kept.sha256]);
    expect(await h.tmpLeft()).toEqual([]);
  });

  it('quarantine() moves a blob out of sight, keeps its bytes aside and says where', async () => {
    const kept = await store.put([testBytes(1000, 'kept')]);
    const { sha256, size } = await store.put([testBytes(6 * MiB + 1, 'quarantined')]);
    const location = await store.quarantine(sha256, 1234);
    const aside = await h.quarantined(sha256, 1234);
    expect(location).toBe(aside.location);
    expect(aside.size).toBe(size);
    expect(await store.stat(sha256)).toBeNull();
    expect(await digests(store)).toEqual([kept.sha256]);
    await expect(store.open(sha256)).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    expect(await store.quarantine(sha256, 5678)).toBeNull();
  });

  it('removeStaleTmpFiles() clears what a dead writer left and keeps what a live writer is writing', async () => {
    const dead = await h.leaveWriter(await deadPid());
    const live = await h.leaveWriter(process.ppid);
    expect(await h.tmpLeft()).toEqual([...dead.remains, ...live.remains].sort());
    expect(await store.removeStaleTmpFiles()).toEqual([dead.removedAs]);
    expect(await h.tmpLeft()).toEqual([...live.remains].sort());
  });

  it('removeStaleTmpFiles({ whileRunning: true }) keeps the ingests this process has in flight', async () => {
    const data = testBytes(MULTIPART, 'in flight');
    const staged = await store.stage(slices(data, [MiB]), { expectedSha256: sha256Hex(data) as Sha256 });
    const inFlight = await h.tmpLeft();
    expect(inFlight).not.toEqual([]);
    expect(await store.removeStaleTmpFiles({ whileRunning: true })).toEqual([]);
    expect(await h.tmpLeft()).toEqual(inFlight);
    expect(await staged.commit()).toMatchObject({ sha256: sha256Hex(data), size: data.length, created: true });
    await staged.discard();
    expect(await h.tmpLeft()).toEqual([]);
  });

  it.runIf(kind === 's3')('copies an object above the single-copy limit part by part', async (ctx) => {
    ctx.skip(!copiesParts, `${server!.kind} does not implement UploadPartCopy`);
    const parted = await h.open({ singleCopyMaxBytes: 6 * MiB });
    const data = testBytes(MULTIPART, 'part copy');
    const result = await parted.put(slices(data, [MiB]));
    expect(result).toMatchObject({ sha256: sha256Hex(data), size: data.length, created: true });
    const reader = await parted.open(result.sha256);
    const back = Buffer.alloc(data.length);
    expect(await reader.read(back, back.length, 0)).toBe(data.length);
    await reader.close();
    expect(back.equals(data)).toBe(true);
    // Quarantine copies the same way.
    const location = await parted.quarantine(result.sha256, 42);
    expect((await h.quarantined(result.sha256, 42)).size).toBe(data.length);
    expect(location).toBe((await h.quarantined(result.sha256, 42)).location);
    expect(await h.tmpLeft()).toEqual([]);
  });
});
