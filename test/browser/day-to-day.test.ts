/**
 * Day-to-day admin work in a real headless Chromium against a real mirror:
 * groups (case-insensitive names, confirmations, CSV import/export, empty
 * states), the live Downloads page, the dashboard's SVG charts, the readable
 * history, trailing-slash redirects and dark mode. Screenshots go to
 * test/artifacts/screenshots/day-*.png.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapAdmin } from '../../server/services/auth.js';
import { createImage } from '../../server/services/images.js';
import { makeTempDir, putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { expectNoHorizontalOverflow, launchChromium, screenshot, signIn } from './helpers.js';

const PASSWORD = 'day-to-day-password-1';
const MiB = 1024 * 1024;
const UA = 'Parallels Desktop/26.1.0 (Macintosh; browser test)';

let browser: Browser;
let mirror: TestMirror;
let context: BrowserContext;
let page: Page;
let base: string;
let tmp: string;
let imageId: number;
let bigSha: string;
const scriptErrors: string[] = [];
const shots: string[] = [];

const button = (p: Page, name: string) => p.getByRole('button', { name, exact: true });
const statusText = async (p: Page) => (await p.locator('p.flash.ok[role=status]').innerText()).trim();

/** Clicks and waits for the page the click leads to; returns the status of the navigation's first response. */
async function navigate(p: Page, target: Locator): Promise<number> {
  const [response] = await Promise.all([
    p.waitForResponse((r) => r.request().isNavigationRequest()),
    p.waitForEvent('load'),
    target.click(),
  ]);
  return response.status();
}

async function shot(p: Page, name: string): Promise<void> {
  shots.push(await screenshot(p, `day-${name}`));
}

/** A download from this process (a "Mac"): returns a function that cuts it. */
function startDownload(urlPath: string): { cut: () => void; done: Promise<void> } {
  const { hostname, port } = new URL(base);
  let request: http.ClientRequest | null = null;
  const done = new Promise<void>((resolve) => {
    request = http.get({ host: hostname, port, path: urlPath, agent: false, headers: { 'user-agent': UA } }, (res) => {
      res.on('data', () => undefined);
      res.on('end', resolve);
      res.on('error', () => resolve());
      res.on('close', resolve);
    });
    request.on('error', () => resolve());
  });
  return { cut: () => request?.destroy(), done };
}

/** WCAG contrast of an element's text against the first opaque background behind it. */
async function contrastOf(p: Page, selector: string): Promise<number> {
  return p.evaluate<number>(`(() => {
    const el = document.querySelector(${JSON.stringify(selector)});
    if (!el) return -1;
    const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    let bg = null;
    for (let node = el; node; node = node.parentElement) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) { bg = c; break; }
    }
    bg = bg || [255, 255, 255];
    const fg = parse(getComputedStyle(el).color);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
  })()`);
}

async function backgroundLuminance(p: Page): Promise<number> {
  return p.evaluate<number>(`(() => {
    const [r, g, b] = (getComputedStyle(document.body).backgroundColor.match(/[\\d.]+/g) || []).map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  })()`);
}

beforeAll(async () => {
  browser = await launchChromium();
  // A download cap keeps one download running long enough to be seen live.
  mirror = await startMirror({ maxBytesPerSec: 2 * MiB });
  base = mirror.url;
  await bootstrapAdmin(mirror.runtime, mirror.runtime.store.layout.root, PASSWORD);
  tmp = await makeTempDir('goldmirror-day-');
  const arm = await putBlob(mirror, testBytes(1 * MiB, 'day-arm'), 'Win11-arm.pvmp');
  bigSha = await putBlob(mirror, testBytes(40 * MiB, 'day-big'), 'Win11-big.pvmp');
  imageId = (
    await createImage(
      mirror.runtime,
      { kind: 'user', name: 'admin' },
      {
        name: 'Windows 11 Corporate',
        arm64: { enabled: true, sha256: arm },
        x86_64: { enabled: true, sha256: bigSha },
      },
      base,
    )
  ).id;
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  context.on('weberror', (err) => scriptErrors.push(String(err.error())));
  page = await context.newPage();
  await signIn(page, base, PASSWORD);
});

