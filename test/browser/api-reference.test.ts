/**
 * The API reference page in a real headless Chromium: signed in to the
 * console, an admin sees the operations of the OpenAPI document rendered by
 * Swagger UI from this server's own files, with no CSP violation, no script
 * error and no request leaving the mirror.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapAdmin } from '../../server/services/auth.js';
import { startMirror, type TestMirror } from '../helpers/env.js';
import { launchChromium, screenshot, signIn, watchPolicyAndErrors } from './helpers.js';

const PASSWORD = 'reference-browser-password';

let browser: Browser;
let mirror: TestMirror;
let context: BrowserContext;
let page: Page;
let violations: string[] = [];
let scriptErrors: string[] = [];
const foreignRequests: string[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  mirror = await startMirror();
  await bootstrapAdmin(mirror.runtime, mirror.runtime.store.layout.root, PASSWORD);
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const watched = await watchPolicyAndErrors(context);
  violations = watched.violations;
  scriptErrors = watched.scriptErrors;
  context.on('request', (req) => {
    if (!req.url().startsWith(mirror.url) && !req.url().startsWith('data:')) foreignRequests.push(req.url());
  });
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
  await mirror?.close();
});

describe('API reference page', () => {
  it('refuses a browser that is not signed in', async () => {
    const res = await page.goto(`${mirror.url}/api/v1/reference`);
    expect(res?.status()).toBe(401);
  });

  it('renders the operations of the document, styled, under its policy', async () => {
    await signIn(page, mirror.url, PASSWORD);
    // An admin finds it from any page of the console: the footer links it.
    await page.goto(`${mirror.url}/admin`);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${mirror.url}/api/v1/reference`),
      page.getByRole('link', { name: 'reference' }).click(),
    ]);
    expect(res?.status()).toBe(200);
    const csp = res?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/unsafe-(inline|eval|hashes)/);

    // Swagger UI renders an operation summary per route once it has loaded the document.
    await page.waitForSelector('.opblock-summary-path', { timeout: 20_000 });
    await expect
      .poll(() => page.locator('.opblock-summary-description', { hasText: 'Create an image' }).count())
      .toBe(1);
    const paths = await page.locator('.opblock-summary-path').allTextContents();
    expect(paths.map((p) => p.replace(/\u200b/g, ''))).toEqual(
      expect.arrayContaining(['/images/{id}', '/groups.csv', '/openapi.json']),
    );
    expect(paths.length).toBeGreaterThanOrEqual(45);
    await expect.poll(() => page.locator('.info .title', { hasText: 'goldmirror API' }).count()).toBe(1);
    // The vendored stylesheet is in effect: a GET operation's block is tinted (Swagger UI's blue).
    const tint = await page.evaluate<string>(
      `getComputedStyle(document.querySelector('.opblock.opblock-get')).backgroundColor`,
    );
    expect(tint).not.toBe('rgba(0, 0, 0, 0)');

    // Opening an operation shows its documented fields.
    await page.locator('.opblock-summary-description', { hasText: 'Create an image' }).click();
    await page.waitForSelector('.opblock.is-open .opblock-section-request-body, .opblock.is-open .body-param', {
      timeout: 10_000,
    });
    await screenshot(page, 'api-reference');

    expect(violations).toEqual([]);
    expect(scriptErrors).toEqual([]);
    expect(foreignRequests).toEqual([]);
  });
});
