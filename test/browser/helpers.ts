/** Real-browser helpers: Debian's Chromium through playwright-core, sign-in, test packages, layout checks. */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { sha256Hex, testBytes } from '../helpers/env.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const SCREENSHOT_DIR = path.resolve(import.meta.dirname, '../artifacts/screenshots');

/** Launches headless Chromium; fails loudly (never skips) when it is not installed. */
export async function launchChromium(): Promise<Browser> {
  try {
    await fs.access(CHROMIUM_PATH, fsConstants.X_OK);
  } catch {
    throw new Error(
      `The browser tests need Chromium at ${CHROMIUM_PATH}, which is missing. Install Debian's chromium: apt-get install chromium ` +
        '(playwright-core cannot download browsers here).',
    );
  }
  try {
    return await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  } catch (err) {
    throw new Error(
      `Chromium at ${CHROMIUM_PATH} did not start; reinstall Debian's chromium (apt-get install --reinstall chromium).\n${String(err)}`,
    );
  }
}

/** Signs in through the real form and waits for the page it leads to. */
export async function signIn(page: Page, baseUrl: string, password: string, next = '/admin'): Promise<void> {
  await page.goto(`${baseUrl}/admin/login?next=${encodeURIComponent(next)}`);
  await page.fill('#username', 'admin');
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${baseUrl}${next}`), page.click('button:text-is("Sign in")')]);
}

export interface TestPackage {
  name: string;
  file: string;
  checksumFile: string;
  sha256: string;
  size: number;
}

/** A .pvmp of deterministic bytes and its `shasum -a 256` file (`<hex>  <name>`), in `dir`. */
export async function writePackage(
  dir: string,
  name: string,
  size: number,
  seed: string,
  checksumOf?: string,
): Promise<TestPackage> {
  const data = testBytes(size, seed);
  const sha256 = sha256Hex(data);
  const file = path.join(dir, name);
  const checksumFile = path.join(dir, name.replace(/\.pvmp$/, '.txt'));
  await fs.writeFile(file, data);
  await fs.writeFile(checksumFile, `${checksumOf ?? sha256}  ${name}\n`);
  return { name, file, checksumFile, sha256, size };
}

/**
 * The body must not scroll sideways: the page is no wider than the viewport,
 * and no element outside a .table-wrap (which scrolls on its own) sticks out.
 */
export async function expectNoHorizontalOverflow(page: Page, label: string): Promise<void> {
  // A string, not a function: this project's TypeScript has no DOM types.
  const result = await page.evaluate<{ scrollWidth: number; innerWidth: number; offenders: string[] }>(`(() => {
    const offenders = [];
    for (const el of document.body.querySelectorAll('*')) {
      if (el.parentElement && el.parentElement.closest('.table-wrap')) continue;
      const box = el.getBoundingClientRect();
      if (box.width > 0 && box.right > window.innerWidth + 1) {
        const id = el.id ? '#' + el.id : '';
        const cls = typeof el.className === 'string' && el.className ? '.' + el.className.split(' ').join('.') : '';
        offenders.push(el.tagName.toLowerCase() + id + cls + ' right=' + Math.round(box.right) + ' "' + (el.textContent || '').trim().slice(0, 40) + '"');
      }
    }
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, offenders: offenders.slice(0, 5) };
  })()`);
  expect(result.offenders, `${label}: elements wider than the ${result.innerWidth}px viewport`).toEqual([]);
  expect(result.scrollWidth, `${label}: page scrolls sideways`).toBeLessThanOrEqual(result.innerWidth + 1);
}

/** A full-page PNG under test/artifacts/screenshots/. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await fs.mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Collects, for every page of the context, Content-Security-Policy violations (console reports and
 * securitypolicyviolation events, the latter through an init script the policy does not apply to)
 * and uncaught script errors.
 */
export async function watchPolicyAndErrors(
  context: BrowserContext,
): Promise<{ violations: string[]; scriptErrors: string[] }> {
  const watched = { violations: [] as string[], scriptErrors: [] as string[] };
  await context.addInitScript(`document.addEventListener('securitypolicyviolation', (e) => {
    console.error('CSP-EVENT ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + location.pathname);
  });`);
  context.on('console', (msg) => {
    const text = msg.text();
    if (/Content[- ]Security[- ]Policy|CSP-EVENT/i.test(text)) watched.violations.push(text);
  });
  context.on('weberror', (err) => watched.scriptErrors.push(String(err.error())));
  return watched;
}
