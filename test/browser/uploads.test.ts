/**
 * The Upload page in a real headless Chromium against a real mirror: one
 * drop zone for packages and checksum files, checks before any byte is sent,
 * architectures, uploads that survive 5 s offline and a reload, duplicate
 * picks, unfinished uploads, and the image form that follows. Slow uploads
 * go through a local proxy that throttles what the browser sends.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UnfinishedUpload } from '../../server/http/uploads.js';
import { bootstrapAdmin, createApiToken } from '../../server/services/auth.js';
import { call } from '../helpers/api.js';
import { makeTempDir, sha256Hex, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import {
  expectNoHorizontalOverflow,
  launchChromium,
  screenshot,
  signIn,
  writePackage,
  type TestPackage,
} from './helpers.js';
import { startThrottleProxy, type ThrottleProxy } from './throttle-proxy.js';

const PASSWORD = 'browser-upload-password-1';
const MiB = 1024 * 1024;
/** What the proxy lets the browser send per second: a 24 MiB upload takes about 8 s. */
const UPLOAD_RATE = 3 * MiB;

let browser: Browser;
let mirror: TestMirror;
let proxy: ThrottleProxy;
let context: BrowserContext;
let page: Page;
let tmp: string;
let token: string;
let arm: TestPackage;
let intel: TestPackage;
const scriptErrors: string[] = [];
const dialogs: string[] = [];
/** Set while a test expects the "leave the page?" warning: it is recorded and accepted there. */
let leaving: string[] | null = null;
/** Every tus request the browser made, in order. */
const tusRequests: Array<{ method: string; url: string; offset: string | undefined; page: Page }> = [];

const button = (p: Page, name: string) => p.getByRole('button', { name, exact: true });
const rowOf = (p: Page, name: string) => p.locator('#uploads .upload-row', { hasText: name });

async function blobRow(sha256: string) {
  return mirror.runtime.db
    .selectFrom('blobs')
    .select(['sha256', 'name', 'arch', 'size'])
    .where('sha256', '=', sha256)
    .executeTakeFirst();
}
async function unfinished(): Promise<UnfinishedUpload[]> {
  const res = await call<UnfinishedUpload[]>(mirror.url, 'GET', '/api/v1/uploads', { token });
  expect(res.status).toBe(200);
  return res.body;
}
async function percentOf(p: Page, name: string): Promise<number> {
  return Number((await rowOf(p, name).locator('progress').getAttribute('value')) ?? 0);
}
/** tus requests that never got an answer (offline, connection cut). */
let failedTusRequests = 0;

function watch(p: Page): void {
  p.on('requestfailed', (req: Request) => {
    if (req.url().includes('/api/v1/uploads')) failedTusRequests += 1;
  });
  p.on('request', (req: Request) => {
    if (!req.url().includes('/api/v1/uploads')) return;
    tusRequests.push({ method: req.method(), url: req.url(), offset: req.headers()['upload-offset'], page: p });
  });
}

