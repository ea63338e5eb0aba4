/**
 * The admin console in a real headless Chromium (playwright-core, Debian's
 * /usr/bin/chromium) against a real started mirror. One story, in order:
 * sign in, upload, create images, groups, copy, link check, phone width,
 * delete, and the same basics with JavaScript switched off.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from '../../server/services/audit.js';
import { bootstrapAdmin } from '../../server/services/auth.js';
import { acceptHeartbeat } from '../../server/services/replicas.js';
import { updateSettings } from '../../server/services/settings.js';
import { makeTempDir, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { fakeDmg, feedXml, sha256Of, startFakeUpstream, type FakeUpstream } from '../helpers/pd-upstream.js';
import {
  expectNoHorizontalOverflow,
  launchChromium,
  screenshot,
  SCREENSHOT_DIR,
  signIn,
  writePackage,
  type TestPackage,
} from './helpers.js';

const PASSWORD = 'browser-test-password-1';
const XSS_NAME = '<script>alert(1)</script> Win 11';
const MiB = 1024 * 1024;

let browser: Browser;
let mirror: TestMirror;
/** Stands in for update.parallels.com and download.parallels.com on the Updates page. */
let upstream: FakeUpstream;
let context: BrowserContext;
let page: Page;
let tmp: string;
let base: string;
let arm: TestPackage;
let intel: TestPackage;
/** Bytes whose checksum file names other bytes. */
let mismatched: TestPackage;
let imageId: number;
let secondImageId: number;
const dialogs: string[] = [];
const scriptErrors: string[] = [];
const screenshots: Array<{ file: string; width: number }> = [];
/** This file's screenshots; only these are replaced (other browser tests save theirs beside them). */
const SCREENSHOTS = [
  'dashboard',
  'groups',
  'image-portal-checked',
  'images',
  'login',
  'packages',
  'phone-image-portal-checked',
  'phone-sites',
  'phone-updates',
  'phone-upload-finished',
  'sites',
  'updates',
  'upload-finished',
];

/** Clicks a submit button and waits for the next page; returns the status of the POST itself (303 for a redirect). */
async function submit(p: Page, button: Locator): Promise<number> {
  const [response] = await Promise.all([
    p.waitForResponse((r) => r.request().isNavigationRequest() && r.request().method() === 'POST'),
    p.waitForEvent('load'),
    button.click(),
  ]);
  return response.status();
}

const button = (p: Page, name: string) => p.getByRole('button', { name, exact: true });
const alertText = async (p: Page) => (await p.getByRole('alert').innerText()).trim();
const statusText = async (p: Page) => (await p.locator('p.flash.ok[role=status]').innerText()).trim();
const idFromUrl = (p: Page, kind: 'images' | 'groups') =>
  Number(new RegExp(`/admin/${kind}/(\\d+)`).exec(p.url())?.[1]);

async function blobCount(): Promise<number> {
  return (await mirror.runtime.db.selectFrom('blobs').select('sha256').execute()).length;
}

async function shot(p: Page, name: string): Promise<void> {
  screenshots.push({ file: await screenshot(p, name), width: p.viewportSize()?.width ?? 0 });
}

function watch(ctx: BrowserContext): void {
  ctx.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  ctx.on('weberror', (err) => scriptErrors.push(String(err.error())));
}

