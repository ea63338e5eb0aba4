/**
 * The admin console under its Content-Security-Policy, in a real headless
 * Chromium: every page renders styled, the scripts that remain (copy
 * buttons, tus uploads with progress) work, and the browser reports no CSP
 * violation anywhere. A deliberately injected inline script proves the
 * policy is enforced and that a violation would be seen.
 */
import fs from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../server/services/audit.js';
import { bootstrapAdmin } from '../../server/services/auth.js';
import { createGroup } from '../../server/services/groups.js';
import { createImage } from '../../server/services/images.js';
import { addUpdateFile } from '../../server/services/pd-updates/versions.js';
import { acceptHeartbeat } from '../../server/services/replicas.js';
import { createSite } from '../../server/services/sites.js';
import { makeTempDir, putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { fakeDmg, sha256Of } from '../helpers/pd-upstream.js';
import { launchChromium, signIn, watchPolicyAndErrors, writePackage } from './helpers.js';
import { consolePages } from '../helpers/api.js';

const PASSWORD = 'csp-browser-password';

let browser: Browser;
let mirror: TestMirror;
let context: BrowserContext;
let page: Page;
let tmp: string;
/** CSP reports from the console and from securitypolicyviolation events, per page. */
let violations: string[] = [];
let scriptErrors: string[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  mirror = await startMirror();
  await bootstrapAdmin(mirror.runtime, mirror.runtime.store.layout.root, PASSWORD);
  tmp = await makeTempDir('goldmirror-csp-');
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: mirror.url });
  const watched = await watchPolicyAndErrors(context);
  violations = watched.violations;
  scriptErrors = watched.scriptErrors;
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
  await mirror?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/** Styles from the one hashed inline stylesheet are in effect (an unstyled page would be black on white). */
async function expectStyled(p: Page, where: string): Promise<void> {
  const header = await p.evaluate<string>(`getComputedStyle(document.querySelector('header.top')).backgroundColor`);
  expect({ where, header }).toEqual({ where, header: 'rgb(23, 32, 46)' });
}

