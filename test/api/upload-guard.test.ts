/**
 * The free-space guard on resumable (tus) uploads, with real tus requests
 * against a running mirror: a deferred length is checked when it is declared,
 * every PATCH is checked before it writes, and a deferred-length PATCH is cut
 * off when it outgrows the free space. Then the other ingest paths: a pull
 * from a URL and a bundle import. "The disk filling up" is made real by
 * raising the reserve (minFreeBytes) against the real filesystem's free bytes.
 * (The no-JS form's guard is in form-upload.test.ts.)
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchIntoStore } from '../../server/bundles/fetch.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../helpers/api.js';
import { putBlob, sha256Hex, startMirror, testBytes, testStream, type TestMirror } from '../helpers/env.js';
import { request, tusCreate, tusPatchHeaders } from '../faults/helpers.js';

const MiB = 1024 * 1024;

describe('free space on tus uploads', () => {
  let m: TestMirror;
  let token: string;
  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'uploader');
  });
  afterAll(async () => {
    await m?.close();
  });

  const head = (uploadUrl: string) =>
    request(uploadUrl, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` } });
  const setReserve = (bytes: number) => {
    m.runtime.ingestDeps.minFreeBytes = bytes;
  };
  const freeBytes = async () => (await m.runtime.store.diskUsage()).freeBytes;
  const uploadsLeft = () => fs.readdir(m.runtime.store.layout.uploadsDir);

  it('refuses a PATCH that declares 10^14 bytes for a deferred upload with 507, keeps the length open, and accepts a real length after', async () => {
    const { res, uploadUrl } = await tusCreate(m.url, token, { filename: 'Deferred.pvmp' });
    expect(res.status, res.body).toBe(201);
    const huge = await request(uploadUrl!, {
      method: 'PATCH',
      headers: tusPatchHeaders(token, 0, { 'Upload-Length': 1e14 }),
      body: Buffer.alloc(1024, 7),
    });
    expect(huge.status, huge.body).toBe(507);
    const error = (JSON.parse(huge.body) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('INSUFFICIENT_STORAGE');
    expect(error.message).toMatch(/^not enough disk space for the declared Upload-Length of 100000000000000 bytes/);
    // Nothing changed: still deferred, nothing written.
    const after = await head(uploadUrl!);
    expect(after.status).toBe(200);
    expect(after.headers['upload-defer-length']).toBe('1');
    expect(after.headers['upload-offset']).toBe('0');

    const data = testBytes(4096, 'deferred-ok');
    const ok = await request(uploadUrl!, {
      method: 'PATCH',
      headers: tusPatchHeaders(token, 0, { 'Upload-Length': data.length }),
      body: data,
    });
    expect(ok.status, ok.body).toBe(204);
    expect(ok.headers['upload-sha256']).toBe(sha256Hex(data));
  });

  it('checks every PATCH before it writes: once the space is gone the next PATCH is 507 and the offset stays; later it resumes', async () => {
    const data = testBytes(2 * MiB + 11, 'known-length');
    const { res, uploadUrl } = await tusCreate(m.url, token, { length: data.length, filename: 'Known.pvmp' });
    expect(res.status, res.body).toBe(201);
    const first = await request(uploadUrl!, {
      method: 'PATCH',
      headers: tusPatchHeaders(token, 0),
      body: data.subarray(0, MiB),
    });
    expect(first.status, first.body).toBe(204);

    // The disk "fills up": no remaining byte of this upload fits above the reserve any more.
    setReserve((await m.runtime.store.diskUsage()).totalBytes + 1);
    try {
      const refused = await request(uploadUrl!, {
        method: 'PATCH',
        headers: tusPatchHeaders(token, MiB),
        body: data.subarray(MiB),
      });
      expect(refused.status, refused.body).toBe(507);
      expect(JSON.parse(refused.body)).toMatchObject({
        error: {
          code: 'INSUFFICIENT_STORAGE',
          message: expect.stringContaining(`the remaining ${data.length - MiB} bytes`) as unknown,
        },
      });
      expect((await head(uploadUrl!)).headers['upload-offset']).toBe(String(MiB));
    } finally {
      setReserve(0);
    }
    const rest = await request(uploadUrl!, {
      method: 'PATCH',
      headers: tusPatchHeaders(token, MiB),
      body: data.subarray(MiB),
    });
    expect(rest.status, rest.body).toBe(204);
    expect(rest.headers['upload-sha256']).toBe(sha256Hex(data));
  });

  it('cuts off a deferred-length PATCH that outgrows the free space: 507, the partial upload removed', async () => {
    // Other test files write and delete while this runs, so free space moves. An attempt where it moved
    // by more than the 48 MiB margin between this look and the server's is inconclusive and retried.
    const outcomes: string[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const { res, uploadUrl } = await tusCreate(m.url, token, { filename: 'Growing.pvmp' });
      expect(res.status, res.body).toBe(201);
      setReserve((await freeBytes()) - 48 * MiB);
      let patch: Awaited<ReturnType<typeof request>> | Error;
      try {
        patch = await request(uploadUrl!, {
          method: 'PATCH',
          headers: tusPatchHeaders(token, 0, { 'Transfer-Encoding': 'chunked' }),
          body: testStream(160 * MiB, 'growing', 256 * 1024),
        }).catch((err: Error) => err);
      } finally {
        setReserve(0);
      }
      const status = (await head(uploadUrl!)).status;
      if (status === 404 || status === 410) {
        // The server may answer before it has read the whole body, or the client may only see the cut connection.
        if (!(patch instanceof Error)) {
          expect(patch.status, patch.body).toBe(507);
          expect(JSON.parse(patch.body)).toMatchObject({
            error: {
              code: 'INSUFFICIENT_STORAGE',
              message: expect.stringContaining('the partial upload was removed') as unknown,
            },
          });
        }
        expect(await uploadsLeft()).toEqual([]);
        return;
      }
      outcomes.push(patch instanceof Error ? patch.message : `${patch.status} ${patch.body}`);
      await request(uploadUrl!, {
        method: 'DELETE',
        headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` },
      });
    }
    throw new Error(`no attempt was cut off mid-write; the answers were: ${outcomes.join(' | ')}`);
  });
});

describe('free space on pulls and bundle imports', () => {
  let m: TestMirror;
  let token: string;
  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'importer');
  });
  afterAll(async () => {
    await m?.close();
  });

  async function state(): Promise<{ rows: number; tmp: string[] }> {
    const rows = await m.runtime.db.selectFrom('blobs').select('sha256').execute();
    return { rows: rows.length, tmp: await fs.readdir(m.runtime.store.layout.tmpDir) };
  }
  /** A reserve larger than the disk, for the duration of `fn`: as if it were full. */
  async function withFullDisk<T>(fn: () => Promise<T>): Promise<T> {
    m.runtime.ingestDeps.minFreeBytes = (await m.runtime.store.diskUsage()).totalBytes + 1;
    try {
      return await fn();
    } finally {
      m.runtime.ingestDeps.minFreeBytes = 0;
    }
  }

  it('a pull whose Content-Length does not fit is refused before its first byte is stored', async () => {
    // The upstream announces 10 TB (no disk here has that free) and sends a first MiB of it.
    const announced = 1e13;
    const upstream = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Length': announced });
      res.write(testBytes(MiB, 'pull-too-big'));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/Big.pvmp`;
    try {
      const before = await state();
      await expect(fetchIntoStore(m.runtime.ingestDeps, url, { maxRetries: 0 })).rejects.toMatchObject({
        code: 'INSUFFICIENT_STORAGE',
        message: expect.stringContaining(`not enough disk space for ${url} (${announced} bytes)`) as unknown,
      });
      expect(await state()).toEqual(before);
    } finally {
      upstream.closeAllConnections();
      await new Promise((r) => upstream.close(r));
    }
  });

  it('a bundle import (API) whose package does not fit answers 507 and leaves the mirror as it was', async () => {
    const source = await startMirror();
    try {
      const sha = await putBlob(source, testBytes(16 * MiB, 'bundle-too-big'), 'Big.pvmp');
      const sourceToken = await issueToken(source, 'exporter');
      const created = await fetch(`${source.url}/api/v1/images`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${sourceToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'Big', arm64: { enabled: true, sha256: sha } }),
      });
      expect(created.status).toBe(201);
      const bundle = Buffer.from(
        await (
          await fetch(`${source.url}/api/v1/export`, { headers: { Authorization: `Bearer ${sourceToken}` } })
        ).arrayBuffer(),
      );
      const before = await state();
      const res = await withFullDisk(() =>
        fetch(`${m.url}/api/v1/import`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/x-tar' },
          body: bundle,
        }),
      );
      expect(res.status).toBe(507);
      expect(await res.json()).toMatchObject({ error: { code: 'INSUFFICIENT_STORAGE' } });
      expect(await state()).toEqual(before);
      expect(await m.runtime.db.selectFrom('images').select('name').execute()).toEqual([]);
    } finally {
      await source.close();
    }
  });
});
