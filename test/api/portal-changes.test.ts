/**
 * Portal values that go stale (issue 17, item 2): when an image's package,
 * enable switch or public address changes, the API's portal view, the image
 * page and the dashboard show old and new values until the admin marks the
 * portal updated (audited; refused if the values changed again meanwhile).
 * Real server, real SQLite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../server/services/audit.js';
import type { ImageView, PortalValues } from '../../server/services/images.js';
import type { PortalChange } from '../../server/services/portal-changes.js';
import { bootstrapTestAdmin, call, expectError, issueToken, mustSignIn, type Session } from '../helpers/api.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

const LAN = 'http://mirror.example.lan:8080';

describe('pending portal changes', () => {
  let m: TestMirror;
  let token: string;
  let session: Session;
  let armOld: string;
  let armNew: string;
  let intel: string;
  const api = <T = unknown>(method: string, path: string, json?: unknown) =>
    call<T>(m.url, method, `/api/v1${path}`, { token, json });
  const portal = async (id: number) => (await api<PortalValues>('GET', `/images/${id}/portal`)).body;
  const create = async (body: Record<string, unknown>) => {
    const res = await api<ImageView>('POST', '/images', body);
    expect(res.status, res.text).toBe(201);
    return res.body;
  };
  const patch = async (id: number, body: Record<string, unknown>) => {
    const res = await api<ImageView>('PATCH', `/images/${id}`, body);
    expect(res.status, res.text).toBe(200);
    return res.body;
  };
  const url = (base: string, sha: string, name: string) => `${base}/d/${sha}/${name}`;

  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'portal');
    await bootstrapTestAdmin(m);
    session = await mustSignIn(m.url);
    expect((await api('PATCH', '/settings', { publicUrl: LAN })).status).toBe(200);
    armOld = await putBlob(m, testBytes(4000, 'pc-arm-old'), 'Win11-arm-v1.pvmp');
    armNew = await putBlob(m, testBytes(4001, 'pc-arm-new'), 'Win11-arm-v2.pvmp');
    intel = await putBlob(m, testBytes(4002, 'pc-intel'), 'Win11-x86.pvmp');
  });
  afterAll(async () => {
    await m?.close();
  });

  it('a new image is not a change; a new package for an architecture is, with old and new side by side', async () => {
    const img = await create({ name: 'Switch package', arm64: { enabled: true, sha256: armOld } });
    expect((await portal(img.id)).pendingChange).toBeNull();
    // Name and description are not tracked: an old one in the portal sends no Mac to a wrong file.
    await patch(img.id, { description: 'new text' });
    expect((await portal(img.id)).pendingChange).toBeNull();

    const before = Date.now();
    await patch(img.id, { arm64: { sha256: armNew } });
    const p = await portal(img.id);
    // The portal view itself carries the new values …
    expect(p.architectures.arm64.downloadUrl).toBe(url(LAN, armNew, 'Win11-arm-v2.pvmp'));
    // … and, until the admin marks it done, the old ones.
    const change = p.pendingChange!;
    expect(change).not.toBeNull();
    expect(Date.parse(change.since!)).toBeGreaterThanOrEqual(before - 1000);
    expect(change.previous.arm64).toEqual({
      enabled: true,
      downloadUrl: url(LAN, armOld, 'Win11-arm-v1.pvmp'),
      sha256: armOld,
    });
    expect(change.current.arm64).toEqual({
      enabled: true,
      downloadUrl: url(LAN, armNew, 'Win11-arm-v2.pvmp'),
      sha256: armNew,
    });
    expect(change.changes).toEqual([
      {
        arch: 'arm64',
        label: 'Apple silicon',
        field: 'downloadUrl',
        from: url(LAN, armOld, 'Win11-arm-v1.pvmp'),
        to: url(LAN, armNew, 'Win11-arm-v2.pvmp'),
      },
      { arch: 'arm64', label: 'Apple silicon', field: 'sha256', from: armOld, to: armNew },
    ]);
    expect(change.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    // The image view carries it too.
    expect((await api<ImageView>('GET', `/images/${img.id}`)).body.portalChange).toEqual(change);
  });

  it('shows "Portal values changed — update the portal" on the image page and the dashboard until marked done', async () => {
    const img = await create({ name: 'Shown in pages', arm64: { enabled: true, sha256: armOld } });
    await patch(img.id, { arm64: { sha256: armNew } });
    const imagePage = (await call(m.url, 'GET', `/admin/images/${img.id}`, { session })).text;
    const dashboard = (await call(m.url, 'GET', '/admin', { session })).text;
    for (const html of [imagePage, dashboard]) {
      expect(html).toContain('Portal values changed — update the portal');
      expect(html).toContain(`<td class="old">${armOld}</td><td class="new">${armNew}</td>`);
      expect(html).toContain(
        `<td class="old">${url(LAN, armOld, 'Win11-arm-v1.pvmp')}</td><td class="new">${url(LAN, armNew, 'Win11-arm-v2.pvmp')}</td>`,
      );
      expect(html).toContain(`action="/admin/images/${img.id}/portal/confirm"`);
    }
    expect(dashboard).toContain('Portal values changed — update the portal: Shown in pages');

    // The button (a plain form post) marks it done and comes back to the dashboard.
    const fingerprint = (await portal(img.id)).pendingChange!.fingerprint;
    const res = await call(m.url, 'POST', `/admin/images/${img.id}/portal/confirm`, {
      session,
      csrf: null,
      raw: `_csrf=${encodeURIComponent(session.csrfToken)}&fingerprint=${fingerprint}&back=%2Fadmin`,
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(res.status, res.text).toBe(303);
    expect(res.headers.get('location')).toBe('/admin?done=portal-confirmed');
    expect((await portal(img.id)).pendingChange).toBeNull();
    expect((await call(m.url, 'GET', `/admin/images/${img.id}`, { session })).text).not.toContain(
      'Portal values changed',
    );
    expect((await call(m.url, 'GET', '/admin', { session })).text).not.toContain(
      'Portal values changed — update the portal: Shown in pages',
    );
  });

  it('is marked done through the API (audited with old and new), refused when the values changed again since', async () => {
    const img = await create({ name: 'Confirm via API', arm64: { enabled: true, sha256: armOld } });
    await patch(img.id, { arm64: { sha256: armNew } });
    const seen = (await portal(img.id)).pendingChange!;
    // Someone switches again before the admin confirms what they saw.
    await patch(img.id, { x86_64: { enabled: true, sha256: intel } });
    const stale = await api('POST', `/images/${img.id}/portal/confirm`, { fingerprint: seen.fingerprint });
    expect(expectError(stale, 409, 'CONFLICT').message).toMatch(/changed again/);
    const now = (await portal(img.id)).pendingChange!;
    expect(now.changes.map((c) => `${c.arch}.${c.field}`)).toEqual([
      'arm64.downloadUrl',
      'arm64.sha256',
      'x86_64.enabled',
      'x86_64.downloadUrl',
      'x86_64.sha256',
    ]);
    expect(now.changes[2]).toMatchObject({ from: false, to: true });

    const done = await api<PortalValues>('POST', `/images/${img.id}/portal/confirm`, { fingerprint: now.fingerprint });
    expect(done.status, done.text).toBe(200);
    expect(done.body.pendingChange).toBeNull();
    const audit = (await api<AuditEntry[]>('GET', '/audit?limit=1')).body[0]!;
    expect(audit).toMatchObject({
      action: 'image.portal-updated',
      actor: 'token:portal',
      target: `image:${img.id}`,
      details: { name: 'Confirm via API', previous: seen.previous, current: now.current },
    });
    // Nothing pending: a bare POST changes nothing and writes no audit entry.
    const again = await call(m.url, 'POST', `/api/v1/images/${img.id}/portal/confirm`, { token });
    expect(again.status, again.text).toBe(200);
    expect((await api<AuditEntry[]>('GET', '/audit?limit=1')).body[0]!.id).toBe(audit.id);
    expectError(await api('POST', '/images/424242/portal/confirm', {}), 404, 'NOT_FOUND');
    expectError(await api('POST', `/images/${img.id}/portal/confirm`, { fingerprint: 1 }), 400, 'VALIDATION_FAILED');
    expectError(await call(m.url, 'POST', `/api/v1/images/${img.id}/portal/confirm`), 401, 'UNAUTHORIZED');
  });

  it('treats the enable switch as a portal value, and a change undone as no change', async () => {
    const img = await create({
      name: 'Toggle',
      arm64: { enabled: true, sha256: armOld },
      x86_64: { enabled: false, sha256: intel },
    });
    await patch(img.id, { arm64: { enabled: false } });
    expect((await portal(img.id)).pendingChange!.changes).toEqual([
      { arch: 'arm64', label: 'Apple silicon', field: 'enabled', from: true, to: false },
    ]);
    await patch(img.id, { arm64: { enabled: true } });
    expect((await portal(img.id)).pendingChange).toBeNull();
    const row = await m.runtime.db
      .selectFrom('portal_confirmed')
      .select('changed_at')
      .where('image_id', '=', img.id)
      .executeTakeFirstOrThrow();
    expect(row.changed_at).toBeNull();
    // A package swapped on a disabled architecture is nothing the portal shows.
    await patch(img.id, { x86_64: { sha256: armNew } });
    expect((await portal(img.id)).pendingChange).toBeNull();
  });

  it('a new public address changes every enabled Download URL: each image shows it as pending', async () => {
    const img = await create({ name: 'Moved server', arm64: { enabled: true, sha256: armOld } });
    const off = await create({ name: 'Nothing enabled' });
    const moved = 'http://mirror2.example.lan:8080';
    expect((await api('PATCH', '/settings', { publicUrl: moved })).status).toBe(200);
    try {
      const change = (await portal(img.id)).pendingChange!;
      expect(change.changes).toEqual([
        {
          arch: 'arm64',
          label: 'Apple silicon',
          field: 'downloadUrl',
          from: url(LAN, armOld, 'Win11-arm-v1.pvmp'),
          to: url(moved, armOld, 'Win11-arm-v1.pvmp'),
        },
      ]);
      expect(change.since).not.toBeNull();
      expect((await portal(off.id)).pendingChange).toBeNull();
      // Moving back makes the portal right again.
      expect((await api('PATCH', '/settings', { publicUrl: LAN })).status).toBe(200);
      expect((await portal(img.id)).pendingChange).toBeNull();
    } finally {
      await api('PATCH', '/settings', { publicUrl: LAN });
    }
  });

  it('a change made behind the service’s back (a bundle import writes rows directly) still shows, without a start time', async () => {
    const img = await create({ name: 'Changed by import', arm64: { enabled: true, sha256: armOld } });
    await m.runtime.db.updateTable('images').set({ arm64_sha256: armNew }).where('id', '=', img.id).execute();
    const change: PortalChange = (await portal(img.id)).pendingChange!;
    expect(change.since).toBeNull();
    expect(change.changes.map((c) => c.field)).toEqual(['downloadUrl', 'sha256']);
  });
});