// Sequential: the tests share one page and one mirror, and each starts where the one before left off.
describe.sequential('admin console under the Content-Security-Policy', () => {
  it('proves the policy is enforced: an injected inline script is blocked and reported', async () => {
    await page.goto(`${mirror.url}/admin/login`);
    const csp = (await page.request.get(`${mirror.url}/admin/login`)).headers()['content-security-policy'];
    expect(csp).toContain("script-src 'self'");
    await page.evaluate(
      `(() => { const s = document.createElement('script'); s.textContent = 'window.__injected = 1'; document.body.append(s); })()`,
    );
    await page.evaluate(
      `document.body.insertAdjacentHTML('beforeend', '<p id="styled-attr" style="color: rgb(1, 2, 3)">x</p>')`,
    );
    await expect.poll(() => violations.length).toBeGreaterThanOrEqual(2);
    expect(await page.evaluate('window.__injected')).toBeUndefined();
    expect(await page.evaluate<string>(`getComputedStyle(document.getElementById('styled-attr')).color`)).not.toBe(
      'rgb(1, 2, 3)',
    );
    expect(violations.join('\n')).toMatch(/script-src/);
    expect(violations.join('\n')).toMatch(/style-src/);
    violations.length = 0;
  });

  it('signs in and shows every page styled, with no CSP violation', async () => {
    const sha = await putBlob(mirror, testBytes(200_000, 'csp-pages'), 'Csp.pvmp');
    const image = await createImage(
      mirror.runtime,
      cliActor,
      { name: 'CSP image', arm64: { enabled: true, sha256: sha } },
      mirror.url,
    );
    const group = await createGroup(mirror.runtime, cliActor, { name: 'CSP group', imageId: image.id });
    // A site with a reporting replica, so the Sites pages show their cards, forms and a route explanation.
    await createSite(mirror.runtime, cliActor, { name: 'csp-site', networks: ['10.2.0.0/16'] });
    const { replicaId } = await acceptHeartbeat({ ...mirror.runtime, publicUrl: '' }, 'csp-sync', {
      publicUrl: 'http://csp-replica.example.lan:8080',
      site: 'csp-site',
      version: '1.0.0',
      mirrorId: 'csp-replica',
      heartbeatMs: 60_000,
      verified: [sha],
    });

    // A published Parallels Desktop version, so the Updates page shows its table and buttons.
    await addUpdateFile({ ...mirror.runtime.ingestDeps, config: mirror.runtime.config }, cliActor, {
      source: [fakeDmg(100_000, 'csp-pd')],
      what: 'csp.dmg',
      version: '26.3.3-57507',
      publish: true,
    });

    await page.goto(`${mirror.url}/admin/login`);
    await expectStyled(page, 'login');
    await signIn(page, mirror.url, PASSWORD);
    const pages = [
      ...consolePages({ imageId: image.id, groupId: group.id, sha256: sha }),
      '/admin/sites/csp-site',
      '/admin/sites/csp-site/delete',
      `/admin/sites?ip=10.2.3.4&sha256=${sha}`,
      `/admin/replicas/${replicaId}/forget`,
    ];
    for (const path of pages) {
      const res = await page.goto(`${mirror.url}${path}`);
      expect({ path, status: res?.status() }).toEqual({ path, status: 200 });
      await page.waitForLoadState('load');
      await expectStyled(page, path);
    }
    // `>` selectors of the stylesheet work (they were escaped into `&gt;` before): `.card > h2:first-child`.
    await page.goto(`${mirror.url}/admin/tokens`);
    expect(await page.evaluate<string>(`getComputedStyle(document.querySelector('form.card > h2')).marginTop`)).toBe(
      '0px',
    );
    expect(violations).toEqual([]);
    expect(scriptErrors).toEqual([]);
  });

  it('runs the page scripts: a tus upload with progress, and copy buttons', async () => {
    const pkg = await writePackage(tmp, 'Csp-upload.pvmp', 2 * 1024 * 1024, 'csp-upload');
    await page.goto(`${mirror.url}/admin/upload`);
    // upload.js ran (it rewrites the hint), so tus.min.js and upload.js loaded from 'self'.
    expect(await page.locator('#upload-hint').innerText()).toContain('another upload');
    await page.setInputFiles('#checksum', pkg.checksumFile);
    await page.setInputFiles('#package', pkg.file);
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    const link = page.locator(`#uploads a[href="/admin/blobs/${pkg.sha256}"]`);
    await link.waitFor({ timeout: 30_000 });
    expect(await page.evaluate<number>(`document.querySelector('#uploads progress').value`)).toBe(100);

    // A new token on the tokens page, copied with its Copy button (copy.js).
    await page.goto(`${mirror.url}/admin/tokens`);
    await page.fill('#token-name', 'csp-copy');
    await page.check('input[name=scope][value=read]');
    await Promise.all([
      page.waitForEvent('load'),
      page.getByRole('button', { name: 'Create token', exact: true }).click(),
    ]);
    const value = await page.locator('#token-value').innerText();
    expect(value).toMatch(/^gm_/);
    await page.evaluate(`navigator.clipboard.writeText('something else')`);
    await page.locator('button[data-copy="token-value"]').click();
    await page.locator('button[data-copy="token-value"]:text-is("Copied")').waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(value);

    // The Updates page: a .dmg added through its streamed form, and a digest copied with its button.
    const dmg = fakeDmg(200_000, 'csp-pd-added');
    const dmgFile = `${tmp}/ParallelsDesktop-26.3.2-57480.dmg`;
    await fs.writeFile(dmgFile, dmg);
    await page.goto(`${mirror.url}/admin/updates`);
    await page.fill('#update-version', '26.3.2-57480');
    await page.setInputFiles('#update-file', dmgFile);
    await Promise.all([
      page.waitForURL(`${mirror.url}/admin/updates?done=update-added#v-26.3.2-57480`),
      page.getByRole('button', { name: 'Add the .dmg', exact: true }).click(),
    ]);
    await expectStyled(page, '/admin/updates');
    const copy = page.locator('button[data-copy="sha-26.3.2-57480"]');
    await copy.click();
    await page.locator('button[data-copy="sha-26.3.2-57480"]:text-is("Copied")').waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(sha256Of(dmg));

    expect(violations).toEqual([]);
    expect(scriptErrors).toEqual([]);
  });
});
