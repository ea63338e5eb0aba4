/**
 * Resumable uploads and package architectures over a real listening server:
 * only .pvmp names are packages (tus, the no-JS form), the architecture is
 * recorded and can be corrected, unfinished uploads are listed and can be
 * discarded, a finished (or finishing) upload never answers a bare offset,
 * and the image form and API warn when a slot gets the other architecture's package.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UnfinishedUpload } from '../../server/http/uploads.js';
import type { BlobView } from '../../server/services/blobs.js';
import type { ImageView } from '../../server/services/images.js';
import {
  bootstrapTestAdmin,
  call,
  expectError,
  issueToken,
  mustSignIn,
  type ApiResult,
  type CallOptions,
  type Session,
} from '../helpers/api.js';
import { putBlob, sha256Hex, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { openPatch, TUS } from '../helpers/tus.js';

function tusMetadata(meta: Record<string, string>): string {
  return Object.entries(meta)
    .map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
    .join(',');
}

describe('uploads and package architectures', () => {
  let m: TestMirror;
  let token: string;
  let session: Session;
  const api = <T = unknown>(method: string, p: string, options: CallOptions = {}): Promise<ApiResult<T>> =>
    call<T>(m.url, method, `/api/v1${p}`, { token, ...options });
  const uploadFiles = async () => (await fs.readdir(m.runtime.store.layout.uploadsDir)).sort();

  /** POST /api/v1/uploads; returns the answer and the upload's id. */
  async function create(meta: Record<string, string>, length: number): Promise<{ res: ApiResult; id: string | null }> {
    const res = await api('POST', '/uploads', {
      headers: { ...TUS, 'Upload-Length': String(length), 'Upload-Metadata': tusMetadata(meta) },
    });
    const location = res.headers.get('location');
    return { res, id: res.status === 201 && location ? location.split('/').pop()! : null };
  }
  async function patch(id: string, offset: number, data: Buffer): Promise<ApiResult> {
    return api('PATCH', `/uploads/${id}`, {
      raw: data,
      contentType: 'application/offset+octet-stream',
      headers: { ...TUS, 'Upload-Offset': String(offset) },
    });
  }
  /** A page form post with the admin session (as the browser sends it). */
  async function page(method: string, p: string, form: Record<string, string> = {}): Promise<ApiResult> {
    const body = new URLSearchParams({ _csrf: session.csrfToken, ...form }).toString();
    return call(m.url, method, p, {
      session,
      csrf: null,
      raw: method === 'GET' ? undefined : body,
      contentType: 'application/x-www-form-urlencoded',
    });
  }

  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'uploads-test');
    await bootstrapTestAdmin(m);
    session = await mustSignIn(m.url);
  });
  afterAll(async () => {
    await m?.close();
  });

  it('refuses a file that is not a .pvmp as a package (a 95-byte .txt), with a clear message, and keeps nothing', async () => {
    const txt = `${'a'.repeat(64)}  Win11-arm.pvmp\n`.padEnd(95, ' ');
    expect(Buffer.byteLength(txt)).toBe(95);
    const { res, id } = await create({ filename: 'Win11-arm.txt' }, 95);
    expect(id).toBeNull();
    const error = expectError(res, 400, 'PACKAGE_NAME_INVALID');
    expect(error.message).toBe(
      'Win11-arm.txt is a checksum file, not a package: pick the .pvmp that "Prepare for Transfer" wrote, and Win11-arm.txt as its checksum file',
    );
    const zip = expectError((await create({ filename: 'Win11.zip' }, 10)).res, 400, 'PACKAGE_NAME_INVALID');
    expect(zip.message).toContain('Win11.zip is not a package: only .pvmp files');
    expectError((await create({ filename: '.pvmp' }, 10)).res, 400, 'PACKAGE_NAME_INVALID');
    const arch = expectError((await create({ filename: 'Win11.pvmp', arch: 'ppc' }, 10)).res, 400, 'VALIDATION_FAILED');
    expect(arch.message).toContain('must be arm64 (Apple silicon), x86_64 (Intel) or unknown, not "ppc"');
    expect(await uploadFiles()).toEqual([]);
    expect(await m.runtime.db.selectFrom('blobs').select('sha256').execute()).toEqual([]);
  });

  it('records the architecture given with an upload; "unknown" never erases it; the API corrects it, audited', async () => {
    const data = testBytes(300 * 1024, 'arch-upload');
    const sha = sha256Hex(data);
    const first = await create({ filename: 'Win11-arm.pvmp', arch: 'arm64' }, data.length);
    expect(first.res.status, first.res.text).toBe(201);
    const done = await patch(first.id!, 0, data);
    expect(done.status, done.text).toBe(204);
    expect(done.headers.get('upload-sha256')).toBe(sha);
    expect((await api<BlobView>('GET', `/blobs/${sha}`)).body.arch).toBe('arm64');

    const again = await create({ filename: 'Win11-arm.pvmp', arch: 'unknown' }, data.length);
    expect((await patch(again.id!, 0, data)).status).toBe(204);
    expect((await api<BlobView>('GET', `/blobs/${sha}`)).body.arch).toBe('arm64');

    const fixed = await api<BlobView>('PATCH', `/blobs/${sha}`, { json: { arch: 'x86_64' } });
    expect(fixed.status, fixed.text).toBe(200);
    expect(fixed.body.arch).toBe('x86_64');
    const audit = await m.runtime.db
      .selectFrom('audit_log')
      .select(['action', 'target', 'details'])
      .where('action', '=', 'blob.arch')
      .execute();
    expect(audit).toEqual([
      {
        action: 'blob.arch',
        target: `blob:${sha}`,
        details: JSON.stringify({ from: 'arm64', to: 'x86_64', name: 'Win11-arm.pvmp' }),
      },
    ]);
    expectError(await api('PATCH', `/blobs/${sha}`, { json: { arch: 'sparc' } }), 400, 'VALIDATION_FAILED');
    expectError(await api('PATCH', `/blobs/${sha}`, { json: { name: 'x' } }), 400, 'VALIDATION_FAILED');
    expectError(await api('PATCH', `/blobs/${'0'.repeat(64)}`, { json: { arch: 'arm64' } }), 404, 'BLOB_UNKNOWN');
    expect((await api<BlobView>('GET', `/blobs/${sha}`)).body.arch).toBe('x86_64');
  });

  it('lists unfinished uploads with name, size, offset and age, and discards them through tus or the page', async () => {
    const a = await create(
      { filename: 'Half.pvmp', arch: 'x86_64', checksum: 'b'.repeat(64), lastModified: '1700000000123' },
      400_000,
    );
    const b = await create({ filename: 'Empty.pvmp' }, 1000);
    expect((await patch(a.id!, 0, testBytes(100_000, 'half'))).status).toBe(204);
    const listed = await api<UnfinishedUpload[]>('GET', '/uploads');
    expect(listed.status, listed.text).toBe(200);
    const half = listed.body.find((u) => u.id === a.id);
    expect(half).toEqual({
      id: a.id,
      name: 'Half.pvmp',
      size: 400_000,
      offset: 100_000,
      arch: 'x86_64',
      hasChecksum: true,
      lastModified: 1700000000123,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as string,
      lastDataAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as string,
      receiving: false,
      finishing: false,
    });
    expect(Date.now() - Date.parse(half!.createdAt)).toBeLessThan(60_000);
    expect(listed.body.find((u) => u.id === b.id)).toMatchObject({
      name: 'Empty.pvmp',
      offset: 0,
      arch: 'unknown',
      hasChecksum: false,
      lastDataAt: null,
    });

    // The page shows them, with a discard button each.
    const upload = await call(m.url, 'GET', '/admin/upload', { session });
    expect(upload.text).toContain(`data-upload-id="${a.id}"`);
    expect(upload.text).toContain('100 kB of 400 kB (25%)');
    expect(upload.text).toContain(`action="/admin/uploads/${b.id}/discard"`);

    // tus termination (what Cancel in the browser sends) ...
    const terminated = await api('DELETE', `/uploads/${a.id}`, { headers: TUS });
    expect(terminated.status).toBe(204);
    // ... and the page's Discard button.
    const discarded = await page('POST', `/admin/uploads/${b.id}/discard`);
    expect(discarded.status).toBe(303);
    expect(discarded.headers.get('location')).toBe('/admin/upload?done=upload-discarded#unfinished');
    expect(
      (await api<UnfinishedUpload[]>('GET', '/uploads')).body.filter((u) => u.id === a.id || u.id === b.id),
    ).toEqual([]);
    expect((await uploadFiles()).filter((f) => f.startsWith(a.id!) || f.startsWith(b.id!))).toEqual([]);
    const gone = await page('POST', `/admin/uploads/${b.id}/discard`);
    expect(gone.status).toBe(404);
    expect(gone.text).toContain('there is no unfinished upload with that id');
  });

  it('does not discard an upload while a PATCH streams into it', async () => {
    const size = 2_000_000;
    const { id } = await create({ filename: 'Streaming.pvmp' }, size);
    const { request: req, answered } = openPatch(m.url, id!, token, size);
    req.write(testBytes(64 * 1024, 'streaming'));
    await expect
      .poll(async () => (await api<UnfinishedUpload[]>('GET', '/uploads')).body.find((u) => u.id === id)?.receiving, {
        timeout: 10_000,
      })
      .toBe(true);
    const refused = await page('POST', `/admin/uploads/${id}/discard`);
    expect(refused.status).toBe(409);
    expect(refused.text).toContain('Streaming.pvmp is receiving data right now');
    expect((await uploadFiles()).some((f) => f === id)).toBe(true);
    req.destroy();
    await answered;
    await expect
      .poll(async () => (await api<UnfinishedUpload[]>('GET', '/uploads')).body.find((u) => u.id === id)?.receiving, {
        timeout: 10_000,
      })
      .toBe(false);
    expect((await page('POST', `/admin/uploads/${id}/discard`)).status).toBe(303);
  });

  it('answers HEAD of a finished upload with its digest, and finishes one whose bytes all arrived but were never stored', async () => {
    const data = testBytes(200_000, 'head-after-finish');
    const sha = sha256Hex(data);
    const { id } = await create({ filename: 'Done.pvmp' }, data.length);
    expect((await patch(id!, 0, data)).headers.get('upload-sha256')).toBe(sha);
    // A second tab resuming the same upload: the offset comes with the digest, never alone.
    const head = await api('HEAD', `/uploads/${id}`, { headers: TUS });
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe(String(data.length));
    expect(head.headers.get('upload-length')).toBe(String(data.length));
    expect(head.headers.get('upload-sha256')).toBe(sha);

    // All bytes on disk, nothing stored (the process stopped in between): HEAD says "locked, retry", then the digest.
    const other = testBytes(150_000, 'crashed-before-store');
    const otherSha = sha256Hex(other);
    const crashed = await create({ filename: 'Crashed.pvmp', arch: 'arm64' }, other.length);
    await fs.writeFile(path.join(m.runtime.store.layout.uploadsDir, crashed.id!), other);
    const first = await api('HEAD', `/uploads/${crashed.id}`, { headers: TUS });
    expect([200, 423]).toContain(first.status);
    await expect
      .poll(async () => (await api('HEAD', `/uploads/${crashed.id}`, { headers: TUS })).headers.get('upload-sha256'), {
        timeout: 10_000,
      })
      .toBe(otherSha);
    expect((await api<BlobView>('GET', `/blobs/${otherSha}`)).body).toMatchObject({
      name: 'Crashed.pvmp',
      arch: 'arm64',
      size: other.length,
    });
    expect((await uploadFiles()).filter((f) => f.startsWith(crashed.id!))).toEqual([]);
  });

  it('the no-JS upload form refuses a .txt as the package and records the architecture field', async () => {
    const multipart = (parts: Array<{ name: string; filename?: string; data: string | Buffer }>) => {
      const boundary = '----goldmirror-test-boundary';
      // The CSRF token comes first, as the page's form sends it (never in the URL).
      const chunks: Buffer[] = [
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${session.csrfToken}\r\n`),
      ];
      for (const p of parts) {
        const disposition = `form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}`;
        chunks.push(
          Buffer.from(
            `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.filename ? 'Content-Type: application/octet-stream\r\n' : ''}\r\n`,
          ),
        );
        chunks.push(Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data));
        chunks.push(Buffer.from('\r\n'));
      }
      chunks.push(Buffer.from(`--${boundary}--\r\n`));
      return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
    };
    const post = (form: { body: Buffer; type: string }) =>
      call(m.url, 'POST', '/admin/upload', { session, csrf: null, raw: form.body, contentType: form.type });

    const before = await m.runtime.db.selectFrom('blobs').select('sha256').execute();
    const refused = await post(
      multipart([
        { name: 'arch', data: 'arm64' },
        { name: 'package', filename: 'Win11-arm.txt', data: `${'c'.repeat(64)}  Win11-arm.pvmp\n` },
      ]),
    );
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('Win11-arm.txt is a checksum file, not a package');
    expect(await m.runtime.db.selectFrom('blobs').select('sha256').execute()).toEqual(before);

    const data = testBytes(50_000, 'plain-form-arch');
    const sha = sha256Hex(data);
    // The architecture after the package part (another client's order) is recorded too; with no checksum part the page claims no verification.
    const stored = await post(
      multipart([
        { name: 'package', filename: 'Plain-intel.pvmp', data },
        { name: 'arch', data: 'x86_64' },
      ]),
    );
    expect(stored.status, stored.text).toBe(303);
    expect(stored.headers.get('location')).toBe(`/admin/blobs/${sha}?done=blob-uploaded-unchecked`);
    expect((await api<BlobView>('GET', `/blobs/${sha}`)).body.arch).toBe('x86_64');
    const badArch = await post(
      multipart([
        { name: 'arch', data: 'mips' },
        { name: 'package', filename: 'Other.pvmp', data: testBytes(1000, 'bad-arch') },
      ]),
    );
    expect(badArch.status).toBe(400);
    expect(badArch.text).toContain('the architecture must be arm64 (Apple silicon), x86_64 (Intel) or unknown');
    // A bad architecture after the package part is refused before anything is committed.
    const lateBytes = testBytes(1000, 'late-bad-arch');
    const lateBadArch = await post(
      multipart([
        { name: 'package', filename: 'Late.pvmp', data: lateBytes },
        { name: 'arch', data: 'mips' },
      ]),
    );
    expect(lateBadArch.status).toBe(400);
    expect(lateBadArch.text).toContain('the architecture must be arm64 (Apple silicon), x86_64 (Intel) or unknown');
    const late = await m.runtime.db
      .selectFrom('blobs')
      .select('sha256')
      .where('sha256', '=', sha256Hex(lateBytes))
      .executeTakeFirst();
    expect(late).toBeUndefined();
  });

  describe('image slots and package architectures', () => {
    let armSha: string;
    let intelSha: string;
    let unknownSha: string;
    beforeAll(async () => {
      armSha = await putBlob(m, testBytes(10_000, 'slot-arm'), 'Slot-arm.pvmp');
      intelSha = await putBlob(m, testBytes(10_000, 'slot-intel'), 'Slot-intel.pvmp');
      unknownSha = await putBlob(m, testBytes(10_000, 'slot-unknown'), 'Slot-unknown.pvmp');
      expect((await api('PATCH', `/blobs/${armSha}`, { json: { arch: 'arm64' } })).status).toBe(200);
      expect((await api('PATCH', `/blobs/${intelSha}`, { json: { arch: 'x86_64' } })).status).toBe(200);
    });

    it('the API saves a package marked for the other architecture, with a warning', async () => {
      const res = await api<ImageView>('POST', '/images', {
        json: {
          name: 'Swapped',
          arm64: { enabled: true, sha256: intelSha },
          x86_64: { enabled: true, sha256: armSha },
        },
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body.warnings).toEqual([
        'Apple silicon: the package Slot-intel.pvmp is marked for Intel, not Apple silicon',
        'Intel: the package Slot-arm.pvmp is marked for Apple silicon, not Intel',
      ]);
      expect(res.body.arm64.packageArch).toBe('x86_64');
      const fixed = await api<ImageView>('PATCH', `/images/${res.body.id}`, {
        json: { arm64: { sha256: armSha }, x86_64: { sha256: unknownSha } },
      });
      expect(fixed.body.warnings).toEqual([]);
    });

    it('the image form offers each slot its own and unrecorded packages, pre-fills from a link, and asks before a mismatch is saved', async () => {
      const form = await call(m.url, 'GET', `/admin/images/new?x86_64=${intelSha}`, { session });
      const select = (arch: string) =>
        /<select id="([^"]+)"[\s\S]*?<\/select>/g.exec(
          form.text.slice(form.text.indexOf(`<select id="${arch}-sha256"`)),
        )?.[0] ?? '';
      expect(select('arm64')).toContain(armSha);
      expect(select('arm64')).toContain(unknownSha);
      expect(select('arm64')).not.toContain(intelSha);
      expect(select('x86_64')).toContain(`<option value="${intelSha}" selected="" data-arch="x86_64">`);
      expect(select('x86_64')).not.toContain(armSha);
      expect(form.text).toMatch(
        /<input id="x86_64-enabled" name="x86_64.enabled" type="checkbox" value="on" checked=""/,
      );
      expect(form.text).toContain('<script src="/admin/assets/image-form.js" defer="">');

      const values = { name: 'Form mismatch', 'arm64.enabled': 'on', 'arm64.sha256': intelSha };
      const asked = await page('POST', '/admin/images/new', values);
      expect(asked.status).toBe(409);
      expect(asked.text).toContain(
        'Apple silicon: the package Slot-intel.pvmp is marked for Intel, not Apple silicon.',
      );
      expect(asked.text).toContain('name="confirmArch"');
      expect(asked.text).toContain('This package is marked for Intel, not Apple silicon.');
      expect(
        await m.runtime.db.selectFrom('images').select('id').where('name', '=', 'Form mismatch').execute(),
      ).toEqual([]);
      const saved = await page('POST', '/admin/images/new', { ...values, confirmArch: 'yes' });
      expect(saved.status).toBe(303);
      expect(
        (
          await m.runtime.db
            .selectFrom('images')
            .select('arm64_sha256')
            .where('name', '=', 'Form mismatch')
            .executeTakeFirst()
        )?.arm64_sha256,
      ).toBe(intelSha);
    });

    it('the package page sets the architecture without JavaScript and links to a new image in the right slot', async () => {
      const before = await call(m.url, 'GET', `/admin/blobs/${unknownSha}`, { session });
      expect(before.text).toContain(`href="/admin/images/new?arm64=${unknownSha}"`);
      expect(before.text).toContain(`href="/admin/images/new?x86_64=${unknownSha}"`);
      const set = await page('POST', `/admin/blobs/${unknownSha}/arch`, { arch: 'arm64' });
      expect(set.status).toBe(303);
      const after = await call(m.url, 'GET', `/admin/blobs/${unknownSha}?done=blob-arch-saved`, { session });
      expect(after.text).toContain('Architecture saved.');
      expect(after.text).toContain(`href="/admin/images/new?arm64=${unknownSha}"`);
      expect(after.text).not.toContain(`href="/admin/images/new?x86_64=${unknownSha}"`);
      const list = await call(m.url, 'GET', '/admin/blobs', { session });
      expect(list.text).toContain('<th scope="col">Architecture</th>');
    });
  });
});