beforeAll(async () => {
  browser = await launchChromium();
  upstream = await startFakeUpstream();
  // The update feed is read only when Sync now is clicked.
  mirror = await startMirror({ pdUpdatesUpstream: [upstream.feedUrl(26)], pdUpdatesIntervalMs: 0 });
  base = mirror.url;
  await bootstrapAdmin(mirror.runtime, mirror.runtime.store.layout.root, PASSWORD);
  // Links need a public address; this one (loopback) is fine for a browser on the same machine.
  await updateSettings(mirror.runtime, systemActor, { publicUrl: base });
  tmp = await makeTempDir('goldmirror-browser-');
  arm = await writePackage(tmp, 'Win11-arm64.pvmp', 3 * MiB, 'browser-arm64');
  intel = await writePackage(tmp, 'Win11-x86_64.pvmp', 3 * MiB, 'browser-x86_64');
  mismatched = await writePackage(tmp, 'tampered.pvmp', 1 * MiB, 'browser-tampered', arm.sha256);
  for (const name of SCREENSHOTS) await fs.rm(path.join(SCREENSHOT_DIR, `${name}.png`), { force: true });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  watch(context);
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
  await mirror?.close();
  await upstream?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

// Sequential: the tests share one page and one mirror, and each starts where the one before left off.
describe.sequential('admin console in Chromium', () => {
  it('signs in (a wrong password gets a friendly error), lands on the dashboard, and signs out', async () => {
    await page.goto(`${base}/admin`);
    expect(page.url()).toBe(`${base}/admin/login?next=%2Fadmin`);
    await shot(page, 'login');

    await page.fill('#password', 'not-the-password');
    expect(await submit(page, button(page, 'Sign in'))).toBe(401);
    expect(await alertText(page)).toBe('wrong user name or password');
    expect(await page.inputValue('#username')).toBe('admin');
    expect(await page.content()).not.toContain('"error"');

    await page.fill('#password', PASSWORD);
    expect(await submit(page, button(page, 'Sign in'))).toBe(303);
    expect(page.url()).toBe(`${base}/admin`);
    expect(await page.locator('h1').innerText()).toBe('Dashboard');
    expect(await page.locator('.account a').innerText()).toBe('admin');

    expect(await submit(page, button(page, 'Sign out'))).toBe(303);
    expect(page.url()).toBe(`${base}/admin/login`);
    await page.goto(`${base}/admin/images`);
    expect(page.url()).toBe(`${base}/admin/login?next=%2Fadmin%2Fimages`);

    await signIn(page, base, PASSWORD);
  });

  it('uploads a package with its checksum file, shows progress to 100% and the SHA-256 link, then the other architecture', async () => {
    await page.goto(`${base}/admin/upload`);
    expect(await page.locator('#upload-hint').innerText()).toContain('another upload');
    for (const pkg of [arm, intel]) {
      await page.setInputFiles('#checksum', pkg.checksumFile);
      await page.setInputFiles('#package', pkg.file);
      await button(page, 'Upload').click();
      const row = page.locator('.upload-row', { hasText: pkg.name });
      const link = row.locator(`a[href="/admin/blobs/${pkg.sha256}"]`);
      await link.waitFor({ timeout: 30_000 });
      expect(await link.innerText()).toBe(`SHA-256 ${pkg.sha256}`);
      expect(await row.locator('.upload-status').innerText()).toContain('100% · stored and verified.');
      expect(await row.locator('progress').getAttribute('value')).toBe('100'); // the value property reflects this attribute
      expect(await row.innerText()).toContain(`checked against ${path.basename(pkg.checksumFile)}`);
    }
    expect(page.url()).toBe(`${base}/admin/upload`); // no page load: the script did it
    await shot(page, 'upload-finished');

    await page.getByRole('link', { name: `SHA-256 ${arm.sha256}` }).click();
    await page.waitForURL(`${base}/admin/blobs/${arm.sha256}`);
    expect(await page.locator('h1').innerText()).toBe(arm.name);
    expect(await page.locator('#blob-sha').innerText()).toBe(arm.sha256);

    await page.goto(`${base}/admin/blobs`);
    expect(await page.locator('tbody tr').count()).toBe(2);
    await shot(page, 'packages');
    expect(await blobCount()).toBe(2);
  });

  it('refuses a package whose checksum file does not match, with a readable message, and stores nothing', async () => {
    await page.goto(`${base}/admin/upload`);
    await page.setInputFiles('#checksum', mismatched.checksumFile);
    await page.setInputFiles('#package', mismatched.file);
    await button(page, 'Upload').click();
    const status = page.locator('.upload-row', { hasText: mismatched.name }).locator('.upload-status.field-error');
    await status.waitFor({ timeout: 30_000 });
    const message = (await status.innerText()).trim();
    expect(message).not.toMatch(/^[[{]/);
    expect(message).not.toContain('"code"');
    expect(message).toMatch(/sha-?256|checksum|match/i);
    expect(message).toContain(arm.sha256); // says what was expected
    expect(await page.locator('.upload-row', { hasText: mismatched.name }).locator('a').count()).toBe(0);

    expect(await blobCount()).toBe(2);
    expect(await fs.readdir(mirror.runtime.store.layout.uploadsDir)).toEqual([]);
    const stored = await fs.readdir(mirror.runtime.store.layout.blobsDir, { recursive: true });
    expect(stored.some((f) => f.includes(mismatched.sha256))).toBe(false);
  });

  it('creates a golden image for both architectures; a name with markup renders as text', async () => {
    await page.goto(`${base}/admin/images/new`);
    await page.fill('#name', XSS_NAME);
    await page.fill('#description', 'Windows 11 for the design team');
    await page.check('#arm64-enabled');
    await page.selectOption('#arm64-sha256', arm.sha256);
    await page.check('#x86_64-enabled');
    await page.selectOption('#x86_64-sha256', intel.sha256);
    expect(await submit(page, button(page, 'Create golden image'))).toBe(303);

    expect(page.url()).toMatch(new RegExp(`^${base}/admin/images/\\d+\\?done=image-created$`));
    imageId = idFromUrl(page, 'images');
    expect(await statusText(page)).toBe('Golden image created.');
    const h1 = page.locator('h1');
    expect(await h1.innerText()).toBe(XSS_NAME);
    expect(await h1.isVisible()).toBe(true);
    expect(await page.title()).toBe(`${XSS_NAME} · goldmirror`);
    const html = await page.content();
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; Win 11');
    expect(await page.locator('#portal-name').innerText()).toBe(XSS_NAME);

    await page.goto(`${base}/admin/images`);
    expect(await page.getByRole('link', { name: XSS_NAME, exact: true }).isVisible()).toBe(true);
    expect(dialogs).toEqual([]);
  });

  it('shows an inline error next to an empty name and keeps the other values', async () => {
    await page.goto(`${base}/admin/images/new`);
    await page.fill('#description', 'kept description');
    await page.check('#arm64-enabled');
    await page.selectOption('#arm64-sha256', arm.sha256);
    expect(await submit(page, button(page, 'Create golden image'))).toBe(400);

    const name = page.locator('#name');
    expect(await name.getAttribute('aria-invalid')).toBe('true');
    expect(await name.getAttribute('aria-describedby')).toBe('name-error');
    const error = page.locator('#name-error');
    expect(await error.isVisible()).toBe(true);
    expect((await error.innerText()).trim()).not.toBe('');
    // The error sits right after its field.
    expect(await page.locator('#name + #name-error').count()).toBe(1);
    expect(await page.locator('[aria-invalid=true]').count()).toBe(1);
    expect(await page.inputValue('#description')).toBe('kept description');
    expect(await page.isChecked('#arm64-enabled')).toBe(true);
    expect(await page.inputValue('#arm64-sha256')).toBe(arm.sha256);
    expect(await page.isChecked('#x86_64-enabled')).toBe(false);
    expect(await mirror.runtime.db.selectFrom('images').select('id').execute()).toHaveLength(1);
  });

  it('assigns two groups to the image and enforces one image per group', async () => {
    await page.goto(`${base}/admin/groups`);
    for (const name of ['Design team', 'Engineering', 'Sales']) {
      await page.fill('#group-name', name);
      expect(await submit(page, button(page, 'Create group'))).toBe(303);
      expect(await statusText(page)).toBe('Group created.');
    }

    // One through the image page's "Assign to group" form ...
    await page.goto(`${base}/admin/images/${imageId}`);
    await page.selectOption('#assign-group', { label: 'Design team' });
    expect(await submit(page, button(page, 'Assign'))).toBe(303);
    expect(await statusText(page)).toBe('Group assigned.');
    // ... one through the group's own form.
    await page.goto(`${base}/admin/groups`);
    await page.getByRole('link', { name: 'Engineering', exact: true }).click();
    await page.waitForURL(/\/admin\/groups\/\d+$/);
    await page.selectOption('#group-image', { label: XSS_NAME });
    expect(await submit(page, button(page, 'Save changes'))).toBe(303);
    expect(await statusText(page)).toBe('Group saved.');
    for (const group of ['Design team', 'Engineering']) {
      const row = page.locator('tbody tr', { has: page.getByRole('link', { name: group, exact: true }) });
      expect(await row.locator('td').nth(1).innerText()).toBe(XSS_NAME);
    }
    await shot(page, 'groups');

    // A second image: its page only offers the group without an image.
    await page.goto(`${base}/admin/images/new`);
    await page.fill('#name', 'macOS build agents');
    await page.check('#arm64-enabled');
    await page.selectOption('#arm64-sha256', arm.sha256);
    expect(await submit(page, button(page, 'Create golden image'))).toBe(303);
    secondImageId = idFromUrl(page, 'images');
    expect(await page.locator('#assign-group option').allInnerTexts()).toEqual(['Sales']);

    // Giving an assigned group another image is refused with a clear message.
    await page.goto(`${base}/admin/groups`);
    await page.getByRole('link', { name: 'Design team', exact: true }).click();
    await page.waitForURL(/\/admin\/groups\/\d+$/);
    await page.selectOption('#group-image', { label: 'macOS build agents' });
    expect(await submit(page, button(page, 'Save changes'))).toBe(409);
    const refused = await alertText(page);
    expect(refused).toContain('group "Design team" already has the golden image');
    expect(refused).toContain(XSS_NAME);
    expect(refused).toContain('can have only one');

    // The same from a stale image page: Sales was free when it loaded, then got image 1 elsewhere.
    const stale = await context.newPage();
    await stale.goto(`${base}/admin/images/${secondImageId}`);
    await page.goto(`${base}/admin/images/${imageId}`);
    await page.selectOption('#assign-group', { label: 'Sales' });
    expect(await submit(page, button(page, 'Assign'))).toBe(303);
    expect(await page.locator('#assign-group').count()).toBe(0);
    expect(await page.locator('main').innerText()).toContain('Every group already has a golden image.');
    await stale.selectOption('#assign-group', { label: 'Sales' });
    expect(await submit(stale, button(stale, 'Assign'))).toBe(409);
    expect(await alertText(stale)).toContain('group "Sales" already has the golden image');
    expect(await stale.locator('main').innerText()).toContain('No group uses this image yet.');
    await stale.close();

    const groups = await mirror.runtime.db.selectFrom('groups').select(['name', 'image_id']).orderBy('name').execute();
    expect(groups).toEqual([
      { name: 'Design team', image_id: imageId },
      { name: 'Engineering', image_id: imageId },
      { name: 'Sales', image_id: imageId },
    ]);
    await page.goto(`${base}/admin/images`);
    await shot(page, 'images');
  });

  it('copies the download URL and SHA-256 to the clipboard', async () => {
    await page.goto(`${base}/admin/images/${imageId}`);
    for (const [arch, pkg] of [
      ['arm64', arm],
      ['x86_64', intel],
    ] as const) {
      const url = await page.locator(`#url-${arch}`).innerText();
      expect(url).toBe(`${base}/d/${pkg.sha256}/${pkg.name}`);
      expect(url.endsWith('.pvmp')).toBe(true);
      const sha = await page.locator(`#sha-${arch}`).innerText();
      expect(sha).toMatch(/^[0-9a-f]{64}$/);
      expect(sha).toBe(pkg.sha256);

      for (const [field, value] of [
        [`url-${arch}`, url],
        [`sha-${arch}`, sha],
      ] as const) {
        await page.evaluate(`navigator.clipboard.writeText('something else')`);
        const copy = page.locator(`button[data-copy="${field}"]`);
        await copy.click();
        await page.locator(`button[data-copy="${field}"]:text-is("Copied")`).waitFor();
        expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(value);
      }
    }
  });

  it('checks the links as a Mac would: all work, with steps per architecture', async () => {
    await page.goto(`${base}/admin/images/${imageId}`);
    // Post/redirect/get: the result is on the page the POST redirects to.
    expect(await submit(page, button(page, 'Check links as a Mac would'))).toBe(303);
    const result = page.locator('#check-result');
    // Every step passes from the server, but the (loopback) address is one Macs cannot reach.
    expect(await result.locator('strong').innerText()).toBe(
      'The links answer on this server, but Macs cannot reach them.',
    );
    expect(await result.locator('h3').allInnerTexts()).toEqual(['Apple silicon: ok', 'Intel: ok']);
    for (const list of await result.locator('ul.steps').all()) {
      expect(await list.locator('li').count()).toBeGreaterThanOrEqual(3);
      expect(await list.locator('li.bad').count()).toBe(0);
    }
    expect(await result.locator('li.ok', { hasText: 'reachable' }).count()).toBe(2);
    await shot(page, 'image-portal-checked');

    await page.goto(`${base}/admin`);
    await shot(page, 'dashboard');
  });

  it('has no sideways scrolling at phone width (390x844)', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      storageState: await context.storageState(),
    });
    watch(phone);
    const p = await phone.newPage();
    const small = await writePackage(tmp, 'phone-upload.pvmp', 256 * 1024, 'browser-phone');
    try {
      const pages = [
        '/admin/login',
        '/admin',
        '/admin/images',
        '/admin/images/new',
        `/admin/images/${imageId}`,
        `/admin/images/${secondImageId}/edit`,
        `/admin/images/${imageId}/delete`,
        '/admin/groups',
        '/admin/blobs',
        `/admin/blobs/${arm.sha256}`,
        '/admin/account',
        '/admin/no-such-page',
      ];
      for (const route of pages) {
        await p.goto(`${base}${route}`);
        expect(await p.evaluate<number>('window.innerWidth')).toBe(390);
        await expectNoHorizontalOverflow(p, route);
      }
      await p.goto(`${base}/admin/images/${imageId}`);
      await submit(p, button(p, 'Check links as a Mac would'));
      await expectNoHorizontalOverflow(p, 'image page with check results');
      await shot(p, 'phone-image-portal-checked');

      await p.goto(`${base}/admin/upload`);
      await p.setInputFiles('#checksum', small.checksumFile);
      await p.setInputFiles('#package', small.file);
      await button(p, 'Upload').click();
      await p.locator(`a[href="/admin/blobs/${small.sha256}"]`).waitFor({ timeout: 30_000 });
      await expectNoHorizontalOverflow(p, 'upload page with a finished upload');
      await shot(p, 'phone-upload-finished');
    } finally {
      await phone.close();
    }
  });

  it('deletes the image after a confirmation that names the affected groups', async () => {
    await page.goto(`${base}/admin/images/${imageId}`);
    await page.getByRole('link', { name: 'Delete…' }).click();
    await page.waitForURL(`${base}/admin/images/${imageId}/delete`);
    expect(await page.locator('h1').innerText()).toBe(`Delete ${XSS_NAME}?`);
    expect(await page.locator('main .card').innerText()).toContain(
      'These groups will be left without a golden image: Design team, Engineering, Sales.',
    );
    expect(await mirror.runtime.db.selectFrom('images').select('id').where('id', '=', imageId).execute()).toHaveLength(
      1,
    );

    expect(await submit(page, button(page, `Delete ${XSS_NAME}`))).toBe(303);
    expect(page.url()).toBe(`${base}/admin/images?done=image-deleted`);
    expect(await statusText(page)).toBe('Golden image deleted.');
    expect(await page.getByRole('link', { name: XSS_NAME }).count()).toBe(0);

    await page.goto(`${base}/admin/groups`);
    for (const group of ['Design team', 'Engineering', 'Sales']) {
      const row = page.locator('tbody tr', { has: page.getByRole('link', { name: group, exact: true }) });
      expect(await row.locator('td').nth(1).innerText()).toBe('none');
    }
    const response = await page.goto(`${base}/admin/images/${imageId}`);
    expect(response?.status()).toBe(404);
    // The freed groups can now be offered to the other image.
    await page.goto(`${base}/admin/images/${secondImageId}`);
    expect(await page.locator('#assign-group option').allInnerTexts()).toEqual(['Design team', 'Engineering', 'Sales']);
    expect(dialogs).toEqual([]);
  });

  it('works without JavaScript: sign in, create a group, upload through the plain form', async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false });
    watch(noJs);
    const p = await noJs.newPage();
    const plain = await writePackage(tmp, 'plain-form.pvmp', 1 * MiB, 'browser-nojs');
    try {
      await p.goto(`${base}/admin/login`);
      await p.fill('#password', PASSWORD);
      expect(await submit(p, button(p, 'Sign in'))).toBe(303);
      expect(p.url()).toBe(`${base}/admin`);

      await p.goto(`${base}/admin/groups`);
      await p.fill('#group-name', 'No-JS group');
      expect(await submit(p, button(p, 'Create group'))).toBe(303);
      expect(await statusText(p)).toBe('Group created.');
      expect(await p.getByRole('link', { name: 'No-JS group', exact: true }).count()).toBe(1);

      await p.goto(`${base}/admin/upload`);
      // The upload script did not run: its hint is the no-JS one.
      expect(await p.locator('#upload-hint').innerText()).toContain('Without JavaScript');
      await p.setInputFiles('#checksum', plain.checksumFile);
      await p.setInputFiles('#package', plain.file);
      expect(await submit(p, button(p, 'Upload'))).toBe(303);
      expect(p.url()).toBe(`${base}/admin/blobs/${plain.sha256}?done=blob-uploaded`);
      expect(await statusText(p)).toBe('Package stored and verified.');
      expect(await p.locator('#blob-sha').innerText()).toBe(plain.sha256);
      expect(await p.locator('h1').innerText()).toBe(plain.name);

      // A mismatching checksum file: an HTML page that says why, and nothing stored.
      const before = await blobCount();
      await p.goto(`${base}/admin/upload`);
      await p.setInputFiles('#checksum', mismatched.checksumFile);
      await p.setInputFiles('#package', mismatched.file);
      expect(await submit(p, button(p, 'Upload'))).toBe(422);
      expect(await p.locator('h1').innerText()).toBe('Upload packages');
      expect(await alertText(p)).toContain(arm.sha256);
      expect(await blobCount()).toBe(before);
    } finally {
      await noJs.close();
    }
  });

  it('creates a site on the Sites page (a bad network is named beside its field), lists it with a reporting replica, and fits a phone', async () => {
    await page.goto(`${base}/admin`);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sites', exact: true }).click();
    await page.waitForURL(`${base}/admin/sites`);
    expect(await page.locator('h1').innerText()).toBe('Sites and replicas');

    await page.fill('#site-name', 'branch-office');
    await page.fill('#site-networks', '10.2.0.0/16\n10.3.0.1/16');
    expect(await submit(page, button(page, 'Create site'))).toBe(400);
    expect(await page.locator('#site-networks-error').innerText()).toBe(
      '"10.3.0.1/16" has bits set past its /16 prefix; did you mean 10.3.0.0/16?',
    );
    expect(await page.locator('#site-networks').getAttribute('aria-invalid')).toBe('true');
    await page.fill('#site-networks', '10.2.0.0/16\n10.3.0.0/16');
    expect(await submit(page, button(page, 'Create site'))).toBe(303);
    expect(await statusText(page)).toBe('Site created.');
    const row = page.locator('#sites tbody tr');
    expect(await row.count()).toBe(1);
    expect((await row.innerText()).replace(/\s+/g, ' ')).toContain('branch-office 10.2.0.0/16, 10.3.0.0/16 on none');

    // A replica of that site reports itself (its heartbeat); it is listed, not yet checked.
    await acceptHeartbeat({ ...mirror.runtime, publicUrl: '' }, 'browser-sync', {
      publicUrl: 'http://branch-replica.example.lan:8080',
      site: 'branch-office',
      version: '1.0.0',
      mirrorId: 'browser-branch-replica',
      heartbeatMs: 60_000,
      verified: [arm.sha256],
    });
    await page.reload();
    const card = page.locator('section.replica');
    expect(await card.locator('h3').innerText()).toBe('http://branch-replica.example.lan:8080 pending');
    expect(await card.innerText()).toContain('not checked yet');
    await shot(page, 'sites');

    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      storageState: await context.storageState(),
    });
    watch(phone);
    try {
      const p = await phone.newPage();
      for (const route of [
        '/admin/sites',
        '/admin/sites/branch-office',
        `/admin/sites?ip=10.2.3.4&sha256=${arm.sha256}`,
      ]) {
        await p.goto(`${base}${route}`);
        await expectNoHorizontalOverflow(p, route);
      }
      expect(await p.locator('#route-answer').innerText()).toContain('is served by this mirror');
      await p.goto(`${base}/admin/sites`);
      await shot(p, 'phone-sites');
    } finally {
      await phone.close();
    }
  });

  it('follows the Parallels Desktop feed on the Updates page: Sync now, publish, roll back, add a .dmg, copy the feed URL', async () => {
    const OLD = '26.3.2-57480';
    const NEW = '26.3.3-57507';
    const ADDED = '26.2.0-57000';
    const fileOf = (version: string) => `/desktop/v26/${version}/ParallelsDesktop-${version}.dmg`;
    upstream.setFile(fileOf(OLD), fakeDmg(MiB + 11, 'browser-pd-old'));
    upstream.setFile(fileOf(NEW), fakeDmg(MiB + 22, 'browser-pd-new'));
    upstream.setFeed(
      26,
      feedXml([
        { version: NEW, codename: 'Sequoia', filePath: `${upstream.url}${fileOf(NEW)}`, fileSize: String(MiB + 22) },
        { version: OLD, codename: 'Sequoia', filePath: `${upstream.url}${fileOf(OLD)}`, fileSize: String(MiB + 11) },
      ]),
    );
    const row = (version: string) => page.locator(`tr[id="v-${version}"]`);
    const stateIn = async (version: string) => (await row(version).locator('.badge').innerText()).trim();

    await page.goto(`${base}/admin`);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Updates', exact: true }).click();
    await page.waitForURL(`${base}/admin/updates`);
    expect(await page.locator('h1').innerText()).toBe('Parallels Desktop updates');
    expect(await page.locator('#versions').count()).toBe(0);

    expect(await submit(page, button(page, 'Sync now'))).toBe(303);
    expect(await statusText(page)).toBe('Upstream read: each feed’s status and the versions below show what changed.');
    expect(await stateIn(NEW)).toBe('available');
    expect(await stateIn(OLD)).toBe('available');
    expect(await page.locator('#upstream-feeds .badge.ok').innerText()).toBe('ok');

    for (const version of [NEW, OLD]) {
      expect(await submit(page, row(version).getByRole('button', { name: `Publish ${version}`, exact: true }))).toBe(
        303,
      );
      expect(await statusText(page)).toBe('Version published: it is in the feed Macs read.');
    }
    expect(await stateIn(NEW)).toBe('published');
    const rollBack = row(OLD).getByRole('button', { name: `Roll back to ${OLD}`, exact: false });
    expect(await submit(page, rollBack)).toBe(303);
    expect(await stateIn(NEW)).toBe('available');
    expect(await stateIn(OLD)).toBe('published');
    const feed = await (await page.request.get(`${base}/updates/parallels_updates.xml`)).text();
    expect(feed).toContain(`ParallelsDesktop-${OLD}.dmg`);
    expect(feed).not.toContain(`ParallelsDesktop-${NEW}.dmg`);

    // The feed URL for the Macs, copied with its button.
    const feedUrl = `${base}/updates/parallels_updates.xml`;
    expect(await page.locator('#feed-url').innerText()).toBe(feedUrl);
    await page.evaluate(`navigator.clipboard.writeText('something else')`);
    await page.locator('button[data-copy="feed-url"]').click();
    await page.locator('button[data-copy="feed-url"]:text-is("Copied")').waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(feedUrl);

    // A file that is not a disk image: refused with the reason, the typed values kept, nothing stored.
    const junk = path.join(tmp, 'installer.dmg');
    await fs.writeFile(junk, testBytes(200_000, 'browser-pd-junk'));
    const before = await blobCount();
    await page.fill('#update-version', ADDED);
    await page.fill('#update-codename', 'Offline build');
    await page.setInputFiles('#update-file', junk);
    expect(await submit(page, button(page, 'Add the .dmg'))).toBe(400);
    expect(await alertText(page)).toBe(
      'installer.dmg is not a disk image (.dmg): it does not end in a UDIF trailer ("koly"); nothing was stored',
    );
    expect(await page.inputValue('#update-version')).toBe(ADDED);
    expect(await page.inputValue('#update-codename')).toBe('Offline build');
    expect(await blobCount()).toBe(before);

    const dmg = fakeDmg(MiB + 33, 'browser-pd-added');
    const dmgFile = path.join(tmp, `ParallelsDesktop-${ADDED}.dmg`);
    await fs.writeFile(dmgFile, dmg);
    await page.fill('#update-ancestors', 'desktop.26.1.0.56000.en_US.parallels.mac');
    await page.setInputFiles('#update-file', dmgFile);
    expect(await submit(page, button(page, 'Add the .dmg'))).toBe(303);
    expect(await statusText(page)).toBe('The .dmg is stored. Publish it to put it in the feed.');
    expect(await stateIn(ADDED)).toBe('available');
    expect(await row(ADDED).innerText()).toContain('added here');
    expect(await row(ADDED).locator('code[title]').getAttribute('title')).toBe(sha256Of(dmg));
    expect(await blobCount()).toBe(before + 1);
    await shot(page, 'updates');

    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      storageState: await context.storageState(),
    });
    watch(phone);
    try {
      const p = await phone.newPage();
      await p.goto(`${base}/admin/updates`);
      await expectNoHorizontalOverflow(p, '/admin/updates');
      await shot(p, 'phone-updates');
    } finally {
      await phone.close();
    }
  });

  it('shows changed bytes behind a known upstream URL on the Updates page and, with a link there, on the dashboard', async () => {
    const NEW = '26.3.3-57507';
    upstream.setFile(`/desktop/v26/${NEW}/ParallelsDesktop-${NEW}.dmg`, fakeDmg(MiB + 22, 'browser-pd-rebuilt'), {
      etag: '"rebuilt"',
    });
    await page.goto(`${base}/admin/updates`);
    expect(await submit(page, button(page, 'Sync now'))).toBe(303);
    expect(await page.locator('#updates-alert-page h2').innerText()).toBe(
      `The file behind a known upstream URL changed for ${NEW}`,
    );
    expect(await page.locator(`[id="alert-${NEW}"]`).innerText()).toContain('changed after this mirror stored them');

    await page.goto(`${base}/admin`);
    const box = page.locator('#updates-alert-section');
    expect(await box.getAttribute('role')).toBe('alert');
    expect(await box.innerText()).toContain(`${NEW}: the bytes behind`);
    await box.getByRole('link', { name: 'Parallels Desktop updates →' }).click();
    await page.waitForURL(`${base}/admin/updates`);
  });

  it('saved readable screenshots of the main pages, and no page raised a dialog or a script error', async () => {
    const names = screenshots.map((s) => path.basename(s.file, '.png')).sort();
    expect(names).toEqual([...SCREENSHOTS].sort());
    for (const { file, width } of screenshots) {
      const png = await fs.readFile(file);
      expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), file).toBe(true);
      expect(png.readUInt32BE(16), `${file} width`).toBe(width);
      expect(png.length, file).toBeGreaterThan(5000);
    }
    expect(dialogs).toEqual([]);
    expect(scriptErrors).toEqual([]);
  });
});
