/**
 * The Sites page of the admin console over a real primary and a real second
 * goldmirror acting as the branch's replica (its heartbeat through the API
 * with a sync token, its checks by the primary's real probes): sites are
 * created, edited and deleted through the forms, refused input is shown
 * beside its field, every form needs the session's CSRF token, the replica's
 * switches work, and the dashboard and Downloads page say where downloads
 * came from, from rows the real download path logged. In memory: what the
 * page says on a replica and with redirects switched off.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../server/app.js';
import { createUploadServer } from '../../server/http/uploads.js';
import { createLogger } from '../../server/log.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import { cliActor } from '../../server/services/audit.js';
import { bootstrapAdmin, createApiToken } from '../../server/services/auth.js';
import type { DownloadLogPage } from '../../server/services/download-log.js';
import { listHistory } from '../../server/services/history.js';
import { listReplicas, type ReplicaView } from '../../server/services/replicas.js';
import { createSite, getSite, listSites } from '../../server/services/sites.js';
import { ADMIN_PASSWORD, bootstrapTestAdmin, call, issueToken, mustSignIn, type Session } from '../helpers/api.js';
import { makeTempDir, putBlob, startMirror, testBytes, testConfig, type TestMirror } from '../helpers/env.js';
import { httpRequest } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

const BRANCH_SIZE = 300_000;
const LACKING_SIZE = 200_000;

/** The text of an HTML fragment as a reader sees it (tags dropped, entities decoded, spaces collapsed). */
function textOf(html: string): string {
  return html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .replace(/ ([:,.;)])/g, '$1')
    .replace(/\( /g, '(')
    .trim();
}

/** The message under the field `id`, or undefined when it has none. */
function fieldError(html: string, id: string): string | undefined {
  const match = new RegExp(`<p class="field-error" id="${id}-error">([\\s\\S]*?)</p>`).exec(html);
  return match ? textOf(match[1]!) : undefined;
}

/** The top-of-page alert. */
function alertOf(html: string): string | undefined {
  const match = /<p class="flash bad" role="alert">([\s\S]*?)<\/p>/.exec(html);
  return match ? textOf(match[1]!) : undefined;
}

/** One element's HTML by id (up to its closing tag of the same name, no nesting of that tag inside). */
function elementById(html: string, tag: string, id: string): string {
  const match = new RegExp(`<${tag}[^>]* id="${id}"[\\s\\S]*?</${tag}>`).exec(html);
  if (!match) throw new Error(`no <${tag} id="${id}"> on the page`);
  return match[0];
}

