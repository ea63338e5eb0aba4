/**
 * The free-space guard on resumable (tus) uploads, with real tus requests
 * against a running mirror: a deferred length is checked when it is declared,
 * every PATCH is checked before it writes, and a deferred-length PATCH is cut
 * off when it outgrows the free space. "The disk filling up" is made real by
 * raising the reserve (minFreeBytes) against the real filesystem's free bytes.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../helpers/api.js';
import { sha256Hex, startMirror, testBytes, testStream, type TestMirror } from '../helpers/env.js';
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

  const head = (uploadUrl: string) => request(uploadUrl, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` } });
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
    const ok = await request(uploadUrl!, { method: 'PATCH', headers: tusPatchHeaders(token, 0, { 'Upload-Length': data.length }), body: data });
    expect(ok.status, ok.body).toBe(204);
    expect(ok.headers['upload-sha256']).toBe(sha256Hex(data));
  });

  it('checks every PATCH before it writes: once the space is gone the next PATCH is 507 and the offset stays; later it resumes', async () => {
    const data = testBytes(2 * MiB + 11, 'known-length');
    const { res, uploadUrl } = await tusCreate(m.url, token, { length: data.length, filename: 'Known.pvmp' });
    expect(res.status, res.body).toBe(201);
    const first = await request(uploadUrl!, { method: 'PATCH', headers: tusPatchHeaders(token, 0), body: data.subarray(0, MiB) });
    expect(first.status, first.body).toBe(204);

    // The disk "fills up": no remaining byte of this upload fits above the reserve any more.
    setReserve((await m.runtime.store.diskUsage()).totalBytes + 1);
    try {
      const refused = await request(uploadUrl!, { method: 'PATCH', headers: tusPatchHeaders(token, MiB), body: data.subarray(MiB) });
      expect(refused.status, refused.body).toBe(507);
      expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'INSUFFICIENT_STORAGE', message: expect.stringContaining(`the remaining ${data.length - MiB} bytes`) as unknown } });
      expect((await head(uploadUrl!)).headers['upload-offset']).toBe(String(MiB));
    } finally {
      setReserve(0);
    }
    const rest = await request(uploadUrl!, { method: 'PATCH', headers: tusPatchHeaders(token, MiB), body: data.subarray(MiB) });
    expect(rest.status, rest.body).toBe(204);
    expect(rest.headers['upload-sha256']).toBe(sha256Hex(data));
  });

  it('cuts off a deferred-length PATCH that outgrows the free space: 507, the partial upload removed', async () => {
    const { res, uploadUrl } = await tusCreate(m.url, token, { filename: 'Growing.pvmp' });
    expect(res.status, res.body).toBe(201);
    // Leave 24 MiB above the reserve, then send 96 MiB of unknown length.
    setReserve((await freeBytes()) - 24 * MiB);
    try {
      const patch = await request(uploadUrl!, {
        method: 'PATCH',
        headers: tusPatchHeaders(token, 0, { 'Transfer-Encoding': 'chunked' }),
        body: testStream(96 * MiB, 'growing', 256 * 1024),
      }).catch((err: Error) => err);
      // The server answers before it has read the whole body; the client may see the answer or a cut connection.
      if (!(patch instanceof Error)) {
        expect(patch.status, patch.body).toBe(507);
        expect(JSON.parse(patch.body)).toMatchObject({ error: { code: 'INSUFFICIENT_STORAGE', message: expect.stringContaining('the partial upload was removed') as unknown } });
      }
    } finally {
      setReserve(0);
    }
    expect([404, 410]).toContain((await head(uploadUrl!)).status);
    expect(await uploadsLeft()).toEqual([]);
  });
});
