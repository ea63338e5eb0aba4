/**
 * The JSON API over a real listening server: every route's happy path, and
 * the errors a client sees, always as {"error":{"code","message"}} with the
 * status from server/errors.ts. Requests carry an API token (no scrypt per
 * test); sessions and CSRF are in auth.test.ts, link checks in link-check.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckerStatus } from '../../server/jobs/integrity-checker.js';
import type { AuditEntry } from '../../server/services/audit.js';
import type { BlobView } from '../../server/services/blobs.js';
import type { GroupView } from '../../server/services/groups.js';
import type { DeletedImage, ImageView, PortalValues } from '../../server/services/images.js';
import type { IntegritySummary } from '../../server/services/integrity.js';
import { systemActor } from '../../server/services/audit.js';
import { updateSettings } from '../../server/services/settings.js';
import {
  anyNumber,
  anyString,
  call,
  expectError,
  issueToken,
  like,
  matching,
  rawRequest,
  type ApiResult,
  type CallOptions,
  type ErrorBody,
} from '../helpers/api.js';
import { corruptStored, storedBytes } from '../helpers/blobs.js';
import { putBlob, sha256Hex, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

const ARM_NAME = 'Windows 11 (ARM).pvmp';
const X86_NAME = 'Windows 11 x64.pvmp';

interface TokenInfo {
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
}

describe('JSON API /api/v1', () => {
  let m: TestMirror;
  let token: string;
  let armData: Buffer;
  let x86Data: Buffer;
  let arm: string;
  let x86: string;
  const api = <T = unknown>(method: string, path: string, options: CallOptions = {}): Promise<ApiResult<T>> =>
    call<T>(m.url, method, `/api/v1${path}`, { token, ...options });
  const createImage = async (body: Record<string, unknown>): Promise<ImageView> => {
    const res = await api<ImageView>('POST', '/images', { json: body });
    expect(res.status, res.text).toBe(201);
    return res.body;
  };
  const createGroup = async (body: Record<string, unknown>): Promise<GroupView> => {
    const res = await api<GroupView>('POST', '/groups', { json: body });
    expect(res.status, res.text).toBe(201);
    return res.body;
  };

  beforeAll(async () => {
    m = await startMirror();
    // The public address Macs would use (public-address.test.ts covers the mirror without one).
    await updateSettings(m.runtime, systemActor, { publicUrl: m.url });
    token = await issueToken(m, 'api-test');
    armData = testBytes(256 * 1024 + 5, 'api-arm');
    x86Data = testBytes(128 * 1024 + 7, 'api-x86');
    arm = await putBlob(m, armData, ARM_NAME);
    x86 = await putBlob(m, x86Data, X86_NAME);
  });
  afterAll(async () => {
    await m?.close();
  });

  describe('images', () => {
    it('creates an image with per-arch size and a working .pvmp URL from the public address', async () => {
      const created = await api<ImageView>('POST', '/images', {
        json: {
          name: '  Windows 11 Golden ',
          description: 'for new hires',
          arm64: { enabled: true, sha256: arm.toUpperCase() },
          x86_64: { enabled: true, sha256: x86 },
        },
      });
      expect(created.status, created.text).toBe(201);
      const img = created.body;
      expect(img).toMatchObject({
        id: anyNumber(),
        name: 'Windows 11 Golden',
        description: 'for new hires',
        groups: [],
        downloads: 0,
      });
      expect(img.arm64).toMatchObject({
        label: 'Apple silicon',
        enabled: true,
        sha256: arm,
        size: armData.length,
        state: 'ok',
      });
      expect(img.x86_64).toMatchObject({
        label: 'Intel',
        enabled: true,
        sha256: x86,
        size: x86Data.length,
        state: 'ok',
      });
      expect(img.arm64.url).toBe(`${m.url}/d/${arm}/Windows-11-ARM.pvmp`);
      expect(img.x86_64.url).toBe(`${m.url}/d/${x86}/Windows-11-x64.pvmp`);
      // The link handed to the portal really serves the package.
      const download = await fetch(img.arm64.url!);
      expect(download.status).toBe(200);
      expect(sha256Hex(Buffer.from(await download.arrayBuffer()))).toBe(arm);

      const got = await api('GET', `/images/${img.id}`);
      expect(got.status).toBe(200);
      expect(got.body).toEqual(img);
      const list = await api<ImageView[]>('GET', '/images');
      expect(list.status).toBe(200);
      expect(list.body.find((i) => i.id === img.id)).toEqual(img);

      // The links never follow the host a request was sent to.
      const viaName = await rawRequest(m.url, {
        method: 'GET',
        path: `/api/v1/images/${img.id}`,
        headers: { host: 'goldmirror.lan:9999', authorization: `Bearer ${token}` },
        chunks: [],
      });
      expect(viaName.status).toBe(200);
      expect((JSON.parse(viaName.body) as ImageView).arm64.url).toBe(`${m.url}/d/${arm}/Windows-11-ARM.pvmp`);
    });

    it('builds URLs from MIRROR_PUBLIC_URL when it is set, whatever host the request used', async () => {
      const pub = await startMirror({ publicUrl: 'http://mirror.test:8080' });
      try {
        const pubToken = await issueToken(pub, 'pub');
        const sha = await putBlob(pub, testBytes(1000, 'pub'), ARM_NAME);
        const res = await call<ImageView>(pub.url, 'POST', '/api/v1/images', {
          token: pubToken,
          json: { name: 'Public', arm64: { enabled: true, sha256: sha } },
        });
        expect(res.status, res.text).toBe(201);
        expect(res.body.arm64.url).toBe(`http://mirror.test:8080/d/${sha}/Windows-11-ARM.pvmp`);
        expect(res.body.arm64.size).toBe(1000);
        const portal = await call<PortalValues>(pub.url, 'GET', `/api/v1/images/${res.body.id}/portal`, {
          token: pubToken,
        });
        expect(portal.body.architectures.arm64.downloadUrl).toBe(
          `http://mirror.test:8080/d/${sha}/Windows-11-ARM.pvmp`,
        );
        const blob = await call<BlobView>(pub.url, 'GET', `/api/v1/blobs/${sha}`, { token: pubToken });
        expect(blob.body.url).toBe(`http://mirror.test:8080/d/${sha}/Windows-11-ARM.pvmp`);
      } finally {
        await pub.close();
      }
    });

    it('updates only what a PATCH names, and keeps a disabled architecture’s package', async () => {
      const img = await createImage({
        name: 'Patch me',
        arm64: { enabled: true, sha256: arm },
        x86_64: { enabled: true, sha256: x86 },
      });
      const patched = await api<ImageView>('PATCH', `/images/${img.id}`, {
        json: { description: 'changed', x86_64: { enabled: false } },
      });
      expect(patched.status, patched.text).toBe(200);
      expect(patched.body).toMatchObject({
        name: 'Patch me',
        description: 'changed',
        arm64: { enabled: true, sha256: arm },
      });
      expect(patched.body.x86_64).toMatchObject({ enabled: false, sha256: x86, size: x86Data.length });
      expect(Date.parse(patched.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(img.createdAt));

      const renamed = await api('PATCH', `/images/${img.id}`, { json: { name: 'Patched', x86_64: { sha256: null } } });
      expect(renamed.body).toMatchObject({
        name: 'Patched',
        x86_64: { enabled: false, sha256: null, size: null, url: null },
      });

      // Clearing the package of an enabled arch is refused and changes nothing.
      const bad = await api('PATCH', `/images/${img.id}`, { json: { arm64: { sha256: null } } });
      expect(expectError(bad, 400, 'VALIDATION_FAILED').fields).toEqual([
        { field: 'arm64.sha256', message: 'required when enabled' },
      ]);
      expect((await api<ImageView>('GET', `/images/${img.id}`)).body.arm64.sha256).toBe(arm);
    });

    it('answers 400 VALIDATION_FAILED naming the bad fields', async () => {
      const cases: Array<[unknown, RegExp]> = [
        [{}, /name/],
        [{ name: '' }, /name: must not be empty/],
        [{ name: 'x'.repeat(101) }, /at most 100/],
        [{ name: 'bell\u0007' }, /control characters/],
        [{ name: 'x', bogus: 1 }, /bogus/],
        [{ name: 'x', arm64: { enabled: true } }, /arm64: an enabled architecture needs a package/],
        [{ name: 'x', arm64: { sha256: 'abc' } }, /arm64.sha256: must be 64 hexadecimal digits/],
        [{ name: 'x', x86_64: { enabled: 'yes' } }, /x86_64.enabled/],
        [[1, 2], /image/],
      ];
      for (const [body, message] of cases) {
        const res = await api('POST', '/images', { json: body });
        expect(expectError(res, 400, 'VALIDATION_FAILED').message).toMatch(message);
      }
      expect((await api<ImageView[]>('GET', '/images')).body.some((i) => i.name === 'x')).toBe(false);
    });

    it('answers 400 BAD_REQUEST for malformed JSON or a body that is not JSON', async () => {
      expectError(
        await api('POST', '/images', { raw: '{"name": "half', contentType: 'application/json' }),
        400,
        'BAD_REQUEST',
      );
      expectError(
        await api('POST', '/images', { raw: JSON.stringify({ name: 'plain' }), contentType: 'text/plain' }),
        400,
        'BAD_REQUEST',
      );
      expectError(
        await api('POST', '/images', { raw: 'name=form', contentType: 'application/x-www-form-urlencoded' }),
        400,
        'BAD_REQUEST',
      );
      expectError(await api('POST', '/images'), 400, 'BAD_REQUEST');
      expectError(await api('PATCH', '/groups/1', { raw: '[', contentType: 'application/json' }), 400, 'BAD_REQUEST');
      expect((await api<ImageView[]>('GET', '/images')).body.some((i) => i.name === 'plain')).toBe(false);
    });

    it('answers 422 BLOB_NOT_STORED for a package this mirror does not have', async () => {
      const absent = sha256Hex(Buffer.from('never stored'));
      const res = await api('POST', '/images', { json: { name: 'Ghost', x86_64: { enabled: true, sha256: absent } } });
      expect(expectError(res, 422, 'BLOB_NOT_STORED').message).toContain(absent);
      expect((await api<ImageView[]>('GET', '/images')).body.some((i) => i.name === 'Ghost')).toBe(false);
      // Even a disabled arch may only reference a stored package, and on PATCH too.
      const img = await createImage({ name: 'Real' });
      expectError(
        await api('PATCH', `/images/${img.id}`, { json: { arm64: { sha256: absent } } }),
        422,
        'BLOB_NOT_STORED',
      );
    });

    it('answers 409 NAME_TAKEN for a duplicate name, on create and on rename', async () => {
      const a = await createImage({ name: 'Unique A' });
      await createImage({ name: 'Unique B' });
      expectError(await api('POST', '/images', { json: { name: 'Unique A' } }), 409, 'NAME_TAKEN');
      expectError(await api('POST', '/images', { json: { name: ' Unique A ' } }), 409, 'NAME_TAKEN');
      expectError(await api('PATCH', `/images/${a.id}`, { json: { name: 'Unique B' } }), 409, 'NAME_TAKEN');
      // Renaming to its own name is not a conflict.
      expect((await api('PATCH', `/images/${a.id}`, { json: { name: 'Unique A' } })).status).toBe(200);
    });

    it('answers 404 for unknown or malformed ids and unknown routes', async () => {
      expectError(await api('GET', '/images/999999'), 404, 'NOT_FOUND');
      expectError(await api('GET', '/images/abc'), 404, 'NOT_FOUND');
      expectError(await api('GET', '/images/0'), 404, 'NOT_FOUND');
      expectError(await api('PATCH', '/images/999999', { json: { description: 'x' } }), 404, 'NOT_FOUND');
      expectError(await api('DELETE', '/images/999999'), 404, 'NOT_FOUND');
      expectError(await api('GET', '/images/999999/portal'), 404, 'NOT_FOUND');
      expectError(await api('POST', '/images/999999/check'), 404, 'NOT_FOUND');
      expectError(await api('GET', '/groups/999999'), 404, 'NOT_FOUND');
      expectError(await api('PATCH', '/groups/999999', { json: { name: 'x' } }), 404, 'NOT_FOUND');
      expectError(await api('DELETE', '/groups/999999'), 404, 'NOT_FOUND');
      expectError(await api('DELETE', '/tokens/no-such-token'), 404, 'NOT_FOUND');
      expectError(await api('GET', '/nothing-here'), 404, 'NOT_FOUND');
      expectError(await api('GET', `/blobs/${'0'.repeat(64)}`), 404, 'BLOB_UNKNOWN');
      expectError(await api('GET', '/blobs/not-a-digest'), 400, 'DIGEST_INVALID');
    });

    it('answers 413 PAYLOAD_TOO_LARGE for a body over 1 MiB, with or without Content-Length', async () => {
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const big = JSON.stringify({ name: 'big', description: 'x'.repeat(1024 * 1024) });
      const declared = await rawRequest(m.url, {
        method: 'POST',
        path: '/api/v1/images',
        headers: { ...headers, 'content-length': Buffer.byteLength(big) },
        chunks: [big],
      });
      expect(declared.status).toBe(413);
      expect(JSON.parse(declared.body)).toEqual({ error: { code: 'PAYLOAD_TOO_LARGE', message: anyString() } });

      const chunked = await rawRequest(m.url, {
        method: 'POST',
        path: '/api/v1/images',
        headers: { ...headers, 'transfer-encoding': 'chunked' },
        chunks: ['{"name":"chunked","description":"', ...Array.from({ length: 32 }, () => 'x'.repeat(64 * 1024)), '"}'],
      });
      expect(chunked.status).toBe(413);
      expect((JSON.parse(chunked.body) as ErrorBody).error.code).toBe('PAYLOAD_TOO_LARGE');

      // Exactly at the limit is still read (and then refused by validation: description > 1000 characters).
      const atLimit = JSON.stringify({ name: 'big', description: '' });
      const padded = atLimit.replace('""', `"${'x'.repeat(1024 * 1024 - atLimit.length)}"`);
      expect(Buffer.byteLength(padded)).toBe(1024 * 1024);
      expectError(
        await api('POST', '/images', { raw: padded, contentType: 'application/json' }),
        400,
        'VALIDATION_FAILED',
      );
      const names = (await api<ImageView[]>('GET', '/images')).body.map((i) => i.name);
      expect(names).not.toContain('big');
      expect(names).not.toContain('chunked');
    });
  });

  describe('groups', () => {
    it('creates, lists, updates and deletes groups, and images show the groups using them', async () => {
      const img = await createImage({ name: 'Group target', arm64: { enabled: true, sha256: arm } });
      const hq = await createGroup({ name: 'HQ', licenseKey: 'HQ-KEY-0001', primary: true, imageId: img.id });
      expect(hq).toMatchObject({
        name: 'HQ',
        licenseKey: 'HQ-KEY-0001',
        primary: true,
        imageId: img.id,
        image: { id: img.id, name: 'Group target' },
      });
      const sales = await createGroup({ name: 'Sales' });
      expect(sales).toMatchObject({ name: 'Sales', licenseKey: null, primary: false, imageId: null, image: null });

      const assigned = await api<GroupView>('PATCH', `/groups/${sales.id}`, {
        json: { imageId: img.id, licenseKey: 'SALES-1' },
      });
      expect(assigned.status, assigned.text).toBe(200);
      expect(assigned.body).toMatchObject({ imageId: img.id, licenseKey: 'SALES-1', image: { name: 'Group target' } });

      const view = (await api<ImageView>('GET', `/images/${img.id}`)).body;
      expect(view.groups).toEqual([
        { id: hq.id, name: 'HQ', primary: true },
        { id: sales.id, name: 'Sales', primary: false },
      ]);
      const list = (await api<GroupView[]>('GET', '/groups')).body;
      const names = list.map((g) => g.name);
      expect(names).toEqual([...names].sort());
      expect(list.find((g) => g.id === sales.id)).toEqual(assigned.body);
      expect((await api('GET', `/groups/${sales.id}`)).body).toEqual(assigned.body);

      const deleted = await api<{ deleted: GroupView }>('DELETE', `/groups/${sales.id}`);
      expect(deleted.status).toBe(200);
      expect(deleted.body.deleted).toMatchObject({ id: sales.id, name: 'Sales' });
      expectError(await api('GET', `/groups/${sales.id}`), 404, 'NOT_FOUND');
      expect((await api<ImageView>('GET', `/images/${img.id}`)).body.groups.map((g) => g.name)).toEqual(['HQ']);
      // Release the primary flag for the other tests.
      expect((await api<GroupView>('PATCH', `/groups/${hq.id}`, { json: { primary: false } })).body.primary).toBe(
        false,
      );
    });

    it('allows one image per group: 409 GROUP_HAS_IMAGE until it is cleared', async () => {
      const one = await createImage({ name: 'One' });
      const two = await createImage({ name: 'Two' });
      const g = await createGroup({ name: 'Engineering', imageId: one.id });
      const conflict = await api('PATCH', `/groups/${g.id}`, { json: { imageId: two.id } });
      expect(expectError(conflict, 409, 'GROUP_HAS_IMAGE').message).toMatch(/already has the golden image "One"/);
      expect((await api<GroupView>('GET', `/groups/${g.id}`)).body.imageId).toBe(one.id);
      // Setting the same image again is not a change of image.
      expect((await api('PATCH', `/groups/${g.id}`, { json: { imageId: one.id } })).status).toBe(200);
      expect((await api('PATCH', `/groups/${g.id}`, { json: { imageId: null } })).body).toMatchObject({
        imageId: null,
        image: null,
      });
      expect((await api('PATCH', `/groups/${g.id}`, { json: { imageId: two.id } })).body).toMatchObject({
        imageId: two.id,
        image: { name: 'Two' },
      });
      await api('PATCH', `/groups/${g.id}`, { json: { imageId: null } });
      expectError(await api('PATCH', `/groups/${g.id}`, { json: { imageId: 999999 } }), 400, 'VALIDATION_FAILED');
      expectError(
        await api('POST', '/groups', { json: { name: 'Nowhere', imageId: 999999 } }),
        400,
        'VALIDATION_FAILED',
      );
    });

    it('answers 409 for a taken name, a taken license key and a second primary', async () => {
      const boss = await createGroup({ name: 'Primary holder', primary: true, licenseKey: 'PRIMARY-KEY' });
      const other = await createGroup({ name: 'Another' });
      expectError(await api('POST', '/groups', { json: { name: 'Primary holder' } }), 409, 'NAME_TAKEN');
      expectError(await api('PATCH', `/groups/${other.id}`, { json: { name: 'Primary holder' } }), 409, 'NAME_TAKEN');
      expectError(
        await api('POST', '/groups', { json: { name: 'Copycat', licenseKey: 'PRIMARY-KEY' } }),
        409,
        'LICENSE_KEY_TAKEN',
      );
      const second = await api('POST', '/groups', { json: { name: 'Second primary', primary: true } });
      expect(expectError(second, 409, 'PRIMARY_TAKEN').message).toContain('"Primary holder"');
      expectError(await api('PATCH', `/groups/${other.id}`, { json: { primary: true } }), 409, 'PRIMARY_TAKEN');
      // The holder may keep (re-send) its own flag; after releasing it another group can take it.
      expect((await api('PATCH', `/groups/${boss.id}`, { json: { primary: true } })).status).toBe(200);
      await api('PATCH', `/groups/${boss.id}`, { json: { primary: false } });
      expect((await api<GroupView>('PATCH', `/groups/${other.id}`, { json: { primary: true } })).body.primary).toBe(
        true,
      );
      await api('PATCH', `/groups/${other.id}`, { json: { primary: false } });
      // Validation of group fields.
      expectError(
        await api('POST', '/groups', { json: { name: 'Spacey', licenseKey: 'has space' } }),
        400,
        'VALIDATION_FAILED',
      );
      expectError(
        await api('POST', '/groups', { json: { name: 'Empty key', licenseKey: '' } }),
        400,
        'VALIDATION_FAILED',
      );
      expectError(await api('POST', '/groups', { json: { name: 'Flag', primary: 'yes' } }), 400, 'VALIDATION_FAILED');
      expectError(await api('PATCH', `/groups/${other.id}`, { json: { color: 'red' } }), 400, 'VALIDATION_FAILED');
    });

    it('DELETE of an image reports the groups left without one, and clears them', async () => {
      const img = await createImage({ name: 'Doomed', arm64: { enabled: true, sha256: arm } });
      const a = await createGroup({ name: 'Doomed users A', imageId: img.id });
      const b = await createGroup({ name: 'Doomed users B', imageId: img.id });
      const bystander = await createGroup({ name: 'Bystanders' });
      const res = await api<DeletedImage>('DELETE', `/images/${img.id}`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.groupsLeftWithoutImage).toEqual([
        { id: a.id, name: 'Doomed users A' },
        { id: b.id, name: 'Doomed users B' },
      ]);
      expect(res.body.deleted).toMatchObject({ id: img.id, name: 'Doomed', arm64: { sha256: arm } });
      expectError(await api('GET', `/images/${img.id}`), 404, 'NOT_FOUND');
      for (const g of [a, b])
        expect((await api('GET', `/groups/${g.id}`)).body).toMatchObject({ imageId: null, image: null });
      expect((await api<GroupView>('GET', `/groups/${bystander.id}`)).body.imageId).toBeNull();
      const audit = (await api<AuditEntry[]>('GET', '/audit?limit=5')).body;
      expect(audit.find((e) => e.action === 'image.delete')).toMatchObject({
        actor: 'token:api-test',
        target: `image:${img.id}`,
        details: { name: 'Doomed', groups: ['Doomed users A', 'Doomed users B'] },
      });
      // An image no group uses reports none.
      const lonely = await createImage({ name: 'Lonely' });
      expect((await api<DeletedImage>('DELETE', `/images/${lonely.id}`)).body.groupsLeftWithoutImage).toEqual([]);
    });
  });

  describe('portal values', () => {
    it('gives exactly what the portal form needs', async () => {
      const img = await createImage({
        name: 'Portal',
        description: 'd',
        arm64: { enabled: true, sha256: arm },
        x86_64: { enabled: false, sha256: x86 },
      });
      await createGroup({ name: 'Portal primary', primary: true, imageId: img.id });
      await createGroup({ name: 'Portal sales', imageId: img.id });
      const res = await api('GET', `/images/${img.id}/portal`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        name: 'Portal',
        description: 'd',
        architectures: {
          arm64: {
            label: 'Apple silicon',
            enabled: true,
            downloadUrl: `${m.url}/d/${arm}/Windows-11-ARM.pvmp`,
            sha256: arm,
            size: armData.length,
          },
          x86_64: { label: 'Intel', enabled: false, downloadUrl: null, sha256: null, size: null },
        },
        groups: ['Portal sales'],
        primaryLicenseKey: true,
        ready: true,
        problems: [],
        // The test mirror's address is a loopback one: offered, but never without this warning.
        warnings: [
          `Macs cannot reach this mirror at ${m.url}: 127.0.0.1 is a loopback address: it always means the computer it is used on. Set the public address to a name or address every Mac can reach.`,
        ],
        publicAddress: { url: m.url, source: 'database' },
        pendingChange: null,
      });
      const empty = await createImage({ name: 'Nothing enabled' });
      const notReady = (await api('GET', `/images/${empty.id}/portal`)).body;
      expect(notReady).toMatchObject({
        ready: false,
        problems: ['no architecture is enabled'],
        groups: [],
        primaryLicenseKey: false,
      });
    });
  });

  describe('blobs', () => {
    it('lists packages with the images using them, and refuses to delete a used one (409 BLOB_IN_USE)', async () => {
      const data = testBytes(3000, 'api-deletable');
      const sha = await putBlob(m, data, 'deletable.pvmp');
      const img = await createImage({ name: 'Holds deletable', x86_64: { enabled: true, sha256: sha } });
      const list = (await api<BlobView[]>('GET', '/blobs')).body;
      expect(list.find((b) => b.sha256 === sha)).toMatchObject({
        size: 3000,
        name: 'deletable.pvmp',
        state: 'ok',
        url: `${m.url}/d/${sha}/deletable.pvmp`,
        usedBy: [{ imageId: img.id, imageName: 'Holds deletable', arch: 'x86_64' }],
      });
      expect((await api<BlobView>('GET', `/blobs/${sha.toUpperCase()}`)).body.sha256).toBe(sha);

      const refused = await api('DELETE', `/blobs/${sha}`);
      expect(expectError(refused, 409, 'BLOB_IN_USE').usedBy).toEqual([
        { imageId: img.id, imageName: 'Holds deletable', arch: 'x86_64' },
      ]);
      expect((await fetch(`${m.url}/d/${sha}/x.pvmp`)).status).toBe(200);

      await api('DELETE', `/images/${img.id}`);
      const deleted = await api<{ deleted: BlobView }>('DELETE', `/blobs/${sha}`);
      expect(deleted.status, deleted.text).toBe(200);
      expect(deleted.body.deleted).toMatchObject({ sha256: sha, size: 3000, usedBy: [] });
      expectError(await api('GET', `/blobs/${sha}`), 404, 'BLOB_UNKNOWN');
      // The link stops serving at once; the download path caches lookups for up to a second
      // (server/http/blob-lookup.ts), so it says 503 (file gone) before it says 404 (unknown).
      const linkStatus = async () => (await fetch(`${m.url}/d/${sha}/x.pvmp`)).status;
      expect([404, 503]).toContain(await linkStatus());
      await expect.poll(linkStatus, { timeout: 5_000, interval: 200 }).toBe(404);
      expect(await storedBytes(m, sha)).toBeNull();
      expectError(await api('DELETE', `/blobs/${sha}`), 404, 'BLOB_UNKNOWN');
    });
  });

  describe('session, tokens, audit, verify, gc, metrics', () => {
    it('shows who is calling: GET /session with a token', async () => {
      const res = await api('GET', '/session');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ actor: 'token:api-test', username: null, csrfToken: null });
      // A token cannot change a password (that needs a signed-in user), and DELETE /session is harmless.
      expectError(
        await api('POST', '/session/password', { json: { currentPassword: 'x', newPassword: 'y'.repeat(12) } }),
        403,
        'FORBIDDEN',
      );
      expect((await api('DELETE', '/session')).status).toBe(204);
      expect((await api('GET', '/session')).status).toBe(200);
    });

    it('creates, lists and revokes API tokens; the plaintext is shown once', async () => {
      const created = await api<{ name: string; token: string }>('POST', '/tokens', { json: { name: 'ci-runner' } });
      expect(created.status, created.text).toBe(201);
      expect(created.body).toEqual({ name: 'ci-runner', scope: 'admin', token: matching(/^gm_[A-Za-z0-9_-]{40,}$/) });
      const ci = created.body.token;
      expect((await call<{ actor: string }>(m.url, 'GET', '/api/v1/session', { token: ci })).body.actor).toBe(
        'token:ci-runner',
      );
      const list = await api<TokenInfo[]>('GET', '/tokens');
      expect(list.body.find((t) => t.name === 'ci-runner')).toEqual({
        name: 'ci-runner',
        scope: 'admin',
        createdAt: anyString(),
        lastUsedAt: anyString(),
      });
      expect(list.text).not.toContain(ci);
      expectError(await api('POST', '/tokens', { json: { name: 'ci-runner' } }), 409, 'NAME_TAKEN');
      expectError(await api('POST', '/tokens', { json: { name: 'bad name!' } }), 400, 'VALIDATION_FAILED');
      expectError(await api('POST', '/tokens', { json: {} }), 400, 'VALIDATION_FAILED');
      expect((await api('DELETE', '/tokens/ci-runner')).status).toBe(204);
      expectError(await call(m.url, 'GET', '/api/v1/images', { token: ci }), 401, 'UNAUTHORIZED');
      expect((await api<TokenInfo[]>('GET', '/tokens')).body.some((t) => t.name === 'ci-runner')).toBe(false);
    });

    it('records who did what in the audit log, newest first, with paging', async () => {
      const img = await createImage({ name: 'Audited', arm64: { enabled: true, sha256: arm } });
      await api('PATCH', `/images/${img.id}`, { json: { description: 'after' } });
      const res = await api<AuditEntry[]>('GET', '/audit?limit=2');
      expect(res.status).toBe(200);
      expect(res.body).toHaveLength(2);
      const update = res.body[0]!;
      const create = res.body[1]!;
      expect(update).toMatchObject({
        actor: 'token:api-test',
        action: 'image.update',
        target: `image:${img.id}`,
        details: { description: 'after' },
      });
      expect(create).toMatchObject({
        actor: 'token:api-test',
        action: 'image.create',
        target: `image:${img.id}`,
        details: { name: 'Audited' },
      });
      expect(update.id).toBeGreaterThan(create.id);
      const older = await api<AuditEntry[]>('GET', `/audit?limit=1&before=${create.id}`);
      expect(older.body).toHaveLength(1);
      expect(older.body[0]!.id).toBeLessThan(create.id);
      // Failed changes leave no entry.
      const before = (await api<AuditEntry[]>('GET', '/audit?limit=1')).body[0]!.id;
      await api('POST', '/images', { json: { name: 'Audited' } });
      expect((await api<AuditEntry[]>('GET', '/audit?limit=1')).body[0]!.id).toBe(before);
    });

    it('verifies a package on request and shows a corrupt one everywhere it matters', async () => {
      const data = testBytes(5000, 'api-corrupt');
      const sha = await putBlob(m, data, 'corruptible.pvmp');
      const img = await createImage({ name: 'Will break', arm64: { enabled: true, sha256: sha } });
      const ok = await api('POST', '/verify', { json: { sha256: sha, wait: true } });
      expect(ok.status, ok.text).toBe(200);
      expect(ok.body).toEqual({ results: { [sha]: 'ok' } });

      await corruptStored(m, sha, 100);
      const bad = await api('POST', '/verify', { json: { sha256: sha, wait: true } });
      expect(bad.body).toEqual({ results: { [sha]: 'corrupt' } });

      const status = await api<CheckerStatus & IntegritySummary>('GET', '/verify');
      expect(status.body.blobs.corrupt).toBe(1);
      expect(status.body.problems).toEqual([
        like({ sha256: sha, state: 'corrupt', images: [{ id: img.id, name: 'Will break', arch: 'arm64' }] }),
      ]);
      const portal = (await api<PortalValues>('GET', `/images/${img.id}/portal`)).body;
      expect(portal.ready).toBe(false);
      expect(portal.problems).toEqual(['Apple silicon: the package is corrupt and cannot be served']);
      expect((await fetch(`${m.url}/d/${sha}/x.pvmp`)).status).toBe(503);

      expectError(await api('POST', '/verify', { json: {} }), 400, 'VALIDATION_FAILED');
      expectError(await api('POST', '/verify', { json: { sha256: '1'.repeat(64), wait: true } }), 404, 'BLOB_UNKNOWN');
      expect((await api('DELETE', '/verify')).body).toEqual({ cancelled: 0 });
      await api('DELETE', `/images/${img.id}`);
    });

    it('runs gc (dry run keeps everything young) and serves metrics', async () => {
      const gc = await api('POST', '/gc', { json: { dryRun: true } });
      expect(gc.status, gc.text).toBe(200);
      expect(gc.body).toMatchObject({ dryRun: true, removed: [], freedBytes: 0 });
      expectError(await api('POST', '/gc', { json: { dryRun: 'yes' } }), 400, 'VALIDATION_FAILED');
      const metrics = await call(m.url, 'GET', '/metrics', { token });
      expect(metrics.status).toBe(200);
      expect(metrics.headers.get('content-type')).toContain('text/plain');
      expect(metrics.text).toMatch(/^# HELP /m);
    });
  });
});
