/**
 * The no-JavaScript upload (POST /admin/upload, multipart/form-data) against a
 * running mirror: the checksum file part is enforced whether it comes before
 * or after the package part, a mismatch stores nothing (no row, no blob, no
 * temp file), the page only says "verified" when a digest was compared, and
 * the free-space guard runs on the form's length before a byte is stored.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../helpers/api.js';
import { storedDigests, storedFiles } from '../helpers/blobs.js';
import { sha256Hex, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { onS3 } from '../helpers/s3.js';

const MiB = 1024 * 1024;
const BOUNDARY = '----goldmirror-form-test';

type Part = { name: 'package' | 'checksum'; filename: string; content: Buffer | string };

function multipart(parts: Part[]): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(
      Buffer.from(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"; filename="${p.filename}"\r\n` +
          `Content-Type: ${p.name === 'package' ? 'application/octet-stream' : 'text/plain'}\r\n\r\n`,
      ),
      Buffer.isBuffer(p.content) ? p.content : Buffer.from(p.content),
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

describe('no-JS upload form', () => {
  let m: TestMirror;
  let token: string;
  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'form');
  });
  afterAll(async () => {
    await m?.close();
  });

  async function post(parts: Part[]): Promise<{ status: number; location: string | null; text: string }> {
    const res = await fetch(`${m.url}/admin/upload`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}` },
      body: multipart(parts),
      redirect: 'manual',
    });
    return { status: res.status, location: res.headers.get('location'), text: await res.text() };
  }

  /** Rows, stored blobs and temp files: what an upload could leave behind. */
  async function state(): Promise<{ rows: string[]; files: string[]; tmp: string[] }> {
    const rows = (await m.runtime.db.selectFrom('blobs').select('sha256').orderBy('sha256').execute()).map(
      (r) => r.sha256,
    );
    const files = await storedDigests(m);
    return { rows, files, tmp: Object.keys(await storedFiles(m, 'tmp')) };
  }

  const pkg = (data: Buffer): Part => ({ name: 'package', filename: 'Win11.pvmp', content: data });
  const sum = (digest: string): Part => ({
    name: 'checksum',
    filename: 'Win11.txt',
    content: `${digest}  Win11.pvmp\n`,
  });

  for (const order of ['checksum first', 'package first'] as const) {
    it(`${order}: a matching checksum file is compared and the package stored as verified`, async () => {
      const data = testBytes(3 * MiB + 7, `match-${order}`);
      const digest = sha256Hex(data);
      const parts = order === 'checksum first' ? [sum(digest), pkg(data)] : [pkg(data), sum(digest)];
      const res = await post(parts);
      expect(res.status, res.text).toBe(303);
      expect(res.location).toBe(`/admin/blobs/${digest}?done=blob-uploaded`);
      expect((await state()).rows).toContain(digest);
      const page = await (
        await fetch(`${m.url}${res.location!}`, { headers: { Authorization: `Bearer ${token}` } })
      ).text();
      expect(page).toContain('Package stored and verified.');
    });

    it(`${order}: a mismatching checksum file stores nothing (no row, no blob, no temp file) and says why`, async () => {
      const data = testBytes(3 * MiB + 9, `mismatch-${order}`);
      const actual = sha256Hex(data);
      const claimed = sha256Hex(Buffer.from(`something else ${order}`));
      const before = await state();
      const parts = order === 'checksum first' ? [sum(claimed), pkg(data)] : [pkg(data), sum(claimed)];
      const res = await post(parts);
      expect(res.status, res.text).toBe(422);
      expect(res.text).toContain(claimed);
      expect(res.text).toContain(actual);
      if (order === 'package first') expect(res.text).toContain('sent after the package');
      expect(await state()).toEqual(before);
      expect(before.rows).not.toContain(actual);
    });
  }

  it('without a checksum file the package is stored, and the page says nothing was compared', async () => {
    const data = testBytes(MiB + 3, 'no-checksum');
    const digest = sha256Hex(data);
    const res = await post([pkg(data)]);
    expect(res.status, res.text).toBe(303);
    expect(res.location).toBe(`/admin/blobs/${digest}?done=blob-uploaded-unchecked`);
    const page = await (
      await fetch(`${m.url}${res.location!}`, { headers: { Authorization: `Bearer ${token}` } })
    ).text();
    expect(page).toContain('No checksum file was given, so its SHA-256 was not compared with anything');
    expect(page).not.toContain('stored and verified');
    // An empty checksum part (a browser sends one when no file was picked) is the same as none.
    const again = testBytes(MiB + 5, 'empty-checksum-part');
    const empty = await post([{ name: 'checksum', filename: '', content: '' }, pkg(again)]);
    expect(empty.location).toBe(`/admin/blobs/${sha256Hex(again)}?done=blob-uploaded-unchecked`);
  });

  // About local disk space: on S3 a package never touches the local disk, so its size is not held against the reserve.
  it.skipIf(onS3)(
    'refuses a form whose length does not fit above the reserve with 507, before reading or storing a byte',
    async () => {
      // A Content-Length of 10 TB (no disk here has that free) with the start of a form behind it:
      // the guard answers from the header alone, so the rest never has to arrive.
      const before = await state();
      const head = multipart([pkg(testBytes(64 * 1024, 'too-big-for-disk'))]);
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${m.url}/admin/upload`, {
          method: 'POST',
          headers: {
            Authorization: `Bearer ${token}`,
            'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`,
            'Content-Length': 1e13,
          },
        });
        req.on('response', (r) => {
          let body = '';
          r.on('data', (d: Buffer) => (body += d.toString()));
          r.on('end', () => {
            resolve({ status: r.statusCode ?? 0, body });
            req.destroy(); // the rest of the 10 TB is never sent
          });
        });
        req.on('error', reject);
        req.setTimeout(15_000, () =>
          req.destroy(new Error('no answer within 15 s: the form was not checked against the free space')),
        );
        req.write(head.subarray(0, head.length - 8));
      });
      expect(res.status, res.body).toBe(507);
      expect(res.body).toContain('not enough disk space for this upload (10000000000000 bytes)');
      expect(await state()).toEqual(before);
    },
  );
});