beforeAll(async () => {
  browser = await launchChromium();
  mirror = await startMirror();
  await bootstrapAdmin(mirror.runtime, mirror.runtime.store.layout.root, PASSWORD);
  token = (await createApiToken(mirror.runtime, { kind: 'system', name: 'test' }, 'upload-browser-test')).token;
  proxy = await startThrottleProxy(mirror.url, UPLOAD_RATE);
  tmp = await makeTempDir('goldmirror-browser-uploads-');
  arm = await writePackage(tmp, 'Win11-arm.pvmp', 2 * MiB, 'uploads-arm');
  intel = await writePackage(tmp, 'Win11-x86_64.pvmp', 2 * MiB, 'uploads-intel');
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.on('weberror', (err) => scriptErrors.push(String(err.error())));
  context.on('dialog', (dialog) => {
    if (leaving && dialog.type() === 'beforeunload') {
      leaving.push(dialog.type());
      void dialog.accept();
      return;
    }
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  context.on('page', watch);
  page = await context.newPage();
  // Signed in through the proxy: the cookie is for 127.0.0.1, so it works on both ports.
  await signIn(page, proxy.url, PASSWORD);
});

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await mirror?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

// Sequential: the tests share one page and one mirror, and each starts where the one before left off.
describe.sequential('Upload page in Chromium', () => {
  it('takes .pvmp and .txt files together, pairs them by name, guesses the architecture, and uploads both', async () => {
    await page.goto(`${mirror.url}/admin/upload`);
    expect(await page.locator('#drop-zone').isVisible()).toBe(true);
    expect(await page.locator('#plain-fields').isVisible()).toBe(false);
    expect(await page.locator('#upload-hint').innerText()).toContain('pick the same file again');

    // Shuffled on purpose: the pairs are found by name.
    await page.setInputFiles('#files', [arm.file, intel.checksumFile, arm.checksumFile, intel.file]);
    const picked = page.locator('#picked .picked-row');
    await expect.poll(() => picked.count()).toBe(2);
    const armRow = picked.filter({ hasText: 'Win11-arm.pvmp' });
    const intelRow = picked.filter({ hasText: 'Win11-x86_64.pvmp' });
    expect(await armRow.innerText()).toContain('with Win11-arm.txt');
    expect(await intelRow.innerText()).toContain('with Win11-x86_64.txt');
    expect(await armRow.locator('select').inputValue()).toBe('arm64');
    expect(await intelRow.locator('select').inputValue()).toBe('x86_64');
    await screenshot(page, 'upload-picked-pairs');

    await button(page, 'Upload').click();
    for (const [pkg, slot] of [
      [arm, 'arm64'],
      [intel, 'x86_64'],
    ] as const) {
      const row = rowOf(page, pkg.name);
      await row.locator(`a[href="/admin/blobs/${pkg.sha256}"]`).waitFor({ timeout: 60_000 });
      expect(await row.locator('.upload-status').innerText()).toContain(
        `100% · stored and verified. SHA-256 ${pkg.sha256}`,
      );
      expect(
        await row.getByRole('link', { name: 'Create a golden image with this package' }).getAttribute('href'),
      ).toBe(`/admin/images/new?${slot}=${pkg.sha256}`);
      expect(await blobRow(pkg.sha256)).toEqual({ sha256: pkg.sha256, name: pkg.name, arch: slot, size: pkg.size });
    }
    expect(await page.locator('#picked .picked-row').count()).toBe(0);
    await screenshot(page, 'upload-pairs-finished');
  });

  it('"Create a golden image" opens the form with the package in its slot; pickers are filtered by architecture and picking ticks Enable', async () => {
    await rowOf(page, arm.name).getByRole('link', { name: 'Create a golden image with this package' }).click();
    await page.waitForURL(`${mirror.url}/admin/images/new?arm64=${arm.sha256}`);
    expect(await page.inputValue('#arm64-sha256')).toBe(arm.sha256);
    expect(await page.isChecked('#arm64-enabled')).toBe(true);
    expect(await page.isChecked('#x86_64-enabled')).toBe(false);
    const choices = async (slot: string) =>
      Promise.all((await page.locator(`#${slot}-sha256 option`).all()).map((o) => o.getAttribute('value')));
    const armChoices = await choices('arm64');
    const intelChoices = await choices('x86_64');
    expect(armChoices).toEqual(['', arm.sha256]);
    expect(intelChoices).toEqual(['', intel.sha256]);

    await page.selectOption('#x86_64-sha256', intel.sha256);
    expect(await page.isChecked('#x86_64-enabled')).toBe(true);
    await page.selectOption('#x86_64-sha256', '');
    expect(await page.isChecked('#x86_64-enabled')).toBe(false);
    await page.selectOption('#x86_64-sha256', intel.sha256);
    await page.fill('#name', 'Windows 11 from the upload page');
    await screenshot(page, 'image-form-prefilled');
    await Promise.all([
      page.waitForURL(/\/admin\/images\/\d+\?done=image-created$/),
      button(page, 'Create golden image').click(),
    ]);
    const image = await mirror.runtime.db
      .selectFrom('images')
      .selectAll()
      .where('name', '=', 'Windows 11 from the upload page')
      .executeTakeFirstOrThrow();
    expect(image).toMatchObject({
      arm64_enabled: 1,
      arm64_sha256: arm.sha256,
      x86_64_enabled: 1,
      x86_64_sha256: intel.sha256,
    });

    // A package re-marked for the other architecture: the form says so and asks before saving.
    expect(
      (await call(mirror.url, 'PATCH', `/api/v1/blobs/${arm.sha256}`, { token, json: { arch: 'x86_64' } })).status,
    ).toBe(200);
    await page.goto(`${mirror.url}/admin/images/${image.id}/edit`);
    expect(await page.locator('#arm64-arch-warning').innerText()).toBe(
      'This package is marked for Intel, not Apple silicon.',
    );
    await Promise.all([page.waitForLoadState('load'), button(page, 'Save changes').click()]);
    await page.locator('#arch-warnings').waitFor();
    expect(await page.locator('#arch-warnings').innerText()).toContain(
      'Apple silicon: the package Win11-arm.pvmp is marked for Intel, not Apple silicon.',
    );
    await screenshot(page, 'image-form-arch-warning');
    await page.check('#confirm-arch');
    await Promise.all([
      page.waitForURL(`${mirror.url}/admin/images/${image.id}?done=image-saved`),
      button(page, 'Save changes').click(),
    ]);
    expect(
      (await call(mirror.url, 'PATCH', `/api/v1/blobs/${arm.sha256}`, { token, json: { arch: 'arm64' } })).status,
    ).toBe(200);
  });

  it('reads a .txt before sending anything: a stored digest is "already stored", a lone or empty .txt and other files are refused', async () => {
    await page.goto(`${mirror.url}/admin/upload`);
    const lonely = path.join(tmp, 'Lonely.txt');
    await fs.writeFile(lonely, `${sha256Hex(testBytes(10, 'never-stored'))}  Lonely.pvmp\n`.padEnd(95, ' '));
    expect((await fs.stat(lonely)).size).toBe(95);
    const notes = path.join(tmp, 'notes.txt');
    await fs.writeFile(notes, 'Prepared on Monday.\n');
    const pdf = path.join(tmp, 'manual.pdf');
    await fs.writeFile(pdf, '%PDF-1.4\n');
    const before = tusRequests.length;

    await page.setInputFiles('#files', [arm.checksumFile, lonely, notes, pdf, arm.file]);
    const status = (name: string) => page.locator('#picked .picked-row', { hasText: name }).locator('.picked-status');
    await expect
      .poll(() => status('Win11-arm.pvmp').innerText())
      .toBe('already stored as Win11-arm.pvmp; nothing to upload');
    await expect.poll(() => status('Lonely.txt').innerText()).toBe('a checksum file: add its package too');
    await expect
      .poll(() => status('notes.txt').innerText())
      .toBe('notes.txt has no SHA-256 in it (64 hexadecimal digits); it is not the checksum file of a package.');
    await expect
      .poll(() => status('manual.pdf').innerText())
      .toBe('manual.pdf is neither a package (.pvmp) nor a checksum file (.txt); it was left out.');
    await screenshot(page, 'upload-checked-before-sending');

    await button(page, 'Upload').click();
    const stored = rowOf(page, 'Win11-arm.pvmp');
    await stored.waitFor();
    expect(await stored.locator('.upload-status').innerText()).toBe(
      `Already stored as Win11-arm.pvmp (SHA-256 ${arm.sha256}); nothing was uploaded. Create a golden image with this package`,
    );
    expect(await rowOf(page, 'Lonely.txt').locator('.upload-status.field-error').innerText()).toBe(
      'Lonely.txt is a checksum file, not a package: add Lonely.pvmp, the package it belongs to, and upload both together.',
    );
    expect(await rowOf(page, 'notes.txt').locator('.field-error').count()).toBe(1);
    expect(await rowOf(page, 'manual.pdf').locator('.field-error').count()).toBe(1);
    expect(tusRequests.slice(before)).toEqual([]);
    expect(await page.locator('a[href$="/null"]').count()).toBe(0);
    await screenshot(page, 'upload-refusals');
  });

  it('says in a sentence why the mirror refused an upload (a checksum that does not match), and keeps nothing', async () => {
    await page.goto(`${mirror.url}/admin/upload`);
    const expected = sha256Hex(testBytes(10, 'not-these-bytes'));
    const bad = await writePackage(tmp, 'Mismatch-arm64.pvmp', 1 * MiB, 'uploads-mismatch', expected);
    await page.setInputFiles('#files', [bad.file, bad.checksumFile]);
    await page.locator('#picked .picked-row', { hasText: bad.name }).waitFor();
    await button(page, 'Upload').click();
    const status = rowOf(page, bad.name).locator('.upload-status.field-error');
    await status.waitFor({ timeout: 60_000 });
    const message = await status.innerText();
    expect(message).toMatch(/^[A-Z].*\.$/);
    expect(message).toContain(expected);
    expect(message).toContain(bad.sha256);
    expect(message).not.toMatch(/\[object|tus:|ProgressEvent|"code"/);
    expect(await rowOf(page, bad.name).getByRole('button', { name: 'Dismiss' }).isVisible()).toBe(true);
    expect(await blobRow(bad.sha256)).toBeUndefined();
    expect(await unfinished()).toEqual([]);
  });

  it('takes files dropped on the drop zone', async () => {
    await page.goto(`${mirror.url}/admin/upload`);
    const data = testBytes(300 * 1024, 'dropped');
    const sha = sha256Hex(data);
    const dataTransfer = await page.evaluateHandle(`(() => {
      const bytes = Uint8Array.from(atob(${JSON.stringify(data.toString('base64'))}), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], 'Dropped-x64.pvmp'));
      transfer.items.add(new File([${JSON.stringify(`${sha}  Dropped-x64.pvmp\n`)}], 'Dropped-x64.txt'));
      return transfer;
    })()`);
    await page.locator('#drop-zone').dispatchEvent('dragover', { dataTransfer });
    expect(await page.locator('#drop-zone.over').count()).toBe(1);
    await page.locator('#drop-zone').dispatchEvent('drop', { dataTransfer });
    const row = page.locator('#picked .picked-row', { hasText: 'Dropped-x64.pvmp' });
    await row.waitFor();
    expect(await row.innerText()).toContain('with Dropped-x64.txt');
    expect(await row.locator('select').inputValue()).toBe('x86_64');
    await button(page, 'Upload').click();
    await rowOf(page, 'Dropped-x64.pvmp').locator(`a[href="/admin/blobs/${sha}"]`).waitFor({ timeout: 60_000 });
    expect(await blobRow(sha)).toMatchObject({ arch: 'x86_64', size: data.length });
  });

  it('keeps uploading through 5 s offline ("Reconnecting…", a Resume button) and completes with the right digest', async () => {
    const big = await writePackage(tmp, 'Offline-arm64.pvmp', 24 * MiB, 'uploads-offline');
    await page.goto(`${proxy.url}/admin/upload`);
    await page.setInputFiles('#files', [big.file, big.checksumFile]);
    await page.locator('#picked .picked-row', { hasText: big.name }).waitFor();
    await button(page, 'Upload').click();
    const row = rowOf(page, big.name);
    await expect.poll(() => percentOf(page, big.name), { timeout: 60_000 }).toBeGreaterThanOrEqual(15);

    const failedBefore = failedTusRequests;
    await context.setOffline(true);
    try {
      const offlineAt = Date.now();
      await expect
        .poll(() => row.locator('.upload-status').innerText(), { timeout: 15_000 })
        .toContain('Reconnecting…');
      expect(await row.locator('.upload-status').innerText()).toBe(
        'Reconnecting… This computer is offline; the upload continues by itself when the network is back.',
      );
      expect(await button(page, 'Resume').isVisible()).toBe(true);
      await screenshot(page, 'upload-reconnecting');
      const stalledAt = await percentOf(page, big.name);
      await page.waitForTimeout(Math.max(0, 5000 - (Date.now() - offlineAt)));
      // Still waiting, not failed, after 5 s offline.
      expect(await row.locator('.upload-status').innerText()).toContain('Reconnecting…');
      expect(await row.locator('.field-error').count()).toBe(0);
      expect(await percentOf(page, big.name)).toBe(stalledAt);
      expect(stalledAt).toBeLessThan(100);
      // The running request was cut and at least one attempt failed while offline; the upload kept waiting anyway.
      expect(failedTusRequests - failedBefore).toBeGreaterThanOrEqual(2);
    } finally {
      await context.setOffline(false);
    }

    await row.locator(`a[href="/admin/blobs/${big.sha256}"]`).waitFor({ timeout: 90_000 });
    const text = await row.innerText();
    expect(text).toContain(`100% · stored and verified. SHA-256 ${big.sha256}`);
    expect(text).not.toMatch(/\[object|tus:|ProgressEvent/);
    expect(await blobRow(big.sha256)).toMatchObject({ arch: 'arm64', size: big.size });
    // One upload resource: it continued, it did not start over.
    const creations = tusRequests.filter((r) => r.method === 'POST' && r.page === page && r.url.startsWith(proxy.url));
    expect(creations).toHaveLength(1);
    expect(await unfinished()).toEqual([]);
  });

  it('resumes after a reload from the offset the mirror has, not from zero; leaving warns first', async () => {
    const pkg = await writePackage(tmp, 'Reload-x86_64.pvmp', 24 * MiB, 'uploads-reload');
    await page.goto(`${proxy.url}/admin/upload`);
    await page.setInputFiles('#files', [pkg.file]);
    await page.locator('#picked .picked-row', { hasText: pkg.name }).waitFor();
    await button(page, 'Upload').click();
    await expect.poll(() => percentOf(page, pkg.name), { timeout: 60_000 }).toBeGreaterThanOrEqual(25);

    leaving = [];
    await page.reload();
    expect(leaving).toEqual(['beforeunload']);
    leaving = null;

    // The mirror kept what arrived; wait until the cut PATCH has ended there.
    await expect
      .poll(async () => (await unfinished()).find((u) => u.name === pkg.name)?.receiving, { timeout: 20_000 })
      .toBe(false);
    const [left] = (await unfinished()).filter((u) => u.name === pkg.name);
    expect(left!.offset).toBeGreaterThan(4 * MiB);
    expect(left!.offset).toBeLessThan(pkg.size);
    expect(left).toMatchObject({
      size: pkg.size,
      arch: 'x86_64',
      lastModified: Math.floor((await fs.stat(pkg.file)).mtimeMs),
    });
    await page.reload();
    const listed = page.locator(`#unfinished-uploads tr[data-upload-id="${left!.id}"]`);
    expect(await listed.innerText()).toContain(pkg.name);
    expect(await listed.getByRole('button', { name: 'Pick the file to resume' }).isVisible()).toBe(true);
    await screenshot(page, 'upload-unfinished-after-reload');

    const forwardedBefore = proxy.forwardedBytes();
    const requestsBefore = tusRequests.length;
    await page.setInputFiles('#files', [pkg.file]);
    await expect
      .poll(() => page.locator('#picked .picked-row', { hasText: pkg.name }).locator('.picked-status').innerText())
      .toBe('continues the unfinished upload below');
    await button(page, 'Upload').click();
    await rowOf(page, pkg.name).locator(`a[href="/admin/blobs/${pkg.sha256}"]`).waitFor({ timeout: 90_000 });

    const resumed = tusRequests.slice(requestsBefore);
    expect(resumed.filter((r) => r.method === 'POST')).toEqual([]);
    expect(resumed[0]).toMatchObject({ method: 'HEAD', url: `${proxy.url}/api/v1/uploads/${left!.id}` });
    const firstPatch = resumed.find((r) => r.method === 'PATCH');
    expect(firstPatch).toMatchObject({ url: `${proxy.url}/api/v1/uploads/${left!.id}`, offset: String(left!.offset) });
    // Only the rest crossed the wire (plus request headers).
    const sent = proxy.forwardedBytes() - forwardedBefore;
    expect(sent).toBeGreaterThanOrEqual(pkg.size - left!.offset);
    expect(sent).toBeLessThan(pkg.size - left!.offset + 64 * 1024);
    expect(await blobRow(pkg.sha256)).toMatchObject({ arch: 'x86_64', size: pkg.size });
    expect(await page.locator(`#unfinished-uploads tr[data-upload-id="${left!.id}"]`).count()).toBe(0);
    expect(await unfinished()).toEqual([]);
  });

  it('a file picked again while it uploads joins that upload; another tab refuses it; never a link to /admin/blobs/null', async () => {
    const pkg = await writePackage(tmp, 'Twice-arm64.pvmp', 12 * MiB, 'uploads-twice');
    await page.goto(`${proxy.url}/admin/upload`);
    const before = tusRequests.length;
    await page.setInputFiles('#files', [pkg.file, pkg.checksumFile]);
    await page.locator('#picked .picked-row', { hasText: pkg.name }).waitFor();
    await button(page, 'Upload').click();
    await expect.poll(() => percentOf(page, pkg.name), { timeout: 60_000 }).toBeGreaterThan(0);

    await page.setInputFiles('#files', [pkg.file]);
    expect(await rowOf(page, pkg.name).count()).toBe(1);
    expect(await rowOf(page, pkg.name).locator('.upload-notes').innerText()).toBe(
      'Twice-arm64.pvmp was picked again: it is already uploading here, so this pick joins that upload.',
    );
    expect(await page.locator('#picked .picked-row').count()).toBe(0);

    const other = await context.newPage();
    await other.goto(`${proxy.url}/admin/upload`);
    await other.setInputFiles('#files', [pkg.file, pkg.checksumFile]);
    const refusal =
      'Twice-arm64.pvmp is already uploading in another tab or window of this browser; it continues there.';
    await expect
      .poll(() => other.locator('#picked .picked-row', { hasText: pkg.name }).locator('.picked-status').innerText())
      .toBe(refusal);
    await button(other, 'Upload').click();
    expect(await rowOf(other, pkg.name).locator('.upload-status.field-error').innerText()).toBe(refusal);
    await screenshot(other, 'upload-refused-in-second-tab');

    await rowOf(page, pkg.name).locator(`a[href="/admin/blobs/${pkg.sha256}"]`).waitFor({ timeout: 90_000 });
    expect(tusRequests.slice(before).filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(tusRequests.slice(before).filter((r) => r.page === other)).toEqual([]);
    // Once it is stored, a new pick in either tab says so without sending it again.
    await page.setInputFiles('#files', [pkg.file]);
    await expect
      .poll(() => page.locator('#picked .picked-row', { hasText: pkg.name }).locator('.picked-status').innerText())
      .toBe('already stored as Twice-arm64.pvmp; nothing to upload');
    for (const p of [page, other]) expect(await p.locator('a[href="/admin/blobs/null"]').count()).toBe(0);
    await other.close();
  });

  it('when the session ends mid-upload it says so, and Resume continues after signing in again', async () => {
    const pkg = await writePackage(tmp, 'Session-arm64.pvmp', 24 * MiB, 'uploads-session');
    await page.goto(`${proxy.url}/admin/upload`);
    const before = tusRequests.length;
    await page.setInputFiles('#files', [pkg.file, pkg.checksumFile]);
    await page.locator('#picked .picked-row', { hasText: pkg.name }).waitFor();
    await button(page, 'Upload').click();
    await expect.poll(() => percentOf(page, pkg.name), { timeout: 60_000 }).toBeGreaterThanOrEqual(10);

    const other = await context.newPage();
    await other.goto(`${mirror.url}/admin`);
    await Promise.all([other.waitForURL(`${mirror.url}/admin/login`), button(other, 'Sign out').click()]);
    // A short network drop makes the upload ask the mirror again, now without a session.
    await context.setOffline(true);
    await context.setOffline(false);
    const row = rowOf(page, pkg.name);
    await expect
      .poll(() => row.locator('.upload-status').innerText(), { timeout: 30_000 })
      .toBe(
        'Your session has ended. Sign in again (in another tab), then press Resume; the upload continues where it stopped.',
      );
    await screenshot(page, 'upload-session-ended');

    await signIn(other, mirror.url, PASSWORD);
    await other.close();
    const resumedFrom = tusRequests.length;
    await row.getByRole('button', { name: 'Resume', exact: true }).click();
    await row.locator(`a[href="/admin/blobs/${pkg.sha256}"]`).waitFor({ timeout: 90_000 });
    // The same upload continued from where the mirror stopped (tus drops its URL after a 401; the page keeps it).
    const firstPatch = tusRequests.slice(before).find((r) => r.method === 'PATCH')!;
    const patchesAfter = tusRequests.slice(resumedFrom).filter((r) => r.method === 'PATCH');
    expect(patchesAfter.length).toBeGreaterThan(0);
    expect(patchesAfter.every((r) => r.url === firstPatch.url)).toBe(true);
    expect(Number(patchesAfter[0]!.offset)).toBeGreaterThan(2 * MiB);
    expect(tusRequests.slice(resumedFrom).filter((r) => r.method === 'POST')).toEqual([]);
    expect(await blobRow(pkg.sha256)).toMatchObject({ arch: 'arm64', size: pkg.size });
  });

  it('lists an unfinished upload from another client and discards it; the page fits a phone', async () => {
    const size = 1_000_000;
    const created = await call(mirror.url, 'POST', '/api/v1/uploads', {
      token,
      headers: {
        'Tus-Resumable': '1.0.0',
        'Upload-Length': String(size),
        'Upload-Metadata': `filename ${Buffer.from('Forgotten.pvmp').toString('base64')}`,
      },
    });
    expect(created.status).toBe(201);
    const id = created.headers.get('location')!.split('/').pop()!;
    const part = await call(mirror.url, 'PATCH', `/api/v1/uploads/${id}`, {
      token,
      raw: testBytes(250_000, 'forgotten'),
      contentType: 'application/offset+octet-stream',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0' },
    });
    expect(part.status).toBe(204);

    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      storageState: await context.storageState(),
    });
    const p = await phone.newPage();
    try {
      await p.goto(`${mirror.url}/admin/upload`);
      const row = p.locator(`#unfinished-uploads tr[data-upload-id="${id}"]`);
      expect(await row.innerText()).toMatch(/Forgotten\.pvmp[\s\S]*250 kB of 1\.0 MB \(25%\)[\s\S]*s ago[\s\S]*paused/);
      await expectNoHorizontalOverflow(p, 'upload page with an unfinished upload');
      await screenshot(p, 'phone-upload-unfinished');
      await Promise.all([
        p.waitForURL(`${mirror.url}/admin/upload?done=upload-discarded#unfinished`),
        row.getByRole('button', { name: 'Discard Forgotten.pvmp' }).click(),
      ]);
      expect(await p.locator('p.flash.ok').innerText()).toBe('Unfinished upload discarded; its bytes are gone.');
      expect(await p.locator(`tr[data-upload-id="${id}"]`).count()).toBe(0);
      expect((await fs.readdir(mirror.runtime.store.layout.uploadsDir)).filter((f) => f.startsWith(id))).toEqual([]);
    } finally {
      await phone.close();
    }
  });

  it('raised no script error and no dialog other than the beforeunload warning', () => {
    expect(scriptErrors).toEqual([]);
    expect(dialogs).toEqual([]);
  });
});
