import fs from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openBlobStore, type BlobStore } from '../../storage/blob-store.js';
import { parseChecksumText, parseSha256, type Sha256 } from '../../storage/digest.js';
import { AppError, isError } from '../../server/errors.js';
import { makeTempDir, sha256Hex, testBytes, testStream } from '../helpers/env.js';
import { FOREIGN_TMP_STALE_MS } from '../../storage/fs-utils.js';
import { thisHost } from '../../storage/layout.js';

async function* slices(data: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let offset = 0;
  let i = 0;
  while (offset < data.length) {
    const n = sizes[i % sizes.length]!;
    yield data.subarray(offset, offset + n);
    offset += n;
    i += 1;
  }
}

async function* failingAfter(data: Buffer, bytes: number): AsyncGenerator<Buffer> {
  yield data.subarray(0, bytes);
  throw new Error('connection reset by peer');
}

async function visibleFiles(store: BlobStore): Promise<string[]> {
  const found: string[] = [];
  for await (const b of store.list()) found.push(b.sha256);
  return found;
}

describe('blob store', () => {
  let dir: string;
  let store: BlobStore;

  beforeEach(async () => {
    dir = await makeTempDir();
    store = await openBlobStore(dir);
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('stores whole input under its digest and reads it back', async () => {
    const data = testBytes(3 * 1024 * 1024 + 17);
    const result = await store.put([data]);
    expect(result).toEqual({
      sha256: sha256Hex(data),
      size: data.length,
      created: true,
      version: expect.any(String) as string,
    });
    const file = path.join(dir, 'blobs', 'sha256', result.sha256.slice(0, 2), result.sha256);
    expect((await fs.readFile(file)).equals(data)).toBe(true);
    expect(result.version).toBe(await store.version(result.sha256));
    const reader = await store.open(result.sha256);
    const buf = Buffer.alloc(100);
    expect(await reader.read(buf, 100, 1000)).toBe(100);
    expect(buf.equals(data.subarray(1000, 1100))).toBe(true);
    expect(reader.size).toBe(data.length);
    await reader.close();
    expect(await fs.readdir(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('gives the same digest for odd-sized chunks as for the whole input', async () => {
    const data = testBytes(2 * 1024 * 1024 + 5);
    const whole = await store.put([data]);
    const other = await openBlobStore(await makeTempDir());
    const chunked = await other.put(slices(data, [1, 7, 4093, 65537, 1 << 20, 3]));
    expect(chunked.sha256).toBe(whole.sha256);
    expect(chunked.size).toBe(data.length);
    await fs.rm(other.layout.root, { recursive: true, force: true });
  });

  it('stores an empty file', async () => {
    const result = await store.put([]);
    expect(result.sha256).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(result.size).toBe(0);
    expect(await store.stat(result.sha256)).toEqual({ sha256: result.sha256, size: 0 });
  });

  it('stores the same content once', async () => {
    const data = testBytes(100_000);
    const first = await store.put([data]);
    const second = await store.put(slices(data, [333]));
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(await visibleFiles(store)).toEqual([first.sha256]);
  });

  it('rejects a digest mismatch and leaves nothing behind', async () => {
    const data = testBytes(500_000);
    const wrong = sha256Hex(Buffer.from('something else')) as Sha256;
    const err = await store.put([data], { expectedSha256: wrong }).catch((e: unknown) => e);
    expect(isError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect((err as AppError).details).toEqual({ expected: wrong, actual: sha256Hex(data) });
    expect((err as AppError).message).toContain(wrong);
    expect((err as AppError).message).toContain(sha256Hex(data));
    expect(await visibleFiles(store)).toEqual([]);
    expect(await fs.readdir(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('accepts the expected digest when it matches', async () => {
    const data = testBytes(10_000);
    const result = await store.put([data], { expectedSha256: sha256Hex(data) as Sha256 });
    expect(result.sha256).toBe(sha256Hex(data));
  });

  it('rejects a short stream (fewer bytes than announced)', async () => {
    const data = testBytes(10_000);
    const err = (await store
      .put([data.subarray(0, 9_999)], { expectedSize: 10_000 })
      .catch((e: unknown) => e)) as AppError;
    expect(err.code).toBe('SIZE_MISMATCH');
    const longer = (await store.put([data], { expectedSize: 9_000 }).catch((e: unknown) => e)) as AppError;
    expect(longer.code).toBe('SIZE_MISMATCH');
    expect(await visibleFiles(store)).toEqual([]);
    expect(await fs.readdir(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('leaves nothing when the source fails mid-stream', async () => {
    const data = testBytes(3 << 20);
    await expect(store.put(failingAfter(data, 2 << 20))).rejects.toThrow('connection reset by peer');
    expect(await visibleFiles(store)).toEqual([]);
    expect(await fs.readdir(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('stops when aborted and leaves nothing', async () => {
    const controller = new AbortController();
    const source = (async function* () {
      yield testBytes(1 << 20);
      controller.abort(new Error('cancelled by admin'));
      yield testBytes(1 << 20, 'b');
    })();
    await expect(store.put(source, { signal: controller.signal })).rejects.toThrow('cancelled by admin');
    expect(await fs.readdir(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('refuses up front when the ingest would eat into the free-space minimum', async () => {
    const { freeBytes } = await store.diskUsage();
    const err = (await store
      .put([Buffer.from('x')], { expectedSize: 1, minFreeBytes: freeBytes + 1 })
      .catch((e: unknown) => e)) as AppError;
    expect(err.code).toBe('INSUFFICIENT_STORAGE');
    expect(await fs.readdir(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('keeps memory flat while ingesting a large stream', async () => {
    const size = 512 * 1024 * 1024;
    global.gc?.();
    const before = process.memoryUsage();
    let peak = 0;
    const result = await store.put(testStream(size, 'big', 1 << 20), {
      onProgress: () => {
        const m = process.memoryUsage();
        peak = Math.max(peak, m.rss - before.rss);
      },
    });
    expect(result.size).toBe(size);
    // Two write batches of ~1 MiB plus allocator slack: far below the 512 MiB ingested.
    expect(peak).toBeLessThan(96 * 1024 * 1024);
  });

  it('removes temp files of dead writers but not of live ones', async () => {
    const tmp = path.join(dir, 'tmp');
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.on('exit', r));
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      await fs.writeFile(path.join(tmp, `ingest-${dead.pid}-aaaa.part`), 'partial');
      await fs.writeFile(path.join(tmp, `ingest-${live.pid}-bbbb.part`), 'still writing');
      await fs.writeFile(path.join(tmp, `ingest-${process.pid}-cccc.part`), 'left by an earlier process with our pid');
      await fs.writeFile(path.join(tmp, 'unrelated.txt'), 'not ours');
      const removed = (await store.removeStaleTmpFiles()).map((f) => path.basename(f)).sort();
      expect(removed).toEqual([`ingest-${dead.pid}-aaaa.part`, `ingest-${process.pid}-cccc.part`].sort());
      expect((await fs.readdir(tmp)).sort()).toEqual([`ingest-${live.pid}-bbbb.part`, 'unrelated.txt'].sort());
    } finally {
      live.kill();
    }
  });

  it('names temp files after process and machine, and leaves another machine’s alone until they go stale', async () => {
    const tmp = path.join(dir, 'tmp');
    const staged = await store.stage([testBytes(10, 'named')]);
    expect(await fs.readdir(tmp)).toEqual([
      expect.stringMatching(new RegExp(`^ingest-${process.pid}@${thisHost}-[0-9a-f]+\\.part$`)),
    ]);
    await staged.discard();
    // Another box sharing the data dir: its PIDs mean nothing here, so only the file's age tells.
    const fresh = `ingest-${process.pid}@other-box.lan-aaaa.part`;
    const stale = `ingest-1@other-box.lan-bbbb.part`;
    const ours = `ingest-${process.pid}@${thisHost}-cccc.part`;
    for (const name of [fresh, stale, ours]) await fs.writeFile(path.join(tmp, name), 'partial');
    const past = new Date(Date.now() - FOREIGN_TMP_STALE_MS - 60_000);
    await fs.utimes(path.join(tmp, stale), past, past);
    const removed = (await store.removeStaleTmpFiles()).map((f) => path.basename(f)).sort();
    expect(removed).toEqual([stale, ours].sort());
    expect(await fs.readdir(tmp)).toEqual([fresh]);
    await fs.rm(path.join(tmp, fresh));
  });

  it('quarantines a blob instead of deleting it', async () => {
    const { sha256 } = await store.put([testBytes(1000)]);
    const moved = await store.quarantine(sha256, 1234);
    expect(moved).toBe(path.join(dir, 'quarantine', `${sha256}-1234`));
    expect(await store.stat(sha256)).toBeNull();
    await expect(store.open(sha256)).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    expect((await fs.stat(moved!)).size).toBe(1000);
  });

  it('stage() keeps verified bytes out of sight until commit(); discard() removes them; each happens once', async () => {
    const data = testBytes(12_345, 'staged');
    const staged = await store.stage([data], { expectedSha256: sha256Hex(data) as Sha256 });
    expect({ sha256: staged.sha256, size: staged.size }).toEqual({ sha256: sha256Hex(data), size: data.length });
    expect(await visibleFiles(store)).toEqual([]);
    expect(await fs.readdir(path.join(dir, 'tmp'))).toHaveLength(1);

    const put = await staged.commit();
    expect(put).toEqual({
      sha256: staged.sha256,
      size: data.length,
      created: true,
      version: await store.version(staged.sha256),
    });
    expect(await visibleFiles(store)).toEqual([staged.sha256]);
    await staged.discard(); // after a commit: nothing to remove, the blob stays
    expect(await visibleFiles(store)).toEqual([staged.sha256]);
    await expect(staged.commit()).rejects.toThrow(/already committed/);

    const other = await store.stage([testBytes(10, 'dropped')]);
    await other.discard();
    expect(await fs.readdir(path.join(dir, 'tmp'))).toEqual([]);
    await expect(other.commit()).rejects.toThrow(/already discarded/);
    expect(await visibleFiles(store)).toEqual([staged.sha256]);
  });

  it('detaches a blob out of sight, and discard() removes it for good', async () => {
    const { sha256 } = await store.put([testBytes(10)]);
    const detached = await store.detach(sha256);
    expect(detached).not.toBeNull();
    expect(await store.stat(sha256)).toBeNull();
    expect(await fs.readdir(path.join(dir, 'tmp'))).toEqual([`delete-${process.pid}@${thisHost}-${sha256}`]);
    expect(await store.detach(sha256)).toBeNull();
    await detached!.discard();
    expect(await fs.readdir(path.join(dir, 'tmp'))).toEqual([]);
  });

  it("leftDetached() offers a dead process's deletes and this process's, never another live one's", async () => {
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.on('exit', r));
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      const kept = await store.put([testBytes(100, 'row survived')]);
      const gone = await store.put([testBytes(100, 'row deleted')]);
      const busy = await store.put([testBytes(100, 'still deleting')]);
      const twice = await store.put([testBytes(100, 'stored again meanwhile')]);
      const tmp = path.join(dir, 'tmp');
      const blobFile = (sha: string) => path.join(dir, 'blobs', 'sha256', sha.slice(0, 2), sha);
      await fs.rename(blobFile(kept.sha256), path.join(tmp, `delete-${dead.pid}-${kept.sha256}`));
      await fs.rename(blobFile(gone.sha256), path.join(tmp, `delete-${process.pid}-${gone.sha256}`));
      await fs.rename(blobFile(busy.sha256), path.join(tmp, `delete-${live.pid}-${busy.sha256}`));
      await fs.copyFile(blobFile(twice.sha256), path.join(tmp, `delete-${dead.pid}-${twice.sha256}`));

      const left = await store.leftDetached();
      expect(left.map((l) => l.sha256).sort()).toEqual([kept.sha256, gone.sha256, twice.sha256].sort());
      const byDigest = new Map(left.map((l) => [l.sha256, l]));
      expect(await byDigest.get(kept.sha256)!.restore()).toBe(true);
      await byDigest.get(gone.sha256)!.discard();
      // A file already in place is never overwritten by the old copy.
      expect(await byDigest.get(twice.sha256)!.restore()).toBe(false);
      await byDigest.get(twice.sha256)!.discard();

      expect((await store.stat(kept.sha256))?.size).toBe(100);
      expect(await store.stat(gone.sha256)).toBeNull();
      expect((await store.stat(twice.sha256))?.size).toBe(100);
      expect(await fs.readdir(tmp)).toEqual([`delete-${live.pid}-${busy.sha256}`]);
    } finally {
      live.kill();
    }
  });
});

describe('digests and checksum files', () => {
  const hex = 'AbCdEf0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789';

  it('reads the lenient layouts a Parallels .txt may have', () => {
    const want = hex.toLowerCase();
    expect(parseChecksumText(hex)).toBe(want);
    expect(parseChecksumText(`\uFEFF${hex}\r\n`)).toBe(want);
    expect(parseChecksumText(`${hex}  /Users/admin/Win11.pvmp\n`)).toBe(want);
    expect(parseChecksumText(`SHA256 (Win11.pvmp) = ${hex}`)).toBe(want);
    expect(parseChecksumText(`checksum:\t${hex}`)).toBe(want);
  });

  it('rejects files without a 64-digit token', () => {
    expect(() => parseChecksumText('')).toThrow(/no SHA-256/);
    expect(() => parseChecksumText(hex.slice(1))).toThrow(/no SHA-256/);
    expect(() => parseChecksumText(`${hex}0`)).toThrow(/no SHA-256/);
    expect(() => parseChecksumText('md5: d41d8cd98f00b204e9800998ecf8427e')).toThrow(/no SHA-256/);
  });

  it('parses digests given on the command line', () => {
    expect(parseSha256(` ${hex} `)).toBe(hex.toLowerCase());
    expect(() => parseSha256('xyz')).toThrow(/64 hexadecimal digits/);
    expect(() => parseSha256(`${hex}00`)).toThrow(AppError);
  });
});
