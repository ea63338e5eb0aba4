/**
 * The public address Macs use (issue 17, item 1): a setting stored in the
 * database, read and set through the API and the settings page, validated,
 * overridden by MIRROR_PUBLIC_URL; until it is set no Download URL is
 * offered (API and pages say why), and an address Macs cannot reach is
 * never offered without a warning. Real server, real SQLite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../server/services/audit.js';
import type { BlobView } from '../../server/services/blobs.js';
import type { ImageView, PortalValues } from '../../server/services/images.js';
import { PUBLIC_ADDRESS_MISSING, type PublicAddress } from '../../server/services/settings.js';
import {
  bootstrapTestAdmin,
  call,
  containing,
  expectError,
  issueToken,
  mustSignIn,
  type Session,
} from '../helpers/api.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

const LAN = 'http://mirror.example.lan:8080';

interface SettingsBody {
  publicUrl: PublicAddress;
}

describe('public address setting', () => {
  let m: TestMirror;
  let token: string;
  let session: Session;
  let sha: string;
  let image: ImageView;
  const api = <T = unknown>(method: string, path: string, json?: unknown) =>
    call<T>(m.url, method, `/api/v1${path}`, { token, json });
  const setAddress = (publicUrl: string | null) => api<SettingsBody>('PATCH', '/settings', { publicUrl });
  const page = async (path: string) => {
    const res = await call(m.url, 'GET', path, { session });
    expect(res.status, path).toBe(200);
    return res.text;
  };

  beforeAll(async () => {
    m = await startMirror();
    token = await issueToken(m, 'address');
    await bootstrapTestAdmin(m);
    session = await mustSignIn(m.url);
    sha = await putBlob(m, testBytes(5000, 'address'), 'Win11-arm.pvmp');
    const created = await api<ImageView>('POST', '/images', { name: 'Win 11', arm64: { enabled: true, sha256: sha } });
    expect(created.status, created.text).toBe(201);
    image = created.body;
  });
  afterAll(async () => {
    await m?.close();
  });

  it('starts unset: no URL anywhere, the portal view is not ready and names the missing address', async () => {
    await setAddress(null);
    expect((await api<SettingsBody>('GET', '/settings')).body.publicUrl).toEqual({
      url: null,
      source: 'unset',
      stored: null,
      updatedAt: null,
      updatedBy: null,
      warnings: [],
    });
    const portal = (await api<PortalValues>('GET', `/images/${image.id}/portal`)).body;
    expect(portal.ready).toBe(false);
    expect(portal.problems).toEqual([PUBLIC_ADDRESS_MISSING]);
    expect(portal.problems[0]).toMatch(/public address .* is not set/);
    expect(portal.architectures.arm64).toMatchObject({ enabled: true, downloadUrl: null, sha256: sha });
    expect(portal.publicAddress).toEqual({ url: null, source: 'unset' });
    expect((await api<ImageView>('GET', `/images/${image.id}`)).body.arm64.url).toBeNull();
    expect((await api<BlobView>('GET', `/blobs/${sha}`)).body.url).toBeNull();
  });

  it('shows a banner on every page until it is set, and "not ready" instead of a URL in the portal view', async () => {
    await setAddress(null);
    for (const path of [
      '/admin',
      '/admin/images',
      `/admin/images/${image.id}`,
      '/admin/groups',
      '/admin/blobs',
      `/admin/blobs/${sha}`,
      '/admin/upload',
      '/admin/settings',
      '/admin/account',
    ]) {
      const html = await page(path);
      expect(html, path).toContain('id="address-banner"');
      expect(html, path).toContain('Set the public address first.');
    }
    const portal = await page(`/admin/images/${image.id}`);
    expect(portal).toContain('Apple silicon — enabled');
    expect(portal).toMatch(
      /<p class="not-ready" id="url-arm64"><span class="badge bad">not ready<\/span> no public address is set/,
    );
    // No copyable guess: neither this request's host nor any /d/ link.
    expect(portal).not.toContain(`/d/${sha}`);
    expect(portal).not.toContain('data-copy="url-arm64"');
    const blobPage = await page(`/admin/blobs/${sha}`);
    expect(blobPage).not.toContain(`/d/${sha}`);
  });

  it('is set through the API (audited), builds every link from it, and the banner goes away', async () => {
    const res = await setAddress(`${LAN}/`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.publicUrl).toMatchObject({
      url: LAN,
      source: 'database',
      stored: LAN,
      updatedBy: 'token:address',
      warnings: [],
    });
    const url = `${LAN}/d/${sha}/Win11-arm.pvmp`;
    const portal = (await api<PortalValues>('GET', `/images/${image.id}/portal`)).body;
    expect(portal).toMatchObject({
      ready: true,
      problems: [],
      warnings: [],
      publicAddress: { url: LAN, source: 'database' },
    });
    expect(portal.architectures.arm64.downloadUrl).toBe(url);
    expect((await api<BlobView>('GET', `/blobs/${sha}`)).body.url).toBe(url);
    const html = await page(`/admin/images/${image.id}`);
    expect(html).not.toContain('id="address-banner"');
    // Shown whole (wrapping between path segments), with a Copy button.
    expect(html.replace(/<\/?span( class="seg")?>/g, '')).toContain(
      `<code id="url-arm64" class="copy-value" aria-labelledby="url-arm64-label">${url}</code>`,
    );
    expect(html).toContain('data-copy="url-arm64"');
    const audit = (await api<AuditEntry[]>('GET', '/audit?limit=1')).body[0]!;
    expect(audit).toMatchObject({
      action: 'settings.update',
      actor: 'token:address',
      details: { publicUrl: { from: null, to: LAN } },
    });
  });

  it('refuses what is not an address Macs can use, naming the field, and keeps the old value', async () => {
    await setAddress(LAN);
    const cases: Array<[unknown, RegExp]> = [
      ['', /enter the address Macs use/],
      ['mirror.lan:8080', /must start with http:\/\/ or https:\/\/|absolute URL/],
      ['ftp://mirror.lan', /must start with http:\/\/ or https:\/\//],
      ['http://admin:secret@mirror.lan', /user name or password/],
      ['http://mirror.lan/?x=1', /query/],
      ['http://mirror.lan/#top', /fragment/],
      [`http://mirror.lan/d/${sha}/Win11-arm.pvmp`, /not a download link/],
      ['http://mirror.lan:8080/admin', /without \/admin/],
      ['http://mirror .lan', /spaces/],
      [`http://${'a'.repeat(600)}.lan`, /at most 500/],
      [42, /must be a URL string/],
    ];
    for (const [value, message] of cases) {
      const res = await setAddress(value as string);
      const error = expectError(res, 400, 'VALIDATION_FAILED');
      expect(error.message, JSON.stringify(value)).toMatch(message);
      expect(error.fields).toEqual([{ field: 'publicUrl', message: expect.any(String) as string }]);
    }
    expectError(await api('PATCH', '/settings', { publicUrl: LAN, other: 1 }), 400, 'VALIDATION_FAILED');
    expect((await api<SettingsBody>('GET', '/settings')).body.publicUrl.url).toBe(LAN);
  });

  it('accepts a path prefix for a reverse proxy and normalises case and trailing slashes', async () => {
    expect((await setAddress('HTTPS://Intranet.Example.LAN/mirror//')).body.publicUrl.url).toBe(
      'https://intranet.example.lan/mirror',
    );
    expect((await api<ImageView>('GET', `/images/${image.id}`)).body.arm64.url).toBe(
      `https://intranet.example.lan/mirror/d/${sha}/Win11-arm.pvmp`,
    );
    expect((await setAddress('http://[fd00::5]:8080')).body.publicUrl.url).toBe('http://[fd00::5]:8080');
  });

  it('never offers a loopback, link-local or localhost address without a warning (API, portal, pages)', async () => {
    const unreachable: Array<[string, RegExp]> = [
      ['http://127.0.0.1:8080', /127\.0\.0\.1 is a loopback address/],
      ['http://localhost:8080', /localhost always means the computer it is typed on/],
      ['http://app.localhost', /app\.localhost always means/],
      ['http://[::1]:8080', /\[::1\] is a loopback address/],
      ['http://169.254.10.20', /169\.254\.10\.20 is a link-local address/],
      ['http://[fe80::1]', /\[fe80::1\] is a link-local address/],
      ['http://0.0.0.0:8080', /0\.0\.0\.0 is not an address a Mac can connect to/],
    ];
    for (const [address, message] of unreachable) {
      const res = await setAddress(address);
      expect(res.status, res.text).toBe(200);
      expect(res.body.publicUrl.warnings, address).toEqual([containing('Macs cannot reach this mirror')]);
      expect(res.body.publicUrl.warnings[0]).toMatch(message);
      const portal = (await api<PortalValues>('GET', `/images/${image.id}/portal`)).body;
      expect(portal.warnings, address).toEqual(res.body.publicUrl.warnings);
      // Offered (a demo on one machine is legitimate) …
      expect(portal.architectures.arm64.downloadUrl).toBe(`${address}/d/${sha}/Win11-arm.pvmp`);
    }
    // … but every page says it in red, and the portal view next to the URL too.
    await setAddress('http://127.0.0.1:8080');
    for (const path of ['/admin', '/admin/groups', `/admin/images/${image.id}`]) {
      const html = await page(path);
      expect(html).toMatch(
        /<aside class="banner bad" id="address-banner" aria-label="Public address"><p>Macs cannot reach this mirror at http:\/\/127\.0\.0\.1:8080/,
      );
    }
    expect(await page(`/admin/images/${image.id}`)).toMatch(
      /<p class="warn-text">Macs cannot reach this mirror at http:\/\/127\.0\.0\.1:8080/,
    );
    // Ordinary LAN addresses and names get no warning.
    for (const address of [
      'http://192.168.1.20:8080',
      'http://10.0.0.5',
      'https://mirror.corp.example',
      'http://mirror.local:8080',
      'http://[fd00::5]',
    ]) {
      expect((await setAddress(address)).body.publicUrl.warnings, address).toEqual([]);
    }
  });

  it('is edited on the settings page (a form that works without JavaScript) and cleared again', async () => {
    await setAddress(null);
    const form = (body: string) =>
      call(m.url, 'POST', '/admin/settings', {
        session,
        csrf: null,
        raw: `_csrf=${encodeURIComponent(session.csrfToken)}&${body}`,
        contentType: 'application/x-www-form-urlencoded',
      });
    const bad = await form('publicUrl=mirror.lan&action=save');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('aria-invalid="true"');
    expect(bad.text).toContain('value="mirror.lan"');
    const saved = await form(`publicUrl=${encodeURIComponent(LAN)}&action=save`);
    expect(saved.status).toBe(303);
    expect(saved.headers.get('location')).toBe('/admin/settings?done=settings-saved');
    const html = await page('/admin/settings?done=settings-saved');
    expect(html).toContain(`In use: <code class="mono">${LAN}</code>`);
    expect(html).toContain('Public address saved.');
    expect((await api<SettingsBody>('GET', '/settings')).body.publicUrl).toMatchObject({
      url: LAN,
      updatedBy: 'user:admin',
    });
    const cleared = await form('publicUrl=&action=clear');
    expect(cleared.headers.get('location')).toBe('/admin/settings?done=settings-cleared');
    expect((await api<SettingsBody>('GET', '/settings')).body.publicUrl.url).toBeNull();
  });
});

describe('public address from MIRROR_PUBLIC_URL', () => {
  let m: TestMirror;
  let token: string;

  beforeAll(async () => {
    m = await startMirror({ publicUrl: 'http://mirror.test:8080' });
    token = await issueToken(m, 'env');
    await bootstrapTestAdmin(m);
  });
  afterAll(async () => {
    await m?.close();
  });

  it('wins over the stored setting, which cannot be changed while it is set; the page says so', async () => {
    await m.runtime.db
      .insertInto('settings')
      .values({ key: 'public_url', value: 'http://stored.lan', updated_at: 1, updated_by: 'user:admin' })
      .execute();
    const got = await call<SettingsBody>(m.url, 'GET', '/api/v1/settings', { token });
    expect(got.body.publicUrl).toMatchObject({
      url: 'http://mirror.test:8080',
      source: 'config',
      stored: 'http://stored.lan',
      warnings: [],
    });
    const refused = await call(m.url, 'PATCH', '/api/v1/settings', { token, json: { publicUrl: 'http://other.lan' } });
    expect(expectError(refused, 409, 'SETTING_LOCKED').message).toMatch(/set by MIRROR_PUBLIC_URL .* which wins/);
    const session = await mustSignIn(m.url);
    const html = (await call(m.url, 'GET', '/admin/settings', { session })).text;
    expect(html).toContain('id="address-locked"');
    expect(html).toContain(
      'MIRROR_PUBLIC_URL (or <code>publicUrl</code> in the config file) is set, and it wins over this page.',
    );
    expect(html).toContain('The address stored here (http://stored.lan) is used once it is removed.');
    expect(html).not.toContain('name="publicUrl"');
    expect(html).not.toContain('id="address-banner"');
  });
});
