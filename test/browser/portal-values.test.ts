/**
 * Issue 17, items 1 and 2, walked in a real headless Chromium against a
 * real mirror, as a new admin would: no public address yet (banner, "not
 * ready" instead of a URL), setting it (a bad one refused, a loopback one
 * warned about in red), the portal view (headings, whole URLs, help, copy),
 * the link check shown on a GET page, then a package switch: the pending
 * "update the portal" box on the image page and the dashboard, the retired
 * package on the packages page, and marking the portal updated.
 *
 * Screenshots go to test/artifacts/screenshots/portal-*.png; with
 * GOLDMIRROR_DOCS_SCREENSHOTS=1 a few small ones are also written to
 * docs/screenshots/ for the README.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapAdmin } from '../../server/services/auth.js';
import { cliActor } from '../../server/services/audit.js';
import { collectGarbage } from '../../server/services/gc.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { expectNoHorizontalOverflow, launchChromium, screenshot, signIn } from './helpers.js';

const PASSWORD = 'portal-values-password-1';
const IMAGE = 'Windows 11 Corporate';
const LAN = 'http://mirror.example.lan:8080';
const DOCS_DIR = path.resolve(import.meta.dirname, '../../docs/screenshots');
const writeDocs = process.env.GOLDMIRROR_DOCS_SCREENSHOTS === '1';

let browser: Browser;
let mirror: TestMirror;
let context: BrowserContext;
let page: Page;
let base: string;
let v1: string;
let v2: string;
let intel: string;
let imageId: number;
const scriptErrors: string[] = [];
const dialogs: string[] = [];
const shots: string[] = [];

const button = (p: Page, name: string) => p.getByRole('button', { name, exact: true });
const flash = async (p: Page) => (await p.locator('p.flash.ok[role=status]').innerText()).trim();
/** Text as a person reads it (long values are split into segments for wrapping; innerText joins them). */
const text = async (l: Locator) => (await l.innerText()).trim();
const url = (address: string, sha: string, name: string) => `${address}/d/${sha}/${name}`;

/** Clicks a submit button; returns the status of the POST itself (303 when it redirects). */
async function submit(p: Page, target: Locator): Promise<number> {
  const [response] = await Promise.all([
    p.waitForResponse((r) => r.request().isNavigationRequest() && r.request().method() === 'POST'),
    p.waitForEvent('load'),
    target.click(),
  ]);
  return response.status();
}

async function shot(p: Page, name: string): Promise<void> {
  const file = await screenshot(p, `portal-${name}`);
  const png = await fs.readFile(file);
  expect(png.subarray(1, 4).toString('latin1'), file).toBe('PNG');
  shots.push(name);
}

/** A small PNG of one part of the page for the README (only with GOLDMIRROR_DOCS_SCREENSHOTS=1). */
async function docsShot(target: Locator, name: string): Promise<void> {
  if (!writeDocs) return;
  await fs.mkdir(DOCS_DIR, { recursive: true });
  await target.screenshot({ path: path.join(DOCS_DIR, `${name}.png`) });
}

/**
 * Runs `body` (an expression over `els`, the elements matching `selector`)
 * in the page; a string, since this project's TypeScript has no DOM types.
 */
function inPage<T>(p: Page, selector: string, body: string): Promise<T> {
  return p.evaluate<T>(
    `(() => { const els = [...document.querySelectorAll(${JSON.stringify(selector)})]; return ${body}; })()`,
  );
}

/** The element shows its whole text: nothing cut off to the side or hidden in a scroll area. */
async function expectWhollyVisible(p: Page, selector: string, label: string): Promise<void> {
  const box = await inPage<{ scrollWidth: number; clientWidth: number; right: number; viewport: number }>(
    p,
    selector,
    '({ scrollWidth: els[0].scrollWidth, clientWidth: els[0].clientWidth, right: els[0].getBoundingClientRect().right, viewport: window.innerWidth })',
  );
  expect(box.scrollWidth, `${label} is cut off`).toBeLessThanOrEqual(box.clientWidth + 1);
  expect(box.right, `${label} sticks out`).toBeLessThanOrEqual(box.viewport + 1);
}