describe.sequential('Sites page, replicas and where downloads come from', () => {
  let primary: TestMirror;
  let branch: TestMirror;
  let session: Session;
  let token: string;
  let syncToken: string;
  let branchSha: string;
  let lackingSha: string;

  const page = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${primary.url}${path}`, {
      redirect: 'manual',
      ...init,
      headers: { cookie: session.cookie, ...init.headers },
    });
    return { status: res.status, location: res.headers.get('location'), html: await res.text() };
  };
  const post = (path: string, fields: Record<string, string>, csrf: string | null = session.csrfToken) =>
    page(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(csrf === null ? fields : { _csrf: csrf, ...fields }).toString(),
    });
  const replicas = async (): Promise<ReplicaView[]> => listReplicas(primary.runtime);
  const heartbeat = (verified: string[]) =>
    call(primary.url, 'POST', '/api/v1/replicas/heartbeat', {
      token: syncToken,
      json: {
        publicUrl: branch.url,
        site: 'branch',
        version: '9.9.9-test',
        mirrorId: 'branch-replica-test',
        heartbeatMs: 60_000,
        syncedAt: Date.now(),
        verified,
      },
    });

  beforeAll(async () => {
    [primary, branch] = await Promise.all([startMirror(), startMirror()]);
    await bootstrapTestAdmin(primary);
    session = await mustSignIn(primary.url);
    token = await issueToken(primary, 'sites-test');
    syncToken = (await createApiToken(primary.runtime, cliActor, 'branch-sync', 'sync')).token;
    const branchBytes = testBytes(BRANCH_SIZE, 'sites-branch');
    branchSha = await putBlob(primary, branchBytes, 'Branch.pvmp');
    // The replica holds the same bytes (as its sync would have copied them); the second package it lacks.
    expect(await putBlob(branch, branchBytes, 'Branch.pvmp')).toBe(branchSha);
    lackingSha = await putBlob(primary, testBytes(LACKING_SIZE, 'sites-lacking'), 'Lacking.pvmp');
  });
  afterAll(async () => {
    await primary?.close();
    await branch?.close();
  });

  it('starts empty: a nav entry, how a replica joins, which link the portal keeps, and no dashboard panel', async () => {
    const { status, html } = await page('/admin/sites');
    expect(status).toBe(200);
    expect(html).toContain('<title>Sites and replicas · goldmirror</title>');
    expect(html).toContain('<a href="/admin/sites" aria-current="page">Sites</a>');
    const text = textOf(html);
    for (const variable of ['MIRROR_SYNC_FROM=', 'MIRROR_SYNC_TOKEN=', 'MIRROR_SITE=', 'MIRROR_PUBLIC_URL='])
      expect(text).toContain(variable);
    expect(text).toContain('The portal link stays the same.');
    expect(text).toContain('No sites yet: every Mac downloads from this mirror.');
    expect(text).toContain('No replica has reported to this mirror yet.');
    // Every post form carries the session's token.
    const forms = html.match(/<form method="post"[^>]*>/g) ?? [];
    const tokens = html.match(/<input type="hidden" name="_csrf" value="([^"]*)"\/>/g) ?? [];
    expect(forms.length).toBeGreaterThanOrEqual(2);
    expect(tokens).toHaveLength(forms.length);

    const dashboard = await page('/admin');
    expect(dashboard.status).toBe(200);
    expect(dashboard.html).not.toContain('Where downloads come from');
  });

  it('creates a site only with the CSRF token, and shows each refused field precisely', async () => {
    const forged = await post('/admin/sites', { name: 'branch', networks: '127.0.0.1/32' }, null);
    expect(forged.status).toBe(403);
    expect(await listSites(primary.runtime)).toEqual([]);

    const bad = await post('/admin/sites', { name: 'Branch Office', networks: '10.2.0.1/16\nnot-a-net, 10.9.0.0/16' });
    expect(bad.status).toBe(400);
    expect(fieldError(bad.html, 'site-name')).toBe(
      'must be 1-64 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit',
    );
    expect(fieldError(bad.html, 'site-networks')).toBe(
      '"10.2.0.1/16" has bits set past its /16 prefix; did you mean 10.2.0.0/16?; "not-a-net" is not an IP address or CIDR block (e.g. 10.0.0.0/8 or fd00::/8)',
    );
    expect(bad.html).toContain('id="site-networks" name="networks" rows="4" class="mono" aria-invalid="true"');
    expect(alertOf(bad.html)).toMatch(/^invalid site: name: must be 1-64 lower-case letters/);
    // What was typed is shown again, unchanged.
    expect(bad.html).toContain('value="Branch Office"');
    expect(bad.html).toContain('>10.2.0.1/16\nnot-a-net, 10.9.0.0/16</textarea>');

    const empty = await post('/admin/sites', { name: 'branch', networks: ' ' });
    expect(empty.status).toBe(400);
    expect(fieldError(empty.html, 'site-networks')).toBe('must name at least one network (e.g. 10.2.0.0/16)');

    const created = await post('/admin/sites', {
      name: 'branch',
      networks: '127.0.0.1/32, 10.2.0.0/16',
      redirects: 'on',
    });
    expect(created).toMatchObject({ status: 303, location: '/admin/sites?done=site-created' });
    expect(await getSite(primary.runtime, 'branch')).toMatchObject({
      networks: ['127.0.0.1/32', '10.2.0.0/16'],
      redirects: true,
    });

    const taken = await post('/admin/sites', { name: 'hq', networks: '10.2.0.0/16' });
    expect(taken.status).toBe(409);
    expect(fieldError(taken.html, 'site-networks')).toBe('the network 10.2.0.0/16 belongs to site "branch" already');
    const again = await post('/admin/sites', { name: 'branch', networks: '10.7.0.0/16' });
    expect(again.status).toBe(409);
    expect(fieldError(again.html, 'site-name')).toBe('a site named "branch" already exists');

    const list = await page('/admin/sites?done=site-created');
    expect(list.html).toContain('<p class="flash ok" role="status">Site created.</p>');
    const row = textOf(elementById(list.html, 'table', 'sites'));
    expect(row).toContain('branch 127.0.0.1/32, 10.2.0.0/16 on none');
  });

  it("edits a site's networks and redirect switch, refusing an empty list beside its field", async () => {
    const edit = await page('/admin/sites/branch');
    expect(edit.status).toBe(200);
    expect(edit.html).toContain('>127.0.0.1/32\n10.2.0.0/16</textarea>');
    expect(edit.html).toMatch(
      /<input id="site-edit-redirects" name="redirects" type="checkbox" value="on" checked=""\/>/,
    );

    const saved = await post('/admin/sites/branch', { networks: '127.0.0.1/32\n10.3.0.0/16' });
    expect(saved).toMatchObject({ status: 303, location: '/admin/sites?done=site-saved' });
    expect(await getSite(primary.runtime, 'branch')).toMatchObject({
      networks: ['127.0.0.1/32', '10.3.0.0/16'],
      redirects: false,
    });
    expect(textOf(elementById((await page('/admin/sites')).html, 'table', 'sites'))).toContain('off: served here');

    const refused = await post('/admin/sites/branch', { networks: '', redirects: 'on' });
    expect(refused.status).toBe(400);
    expect(fieldError(refused.html, 'site-edit-networks')).toBe('must name at least one network (e.g. 10.2.0.0/16)');
    expect((await getSite(primary.runtime, 'branch')).redirects).toBe(false);

    expect((await post('/admin/sites/branch', { networks: '127.0.0.1/32', redirects: 'on' }, null)).status).toBe(403);
    expect((await post('/admin/sites/branch', { networks: '127.0.0.1/32', redirects: 'on' })).status).toBe(303);
    expect(await getSite(primary.runtime, 'branch')).toMatchObject({ networks: ['127.0.0.1/32'], redirects: true });
    expect((await page('/admin/sites/nowhere')).status).toBe(404);
  });

  it('lists the replica after its heartbeat and check: state, version, times, verified count and what it lacks by name', async () => {
    expect((await heartbeat([branchSha])).status).toBe(200);
    await waitFor(async () => (await replicas())[0]?.state === 'up', { what: 'the replica to pass its first check' });

    const { html } = await page('/admin/sites');
    const [replica] = await replicas();
    const card = elementById(html, 'section', `replica-${replica!.id}`);
    const text = textOf(card);
    expect(text).toContain(`${branch.url} up`);
    expect(text).toContain('Site branch');
    expect(text).toContain('Version 9.9.9-test');
    expect(text).toContain('(every 60 s)');
    expect(text).toMatch(/Last sync \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    expect(text).toMatch(/Last check \d{4}-\d\d-\d\d \d\d:\d\d UTC: passed/);
    expect(text).toContain('1 verified by its own checks');
    expect(text).toContain('Lacks 1 package (those Macs are served here): Lacking.pvmp');
    expect(card).toContain(`<a href="/admin/blobs/${lackingSha}">Lacking.pvmp</a>`);
    expect(card).toContain('value="100"');
    expect(textOf(elementById(html, 'table', 'sites'))).toContain('1 of 1 up');
  });

  it("disables, enables, weighs and checks the replica through its forms, each needing the session's token", async () => {
    const [replica] = await replicas();
    const id = replica!.id;

    expect((await post(`/admin/replicas/${id}/disable`, {}, null)).status).toBe(403);
    expect((await replicas())[0]!.enabled).toBe(true);
    expect(await post(`/admin/replicas/${id}/disable`, {})).toMatchObject({
      status: 303,
      location: '/admin/sites?done=replica-disabled',
    });
    expect((await replicas())[0]).toMatchObject({ enabled: false, state: 'disabled' });
    const disabled = await page('/admin/sites?done=replica-disabled');
    expect(disabled.html).toContain('Replica disabled: no Mac is sent to it.');
    const card = textOf(elementById(disabled.html, 'section', `replica-${id}`));
    expect(card).toContain('disabled an admin disabled it');
    expect(card).toContain('Enable');
    expect(card).not.toContain('Check now');
    // A check of a disabled replica is refused in words, not run.
    expect((await post(`/admin/replicas/${id}/check`, {})).location).toBe('/admin/sites?done=replica-check-skipped');

    expect((await post(`/admin/replicas/${id}/enable`, {})).location).toBe('/admin/sites?done=replica-enabled');
    expect((await replicas())[0]).toMatchObject({ enabled: true, state: 'up' });

    for (const [typed, message] of [
      ['abc', 'must be a number'],
      ['2.5', 'must be a number'],
      ['', 'must be a number'],
      ['0', 'must be from 1 to 1000'],
      ['1001', 'must be from 1 to 1000'],
    ] as const) {
      const refused = await post(`/admin/replicas/${id}/weight`, { weight: typed });
      expect({ typed, status: refused.status }).toEqual({ typed, status: 400 });
      expect({ typed, error: fieldError(refused.html, `replica-${id}-weight`) }).toEqual({ typed, error: message });
      expect({ typed, alert: alertOf(refused.html) }).toEqual({ typed, alert: `invalid replica: weight: ${message}` });
    }
    expect((await replicas())[0]!.weight).toBe(100);
    expect((await post(`/admin/replicas/${id}/weight`, { weight: '250' }, null)).status).toBe(403);
    expect((await post(`/admin/replicas/${id}/weight`, { weight: '250' })).location).toBe(
      '/admin/sites?done=replica-weight-saved',
    );
    expect((await replicas())[0]!.weight).toBe(250);

    const before = (await replicas())[0]!.lastCheckAt;
    await new Promise((r) => setTimeout(r, 5));
    const checked = await post(`/admin/replicas/${id}/check`, {});
    expect(checked.location).toBe('/admin/sites?done=replica-check-passed');
    expect(Date.parse((await replicas())[0]!.lastCheckAt!)).toBeGreaterThan(Date.parse(before!));
    expect((await page(checked.location!)).html).toContain('Replica checked: it passed.');
    expect((await post('/admin/replicas/99999/check', {})).status).toBe(404);
  });

  it('explains where a Mac goes: to the replica for a package it verified, here for one it lacks or outside every site', async () => {
    const sent = await page(`/admin/sites?ip=127.0.0.1&sha256=${branchSha}`);
    expect(sent.status).toBe(200);
    expect(textOf(elementById(sent.html, 'div', 'route-answer'))).toContain(
      `A Mac at 127.0.0.1, in site branch (network 127.0.0.1/32), downloading Branch.pvmp is sent to ${branch.url}.`,
    );
    expect(sent.html).toContain(
      `<span class="mono" id="route-location">${branch.url}/d/${branchSha}/Branch.pvmp</span>`,
    );

    const lacking = await page(`/admin/sites?ip=127.0.0.1&sha256=${lackingSha}`);
    expect(lacking.html).not.toContain('id="route-location"');
    const answer = lacking.html.slice(lacking.html.indexOf('id="route-answer"'));
    expect(textOf(answer)).toContain(
      'downloading Lacking.pvmp is served by this mirror: no replica of site branch is up with a verified copy.',
    );
    expect(textOf(answer)).toContain('lacks the package it does not report a verified copy');

    const outside = await page(`/admin/sites?ip=10.9.9.9&sha256=${branchSha}`);
    expect(textOf(elementById(outside.html, 'div', 'route-answer'))).toContain(
      'A Mac at 10.9.9.9, in no site, downloading Branch.pvmp is served by this mirror: the client is in no site.',
    );

    const bad = await page('/admin/sites?ip=10.9.9&sha256=abc');
    expect(bad.status).toBe(400);
    expect(fieldError(bad.html, 'route-ip')).toBe('must be an IPv4 or IPv6 address');
    expect(fieldError(bad.html, 'route-sha256')).toBe('must be 64 hexadecimal digits');
    expect(bad.html).not.toContain('id="route-answer"');
  });

  it('counts downloads per site and per serving mirror on the dashboard, from what the download path logged', async () => {
    const link = (sha: string, name: string) => `${primary.url}/d/${sha}/${name}`;
    // The first download reads the routing table fresh (no package was downloaded from the primary before).
    const redirected = await httpRequest(link(branchSha, 'Branch.pvmp'), { localAddress: '127.0.0.1' });
    expect(redirected.status).toBe(302);
    expect(redirected.headers.location).toBe(`${branch.url}/d/${branchSha}/Branch.pvmp`);
    const fromReplica = await httpRequest(redirected.headers.location!);
    expect(fromReplica.status).toBe(200);
    expect(fromReplica.bytes.length).toBe(BRANCH_SIZE);

    const lacking = await httpRequest(link(lackingSha, 'Lacking.pvmp'), { localAddress: '127.0.0.1' });
    expect(lacking.status).toBe(200);
    expect(lacking.bytes.length).toBe(LACKING_SIZE);
    const outside = await httpRequest(link(branchSha, 'Branch.pvmp'), { localAddress: '127.0.0.2' });
    expect(outside.status).toBe(200);
    // A resumed piece is logged but is no finished download; its bytes count.
    const piece = await httpRequest(link(lackingSha, 'Lacking.pvmp'), {
      localAddress: '127.0.0.2',
      headers: { range: 'bytes=0-999' },
    });
    expect(piece.status).toBe(206);

    const { html } = await page('/admin');
    expect(html).toContain('Where downloads come from');
    const bySite = textOf(elementById(html, 'table', 'origins-sites'));
    expect(bySite).toContain('Site Downloads Bytes');
    expect(bySite).toContain('branch 2 500 kB');
    expect(bySite).toContain('outside every site 1 301 kB');
    const byServer = textOf(elementById(html, 'table', 'origins-servers'));
    expect(byServer).toContain('this mirror 2 501 kB');
    expect(byServer).toContain(`${branch.url} replica of branch 1 300 kB`);

    // The Downloads page and the API name the site and the server of each logged download.
    const downloads = await page('/admin/downloads');
    const finished = textOf(downloads.html.slice(downloads.html.indexOf('id="finished"')));
    expect(finished).toContain(`branch ${branch.url}`);
    expect(finished).toContain('sent by the replica');
    expect(finished).toContain('no site this mirror');
    const api = await call<DownloadLogPage>(primary.url, 'GET', '/api/v1/downloads', { token });
    expect(api.body.downloads.map((d) => [d.client, d.status, d.site, d.servedBy])).toEqual([
      ['127.0.0.2', 206, null, null],
      ['127.0.0.2', 200, null, null],
      ['127.0.0.1', 200, 'branch', null],
      ['127.0.0.1', 302, 'branch', branch.url],
    ]);
  });

  it('forgets the replica and deletes the site after a confirmation; then the panel goes', async () => {
    const [replica] = await replicas();
    const id = replica!.id;
    const confirm = await page(`/admin/replicas/${id}/forget`);
    expect(confirm.status).toBe(200);
    expect(textOf(confirm.html)).toContain('A replica that is still running reappears with its next heartbeat');
    expect(confirm.html).toContain('name="confirm" value="yes"');
    // A post without the page's confirm=yes is sent to the page.
    expect((await post(`/admin/replicas/${id}/forget`, {})).location).toBe(`/admin/replicas/${id}/forget`);
    expect((await post(`/admin/replicas/${id}/forget`, { confirm: 'yes' }, null)).status).toBe(403);
    expect(await replicas()).toHaveLength(1);
    expect((await post(`/admin/replicas/${id}/forget`, { confirm: 'yes' })).location).toBe(
      '/admin/sites?done=replica-forgotten',
    );
    expect(await replicas()).toEqual([]);
    // Its downloads stay counted, under its URL.
    const dashboard = textOf(elementById((await page('/admin')).html, 'table', 'origins-servers'));
    expect(dashboard).toContain(`${branch.url} replica of branch (forgotten) 1 300 kB`);

    const ask = await page('/admin/sites/branch/delete');
    expect(ask.status).toBe(200);
    expect(textOf(ask.html)).toContain('Macs in 127.0.0.1/32 will be served by this mirror');
    expect((await post('/admin/sites/branch/delete', {})).location).toBe('/admin/sites/branch/delete');
    expect((await post('/admin/sites/branch/delete', { confirm: 'yes' }, null)).status).toBe(403);
    expect(await listSites(primary.runtime)).toHaveLength(1);
    expect((await post('/admin/sites/branch/delete', { confirm: 'yes' })).location).toBe(
      '/admin/sites?done=site-deleted',
    );
    expect(await listSites(primary.runtime)).toEqual([]);
    expect((await page('/admin')).html).not.toContain('Where downloads come from');

    // The history tells each change as a sentence, newest first.
    const sentences = async (action: string) =>
      (await listHistory(primary.runtime, { action })).entries.map((e) => e.sentence);
    expect(await sentences('sites')).toEqual([
      'admin deleted site “branch”',
      'admin changed site “branch”: networks → 127.0.0.1/32 and redirects switched on',
      'admin changed site “branch”: networks → 127.0.0.1/32, 10.3.0.0/16 and redirects switched off',
      'admin created site “branch” for 127.0.0.1/32, 10.2.0.0/16',
    ]);
    expect(await sentences('replicas')).toEqual([
      `admin forgot replica ${branch.url}`,
      `admin set the weight of replica ${branch.url} to 250`,
      `admin enabled replica ${branch.url}`,
      `admin disabled replica ${branch.url}`,
    ]);
  });
});

describe('Sites page on a replica and with redirects off (in memory)', () => {
  const opened: Array<{ runtime: Runtime; dir: string }> = [];

  /** The console of a mirror with `overrides`, signed in; returns a GET of a page. */
  async function consoleOf(overrides: Record<string, unknown>): Promise<(path: string) => Promise<string>> {
    const dir = await makeTempDir();
    const runtime = await openRuntime(testConfig(dir, overrides), createLogger('silent'));
    opened.push({ runtime, dir });
    const { ingestDeps, store, log } = runtime;
    const app = createApp({
      ...runtime,
      uploads: await createUploadServer({ ingestDeps, store, log, baseUrl: async () => null }),
    });
    await bootstrapAdmin(runtime, dir, ADMIN_PASSWORD);
    const res = await app.request('/admin/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: 'admin', password: ADMIN_PASSWORD, next: '/admin' }).toString(),
    });
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    await createSite(runtime, cliActor, { name: 'branch', networks: ['10.2.0.0/16'] });
    return async (path) => (await app.request(path, { headers: { cookie } })).text();
  }

  afterAll(async () => {
    for (const { runtime, dir } of opened) {
      await runtime.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('says that a replica never redirects, and explains every decision so', async () => {
    const get = await consoleOf({
      syncFrom: 'http://hq.example.lan:8080',
      syncToken: 'gm_sync-token-of-the-primary',
      site: 'branch',
      publicUrl: 'http://branch.example.lan:8080',
    });
    const sha = 'a'.repeat(64);
    const html = await get(`/admin/sites?ip=10.2.3.4&sha256=${sha}`);
    expect(textOf(elementById(html, 'p', 'role-replica'))).toBe(
      'This mirror is a replica: it syncs from http://hq.example.lan:8080 for site branch and never redirects a Mac. Sites and replicas are managed on the primary.',
    );
    expect(html).not.toContain('id="role-no-redirects"');
    expect(textOf(elementById(html, 'div', 'route-answer'))).toContain(
      'is served by this mirror: this mirror is a replica (MIRROR_SYNC_FROM): replicas never redirect.',
    );
  });

  it('says that MIRROR_REDIRECTS=off keeps every Mac here', async () => {
    const get = await consoleOf({ redirects: 'off' });
    const html = await get('/admin/sites');
    expect(textOf(elementById(html, 'p', 'role-no-redirects'))).toBe(
      'Redirects are switched off (MIRROR_REDIRECTS=off): this mirror serves every download itself, whatever the sites below say.',
    );
    expect(html).not.toContain('id="role-replica"');
  });
});