afterAll(async () => {
  await browser?.close();
  await mirror?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

// Sequential: the tests share one page and one mirror, and each starts where the one before left off.
describe.sequential('day-to-day admin work in Chromium', () => {
  it('redirects /admin/ and other trailing slashes to the page instead of a JSON 404', async () => {
    for (const [from, to, title] of [
      ['/admin/', '/admin', 'Dashboard'],
      ['/admin/groups/', '/admin/groups', 'Groups'],
      ['/admin/images/?x=1', '/admin/images?x=1', 'Golden images'],
    ] as const) {
      await page.goto(`${base}${from}`);
      expect(page.url()).toBe(`${base}${to}`);
      expect(await page.locator('h1').innerText()).toBe(title);
    }
  });

  it('says "No groups yet" where there are none, and refuses a name that differs only in case', async () => {
    await page.goto(`${base}/admin/groups`);
    expect(await page.locator('p.empty').innerText()).toBe(
      'No groups yet. Create the first one below, or import them from a CSV file.',
    );
    await page.goto(`${base}/admin/images/${imageId}`);
    expect(await page.locator('main').innerText()).toContain(
      'No groups yet. Create a group to assign this image to it.',
    );
    expect(await page.locator('main').innerText()).not.toContain('Every group already has a golden image');
    await shot(page, 'image-no-groups');

    await page.goto(`${base}/admin/groups`);
    await page.fill('#group-name', 'Sales');
    await page.selectOption('#group-image', { label: 'Windows 11 Corporate' });
    expect(await navigate(page, button(page, 'Create group'))).toBe(303);
    expect(await statusText(page)).toBe('Group created.');
    await page.fill('#group-name', 'SALES');
    expect(await navigate(page, button(page, 'Create group'))).toBe(409);
    expect(await page.getByRole('alert').innerText()).toBe(
      'a group named "Sales" already exists (group names are compared regardless of case)',
    );
  });

  it('imports groups from a CSV file, reports bad lines by number, and exports them again', async () => {
    const good = path.join(tmp, 'groups.csv');
    await fs.writeFile(
      good,
      'name,license_key,primary,image\r\nDesign,KEY-D,no,\r\nSupport,,yes,"Windows 11 Corporate"\r\n',
    );
    await page.goto(`${base}/admin/groups`);
    await page.check('#csv-dry-run');
    await page.setInputFiles('#csv-file', good);
    expect(await navigate(page, button(page, 'Import groups'))).toBe(303);
    expect(await statusText(page)).toBe(
      'The file is fine: importing it would create 2, update 0 and leave 0 group(s) unchanged. Nothing was changed.',
    );
    expect(await page.locator('tbody tr').count()).toBe(1);
    await page.setInputFiles('#csv-file', good);
    expect(await navigate(page, button(page, 'Import groups'))).toBe(303);
    expect(await statusText(page)).toBe('Groups imported: 2 created, 0 updated, 0 unchanged.');
    expect(await page.locator('tbody tr td:first-child').allInnerTexts()).toEqual(['Design', 'Sales', 'Support']);
    await shot(page, 'groups-imported');

    const bad = path.join(tmp, 'bad.csv');
    await fs.writeFile(bad, 'name,primary,image\r\nOK,no,\r\nsales,perhaps,\r\nNew,no,Windows 12\r\n');
    await page.setInputFiles('#csv-file', bad);
    expect(await navigate(page, button(page, 'Import groups'))).toBe(400);
    expect(await page.getByRole('alert').first().innerText()).toBe(
      'Nothing was imported: the file has 2 problems (listed below).',
    );
    expect(await page.locator('#csv-problems li').allInnerTexts()).toEqual([
      'Line 3 (primary): "perhaps" is neither yes nor no',
      'Line 4 (image): no golden image named "Windows 12"',
    ]);
    await page.locator('#csv-problems').scrollIntoViewIfNeeded();
    await shot(page, 'groups-import-problems');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Export groups as CSV' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^goldmirror-groups-\d{4}-\d\d-\d\d\.csv$/);
    const csv = await fs.readFile(await download.path(), 'utf8');
    expect(csv).toBe(
      '\uFEFFname,license_key,primary,image\r\nDesign,KEY-D,no,\r\nSales,,no,Windows 11 Corporate\r\nSupport,,yes,Windows 11 Corporate\r\n',
    );
  });

  it('asks before deleting a group and before removing an image from a group', async () => {
    await page.goto(`${base}/admin/groups`);
    await navigate(page, page.getByRole('link', { name: 'Design', exact: true }));
    await navigate(page, page.getByRole('link', { name: 'Delete group…' }));
    expect(await page.locator('h1').innerText()).toBe('Delete group Design?');
    await shot(page, 'group-delete-confirm');
    await navigate(page, page.getByRole('link', { name: 'Cancel' }));
    expect(await page.locator('h1').innerText()).toBe('Group Design');
    await navigate(page, page.getByRole('link', { name: 'Delete group…' }));
    expect(await navigate(page, button(page, 'Delete group Design'))).toBe(303);
    expect(await statusText(page)).toBe('Group deleted.');

    // The image page's Remove button leads to the question first.
    await page.goto(`${base}/admin/images/${imageId}`);
    const sales = page.locator('main li', { hasText: 'Sales' });
    await navigate(page, sales.getByRole('button', { name: 'Remove' }));
    expect(await page.locator('h1').innerText()).toBe('Remove Windows 11 Corporate from Sales?');
    await shot(page, 'unassign-confirm');
    expect(await navigate(page, button(page, 'Remove Windows 11 Corporate from Sales'))).toBe(303);
    expect(page.url()).toBe(`${base}/admin/images/${imageId}?done=group-unassigned`);
    expect(await statusText(page)).toBe('Group no longer has a golden image.');
  });

  it('shows a download live while it runs and when it ends, with filters', async () => {
    await page.goto(`${base}/admin/downloads`);
    expect(await page.locator('#in-progress').innerText()).toContain('No download is running right now.');
    const running = startDownload(`/d/${bigSha}/Win11-big.pvmp`);
    try {
      // No reload: live.js brings the row in.
      const row = page.locator('#in-progress tbody tr', { hasText: '127.0.0.1' });
      await row.waitFor({ timeout: 20_000 });
      expect(await row.innerText()).toContain('Windows 11 Corporate');
      expect(await row.innerText()).toContain('Intel');
      expect(await row.innerText()).toContain(UA);
      await shot(page, 'downloads-live');
    } finally {
      running.cut();
    }
    await running.done;
    const finished = page.locator('#finished tbody tr', { hasText: 'aborted' });
    await finished.waitFor({ timeout: 20_000 });
    expect(await page.locator('#in-progress').innerText()).toContain('No download is running right now.');
    expect(page.url()).toBe(`${base}/admin/downloads`);

    await page.selectOption('#f-result', 'aborted');
    await page.selectOption('#f-arch', 'x86_64');
    await navigate(page, button(page, 'Filter'));
    expect(page.url()).toBe(`${base}/admin/downloads?image=&arch=x86_64&client=&result=aborted`);
    expect(await page.locator('#finished tbody tr').count()).toBe(1);
    await shot(page, 'downloads');
  });

  it('draws the dashboard charts as images with accessible names', async () => {
    await page.goto(`${base}/admin`);
    const bytes = page.getByRole('img', { name: 'Bytes served per hour, last 7 days' });
    await bytes.waitFor();
    expect(await bytes.locator('rect.chart-bar').count()).toBeGreaterThanOrEqual(1);
    const box = await bytes.boundingBox();
    expect(box!.width).toBeGreaterThan(250);
    expect(await page.getByRole('img', { name: 'Finished downloads per day, last 7 days' }).count()).toBe(1);
    await page.locator('#charts-heading').scrollIntoViewIfNeeded();
    await shot(page, 'dashboard-charts');
  });

  it('tells the history in sentences with links, sign-ins only when asked', async () => {
    await page.goto(`${base}/admin/history`);
    const items = await page.locator('ol.history li').allInnerTexts();
    expect(
      items.some((t) => t.endsWith('admin removed Windows 11 Corporate from Sales')),
      items.join('\n'),
    ).toBe(true);
    expect(items.some((t) => t.endsWith('admin deleted group Design'))).toBe(true);
    expect(items, items.join('\n')).toContainEqual(
      expect.stringMatching(
        /admin created group Support → Windows 11 Corporate, with the primary license key \(CSV import\)$/,
      ),
    );
    expect(items.some((t) => t.includes('signed in'))).toBe(false);
    await shot(page, 'history');
    await page.check('#h-logins');
    await navigate(page, button(page, 'Filter'));
    expect(
      (await page.locator('ol.history li').allInnerTexts()).some((t) => t.endsWith('admin signed in from 127.0.0.1')),
    ).toBe(true);
    await page.fill('#h-text', 'support');
    await page.uncheck('#h-logins');
    await navigate(page, button(page, 'Filter'));
    expect(await page.locator('ol.history li').allInnerTexts()).toEqual([
      expect.stringMatching(
        /admin created group Support → Windows 11 Corporate, with the primary license key \(CSV import\)$/,
      ) as string,
    ]);
    await navigate(page, page.locator('ol.history li a', { hasText: 'Support' }));
    expect(await page.locator('h1').innerText()).toBe('Group Support');
  });

  it('follows the system dark mode with readable contrast, and has no sideways scrolling on a phone', async () => {
    const dark = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
    dark.on('weberror', (err) => scriptErrors.push(String(err.error())));
    const p = await dark.newPage();
    try {
      await signIn(p, base, PASSWORD);
      expect(await backgroundLuminance(p)).toBeLessThan(0.15);
      const checks: Array<[string, string]> = [
        ['/admin', 'main h1'],
        ['/admin', 'main .muted'],
        ['/admin', 'main a[href="/admin/history"]'],
        ['/admin/downloads', '#finished .badge.bad'],
        ['/admin/downloads', '#finished td.ua'],
        ['/admin/groups', 'tbody a'],
        ['/admin/history', 'ol.history time'],
      ];
      for (const [url, selector] of checks) {
        if (p.url() !== `${base}${url}`) await p.goto(`${base}${url}`);
        const ratio = await contrastOf(p, selector);
        expect({ url, selector, readable: ratio >= 4.5 }, `contrast ${ratio.toFixed(2)}`).toEqual({
          url,
          selector,
          readable: true,
        });
      }
      for (const name of ['dashboard', 'downloads', 'groups', 'history']) {
        await p.goto(`${base}/admin${name === 'dashboard' ? '' : `/${name}`}`);
        await shot(p, `dark-${name}`);
      }
      await p.setViewportSize({ width: 390, height: 844 });
      for (const url of ['/admin', '/admin/downloads', '/admin/history', '/admin/groups']) {
        await p.goto(`${base}${url}`);
        await expectNoHorizontalOverflow(p, url);
      }
      await p.goto(`${base}/admin/downloads`);
      await shot(p, 'dark-phone-downloads');
    } finally {
      await dark.close();
    }
    // The light palette is light.
    await page.goto(`${base}/admin`);
    expect(await backgroundLuminance(page)).toBeGreaterThan(0.85);
  });

  it('used no inline scripts or event handlers, raised no script error, and saved the screenshots', async () => {
    for (const url of ['/admin', '/admin/downloads', '/admin/history', '/admin/groups']) {
      const html = await (await page.goto(`${base}${url}`))!.text();
      expect(html, url).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(html, url).not.toMatch(/<[^>]+\son[a-z]+=/i);
    }
    expect(scriptErrors).toEqual([]);
    expect(shots.map((f) => path.basename(f)).sort()).toEqual(
      [
        'day-dark-dashboard.png',
        'day-dark-downloads.png',
        'day-dark-groups.png',
        'day-dark-history.png',
        'day-dark-phone-downloads.png',
        'day-dashboard-charts.png',
        'day-downloads-live.png',
        'day-downloads.png',
        'day-group-delete-confirm.png',
        'day-groups-import-problems.png',
        'day-groups-imported.png',
        'day-history.png',
        'day-image-no-groups.png',
        'day-unassign-confirm.png',
      ].sort(),
    );
    for (const file of shots) expect((await fs.stat(file)).size, file).toBeGreaterThan(5000);
  });
});