beforeAll(async () => {
  browser = await launchChromium();
  mirror = await startMirror();
  base = mirror.url;
  await bootstrapAdmin(mirror.runtime, mirror.runtime.store.layout.root, PASSWORD);
  // Packages arrive by the ordinary ingest path (the upload page has its own browser test).
  v1 = await putBlob(mirror, testBytes(512 * 1024 + 3, 'pv-arm-v1'), 'Win11-arm-2025-10.pvmp');
  v2 = await putBlob(mirror, testBytes(512 * 1024 + 5, 'pv-arm-v2'), 'Win11-arm-2025-11.pvmp');
  intel = await putBlob(mirror, testBytes(512 * 1024 + 7, 'pv-intel'), 'Win11-x86_64-2025-10.pvmp');
  context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  context.on('weberror', (err) => scriptErrors.push(String(err.error())));
  context.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page = await context.newPage();
  await signIn(page, base, PASSWORD);
});

afterAll(async () => {
  await browser?.close();
  await mirror?.close();
});

// Sequential: the tests share one page and one mirror, and each starts where the one before left off.
describe.sequential('the link an admin pastes (Chromium)', () => {
  it('asks for the public address on every page, and offers no URL until it is set', async () => {
    for (const route of ['/admin', '/admin/images', '/admin/groups', '/admin/blobs', '/admin/upload']) {
      await page.goto(`${base}${route}`);
      expect(await text(page.locator('#address-banner strong')), route).toBe('Set the public address first.');
    }
    await page.goto(`${base}/admin`);
    await shot(page, 'address-missing');

    await page.goto(`${base}/admin/images/new`);
    await page.fill('#name', IMAGE);
    await page.check('#arm64-enabled');
    await page.selectOption('#arm64-sha256', v1);
    await page.check('#x86_64-enabled');
    await page.selectOption('#x86_64-sha256', intel);
    expect(await submit(page, button(page, 'Create golden image'))).toBe(303);
    imageId = Number(/\/admin\/images\/(\d+)/.exec(page.url())?.[1]);

    expect(await text(page.locator('#h-arm64'))).toBe('Apple silicon — enabled');
    expect(await text(page.locator('#h-x86_64'))).toBe('Intel — enabled');
    expect(await text(page.locator('#not-ready'))).toContain(
      'the public address Macs use to reach this mirror is not set',
    );
    for (const arch of ['arm64', 'x86_64']) {
      const field = page.locator(`#url-${arch}`);
      expect(await field.getAttribute('class')).toBe('not-ready');
      expect(await text(field)).toMatch(/^not ready no public address is set/);
      // No copyable guess: no Copy button, no /d/ link anywhere on the page.
      expect(await page.locator(`button[data-copy="url-${arch}"]`).count()).toBe(0);
    }
    expect(await page.content()).not.toContain('/d/');
    // The SHA-256 does not depend on the address: it is offered.
    expect(await text(page.locator('#sha-arm64'))).toBe(v1);
    await shot(page, 'not-ready');
    await docsShot(page.locator('section[aria-labelledby="h-arm64"]'), 'portal-not-ready');
  });

  it('sets the address on the settings page: a wrong one is refused inline, a loopback one is warned about in red everywhere', async () => {
    await page.goto(`${base}/admin/images/${imageId}`);
    await Promise.all([
      page.waitForURL(`${base}/admin/settings`),
      page.locator('#address-banner').getByRole('link', { name: 'Set the public address' }).click(),
    ]);
    expect(await text(page.locator('#address-current'))).toBe('Not set: no Download URL is offered until it is.');
    expect(await text(page.locator('#publicUrl-hint'))).toContain(`This browser reached goldmirror at ${base}.`);
    await docsShot(page.locator('main'), 'settings-public-address');

    await page.fill('#publicUrl', 'mirror.lan:8080');
    expect(await submit(page, button(page, 'Save'))).toBe(400);
    expect(await page.locator('#publicUrl').getAttribute('aria-invalid')).toBe('true');
    expect(await text(page.locator('#publicUrl-error'))).toMatch(/http:\/\/ or https:\/\//);
    expect(await page.inputValue('#publicUrl')).toBe('mirror.lan:8080');

    // A demo on one machine: the browser's own loopback address. Allowed, never without a red warning.
    await page.fill('#publicUrl', `${base}/`);
    expect(await submit(page, button(page, 'Save'))).toBe(303);
    expect(await flash(page)).toBe('Public address saved.');
    expect(await text(page.locator('#address-current'))).toContain(`In use: ${base}`);
    const warning = `Macs cannot reach this mirror at ${base}: 127.0.0.1 is a loopback address`;
    expect(await text(page.locator('#address-banner'))).toContain(warning);
    const red = await inPage<string>(page, 'main .warn-text', 'getComputedStyle(els[0]).color');
    expect(red).toBe('rgb(179, 38, 30)');
    await shot(page, 'settings-loopback');
    for (const route of ['/admin', '/admin/groups', '/admin/blobs']) {
      await page.goto(`${base}${route}`);
      expect(await text(page.locator('#address-banner')), route).toContain(warning);
    }
  });

  it('shows the portal view: headings, whole URLs, a help box, and Copy copies exactly the value', async () => {
    await page.goto(`${base}/admin/images/${imageId}`);
    expect(await page.locator('#not-ready').count()).toBe(0);
    expect(await page.locator('[data-pending-image]').count()).toBe(0); // the first address is not a change
    const expected = {
      arm64: url(base, v1, 'Win11-arm-2025-10.pvmp'),
      x86_64: url(base, intel, 'Win11-x86_64-2025-10.pvmp'),
    };
    for (const arch of ['arm64', 'x86_64'] as const) {
      const field = page.locator(`#url-${arch}`);
      expect(await text(field)).toBe(expected[arch]);
      await expectWhollyVisible(page, `#url-${arch}`, `Download URL ${arch}`);
      expect(await text(page.locator(`section[aria-labelledby="h-${arch}"] .warn-text`))).toContain(
        '127.0.0.1 is a loopback address',
      );
      for (const [id, value] of [
        [`url-${arch}`, expected[arch]],
        [`sha-${arch}`, arch === 'arm64' ? v1 : intel],
      ] as const) {
        await page.evaluate(`navigator.clipboard.writeText('something else')`);
        await page.locator(`button[data-copy="${id}"]`).click();
        await page.locator(`button[data-copy="${id}"]:text-is("Copied")`).waitFor();
        expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(value);
      }
    }
    const help = page.locator('aside.help');
    expect(await text(help.locator('h3'))).toBe('What goes where in the portal');
    expect(await help.locator('dt').allInnerTexts()).toEqual([
      'Name, Description',
      'Enable for Apple silicon / Intel',
      'Download URL',
      'SHA-256',
    ]);
    expect(await text(help)).toContain('How a Mac fetches it');
  });

  it('checks the links from the server and shows the result on a GET page (a reload does not check again)', async () => {
    expect(await text(page.locator('#check + p'))).toContain('The check runs on the goldmirror server, not on a Mac');
    expect(await submit(page, button(page, 'Check links as a Mac would'))).toBe(303);
    expect(page.url()).toBe(`${base}/admin/images/${imageId}?done=links-checked#check`);
    const result = page.locator('#check-result');
    expect(await text(result.locator('strong'))).toBe('The links answer on this server, but Macs cannot reach them.');
    expect(await text(result)).toContain('These requests were made by the goldmirror server itself, not by a Mac');
    expect(await text(result.locator('p.warn-text'))).toContain('127.0.0.1 is a loopback address');
    expect(await result.locator('h3').allInnerTexts()).toEqual(['Apple silicon: ok', 'Intel: ok']);
    expect(await result.locator('li.bad').count()).toBe(0);
    expect(await text(page.locator('#curl-arm64'))).toBe(`curl -I ${url(base, v1, 'Win11-arm-2025-10.pvmp')}`);
    await shot(page, 'link-check');

    const checkedAt = await text(result.locator('p').first());
    const requests: string[] = [];
    page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await page.reload();
    expect(requests.filter((r) => r.startsWith('POST'))).toEqual([]);
    expect(dialogs).toEqual([]); // no "resubmit the form?" prompt
    expect(await text(page.locator('#check-result p').first())).toBe(checkedAt);
  });

  it('after switching the Apple silicon package, shows old and new values on the image page and the dashboard', async () => {
    await page.goto(`${base}/admin/images/${imageId}/edit`);
    await page.selectOption('#arm64-sha256', v2);
    expect(await submit(page, button(page, 'Save changes'))).toBe(303);
    expect(await flash(page)).toBe('Golden image saved.');
    const box = page.locator(`[data-pending-image="${imageId}"]`);
    expect(await text(box.locator('h2'))).toBe('Portal values changed — update the portal');
    const rows = await inPage<string[][]>(
      page,
      `[data-pending-image="${imageId}"] tbody tr`,
      'els.map((r) => [...r.children].map((c) => c.innerText.trim()))',
    );
    expect(rows).toEqual([
      ['Apple silicon: Download URL', url(base, v1, 'Win11-arm-2025-10.pvmp'), url(base, v2, 'Win11-arm-2025-11.pvmp')],
      ['Apple silicon: SHA-256', v1, v2],
    ]);
    // The values to paste are the new ones.
    expect(await text(page.locator('#url-arm64'))).toBe(url(base, v2, 'Win11-arm-2025-11.pvmp'));
    // The last check was of the old links: the page says so.
    expect(await text(page.locator('#check-result'))).toMatch(
      /^The last check \(.*\) was of links that have changed since; check again\.$/,
    );
    await shot(page, 'values-changed');
    await docsShot(box, 'portal-values-changed');

    await page.goto(`${base}/admin`);
    const dash = page.locator(`[data-pending-image="${imageId}"]`);
    expect(await text(dash.locator('h3'))).toBe(`Portal values changed — update the portal: ${IMAGE}`);
    expect(await dash.locator('td.old').allInnerTexts()).toEqual([url(base, v1, 'Win11-arm-2025-10.pvmp'), v1]);
    expect(await dash.locator('td.new').allInnerTexts()).toEqual([url(base, v2, 'Win11-arm-2025-11.pvmp'), v2]);
    await shot(page, 'dashboard-changed');
  });

  it('keeps the old package as "retired" while the portal may still send Macs to it', async () => {
    await page.goto(`${base}/admin/blobs`);
    const row = page.locator('tbody tr', { has: page.getByRole('link', { name: 'Win11-arm-2025-10.pvmp' }) });
    const headers = (await page.locator('thead th').allInnerTexts()).map((h) => h.trim());
    const usage = row.locator('td').nth(headers.indexOf('Used by'));
    expect(await text(usage.locator('.badge'))).toBe('retired');
    expect(await text(usage)).toContain(
      `the portal still sends Macs here until you update it for ${IMAGE}; kept until then`,
    );
    await shot(page, 'packages-retired');
    await docsShot(page.locator('.table-wrap'), 'packages-retired');
    // Even with no grace period at all, GC keeps it.
    const gc = await collectGarbage(mirror.runtime, cliActor, { dryRun: true, graceMs: 0 });
    expect(gc.kept).toEqual([{ sha256: v1, reason: 'portal' }]);
    expect(gc.removed).toEqual([]);
  });

  it('marks the portal updated from the dashboard (audited); the package then has a grace period', async () => {
    await page.goto(`${base}/admin`);
    const box = page.locator(`[data-pending-image="${imageId}"]`);
    expect(await submit(page, box.getByRole('button', { name: 'I updated the portal' }))).toBe(303);
    expect(page.url()).toBe(`${base}/admin?done=portal-confirmed`);
    expect(await flash(page)).toBe('Marked as entered in the portal.');
    expect(await page.locator('[data-pending-image]').count()).toBe(0);
    await page.goto(`${base}/admin/images/${imageId}`);
    expect(await page.locator('[data-pending-image]').count()).toBe(0);
    const audit = await mirror.runtime.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'image.portal-updated')
      .execute();
    expect(audit.map((a) => [a.actor, a.target])).toEqual([['user:admin', `image:${imageId}`]]);

    await page.goto(`${base}/admin/blobs/${v1}`);
    expect(await text(page.locator('.retired'))).toMatch(
      /kept until at least \d{4}-\d\d-\d\d \d\d:\d\d UTC \(24 h after the portal update and after the last download\)/,
    );
  });

  it('moving to the real LAN address marks the URLs changed again; confirmed on the image page, the view is clean', async () => {
    await page.goto(`${base}/admin/settings`);
    await page.fill('#publicUrl', LAN);
    expect(await submit(page, button(page, 'Save'))).toBe(303);
    expect(await page.locator('#address-banner').count()).toBe(0);
    await page.goto(`${base}/admin/images/${imageId}`);
    const box = page.locator(`[data-pending-image="${imageId}"]`);
    expect(await box.locator('th[scope=row]').allInnerTexts()).toEqual([
      'Apple silicon: Download URL',
      'Intel: Download URL',
    ]);
    expect(await box.locator('td.new').allInnerTexts()).toEqual([
      url(LAN, v2, 'Win11-arm-2025-11.pvmp'),
      url(LAN, intel, 'Win11-x86_64-2025-10.pvmp'),
    ]);

    // At phone width the pending box and the whole URLs still fit.
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      storageState: await context.storageState(),
    });
    phone.on('weberror', (err) => scriptErrors.push(String(err.error())));
    try {
      const p = await phone.newPage();
      for (const route of [
        `/admin/images/${imageId}`,
        '/admin',
        '/admin/settings',
        '/admin/blobs',
        `/admin/blobs/${v1}`,
      ]) {
        await p.goto(`${base}${route}`);
        await expectNoHorizontalOverflow(p, route);
      }
      await p.goto(`${base}/admin/images/${imageId}`);
      for (const id of ['url-arm64', 'url-x86_64', 'sha-arm64'])
        await expectWhollyVisible(p, `#${id}`, `${id} at phone width`);
      await shot(p, 'phone-values-changed');
    } finally {
      await phone.close();
    }

    expect(await submit(page, box.getByRole('button', { name: 'I updated the portal' }))).toBe(303);
    expect(page.url()).toBe(`${base}/admin/images/${imageId}?done=portal-confirmed`);
    expect(await page.locator('[data-pending-image]').count()).toBe(0);
    expect(await page.locator('.warn-text').count()).toBe(0);
    expect(await text(page.locator('#url-arm64'))).toBe(url(LAN, v2, 'Win11-arm-2025-11.pvmp'));
    await shot(page, 'view');
    await docsShot(page.locator('section[aria-labelledby="h-arm64"]'), 'portal-view');
  });

  it('saved its screenshots, and no page raised a script error', () => {
    expect(shots).toEqual([
      'address-missing',
      'not-ready',
      'settings-loopback',
      'link-check',
      'values-changed',
      'dashboard-changed',
      'packages-retired',
      'phone-values-changed',
      'view',
    ]);
    expect(scriptErrors).toEqual([]);
    expect(dialogs).toEqual([]);
  });
});
