/**
 * Sites on the download path, over real listening mirrors: a primary, a
 * replica that joined by syncing from it (MIRROR_SYNC_FROM, MIRROR_SITE,
 * heartbeats), and Macs told apart by their source address (127.0.0.x).
 * A GET from the branch's network is answered 302 to the same path on the
 * branch replica; HEAD, the checksum line, the link check and another
 * goldmirror's requests are always served here; a replica and a mirror with
 * MIRROR_REDIRECTS=off never redirect; the download log and /metrics say
 * where each download went.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getMirrorId } from '../../server/db/repos/sites.js';
import { probeDeps } from '../../server/jobs/probe-deps.js';
import { probeReplica } from '../../server/jobs/replica-checks.js';
import { LINK_CHECK_USER_AGENT } from '../../server/links.js';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { createImage } from '../../server/services/images.js';
import { acceptHeartbeat, listReplicas } from '../../server/services/replicas.js';
import { createSite } from '../../server/services/sites.js';
import { packageVersion } from '../../server/version.js';
import { call, issueToken } from '../helpers/api.js';
import { freePort, putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { httpRequest, type HttpReply } from '../helpers/http.js';
import { waitFor, waitForValue } from '../helpers/wait.js';

/** Source addresses standing for Macs: the branch's network is 127.0.0.2/31, head office's 127.0.0.4/32. */
const BRANCH_MAC = '127.0.0.2';
const OTHER_BRANCH_MAC = '127.0.0.3';
const HQ_MAC = '127.0.0.4';
const ELSEWHERE_MAC = '127.0.0.9';

/** A mirror on a port known in advance, so that MIRROR_PUBLIC_URL can name it. */
async function startNamedMirror(overrides: Record<string, unknown> = {}): Promise<TestMirror> {
  const port = await freePort();
  return startMirror({ port, publicUrl: `http://127.0.0.1:${port}`, ...overrides });
}

function get(url: string, from: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpReply> {
  return httpRequest(url, { method, headers, localAddress: from });
}

interface LogRow {
  client: string;
  user_agent: string;
  status: number;
  site: string | null;
  served_by: string | null;
  first_byte: number | null;
  bytes_planned: number;
}

async function downloadLog(m: TestMirror): Promise<LogRow[]> {
  await m.runtime.activity.flush();
  const rows = await m.runtime.db
    .selectFrom('download_log')
    .select(['client', 'user_agent', 'status', 'site', 'served_by', 'first_byte', 'bytes_planned'])
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    ...r,
    first_byte: r.first_byte === null ? null : Number(r.first_byte),
    bytes_planned: Number(r.bytes_planned),
  }));
}

describe('downloads of a Mac in a site with a replica', () => {
  let primary: TestMirror;
  let replica: TestMirror;
  let data: Buffer;
  let sha: string;
  let link: string;

  beforeAll(async () => {
    primary = await startNamedMirror({ replicaCheckIntervalMs: 1000 });
    data = testBytes(300_000, 'site-redirects');
    sha = await putBlob(primary, data, 'Golden.pvmp');
    await createImage(
      primary.runtime,
      cliActor,
      { name: 'Golden', arm64: { enabled: true, sha256: sha } },
      primary.url,
    );
    await createSite(primary.runtime, cliActor, { name: 'branch', networks: ['127.0.0.2/31'] });
    await createSite(primary.runtime, cliActor, { name: 'hq', networks: ['127.0.0.4'] });
    const { token } = await createApiToken(primary.runtime, cliActor, 'branch-replica', 'sync');
    // A replica as an admin sets one up: it syncs the packages, then reports them by heartbeat.
    replica = await startNamedMirror({
      syncFrom: primary.url,
      syncToken: token,
      site: 'branch',
      heartbeatIntervalMs: 1000,
      syncIntervalMs: 3_600_000,
    });
    link = `${primary.url}/d/${sha}/Golden.pvmp`;
    await waitFor(async () => (await get(link, BRANCH_MAC)).status === 302, {
      what: 'the replica synced, reported and checked',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
  });
  afterAll(async () => {
    await replica?.close();
    await primary?.close();
  });

  it('knows the replica from its own heartbeats: its URL, site, version, last sync and the package it verified', async () => {
    const [seen] = await listReplicas(primary.runtime);
    expect(seen).toMatchObject({
      publicUrl: replica.runtime.config.publicUrl,
      site: 'branch',
      version: await packageVersion(),
      state: 'up',
      heartbeatIntervalMs: 1000,
      verified: 1,
      lacks: [],
      badCopies: [],
    });
    expect(seen!.lastSyncAt).not.toBeNull();
  });

  it('answers 302 to the same path on the branch replica, private and never stored; the replica serves the bytes', async () => {
    const res = await get(link, BRANCH_MAC);
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe(`${replica.runtime.config.publicUrl}/d/${sha}/Golden.pvmp`);
    expect(res.headers['cache-control']).toBe('private, no-store');
    expect(res.headers['content-length']).toBe('0');
    expect(res.bytes.length).toBe(0);
    // No validators: the answer is about where, not what.
    expect(res.headers.etag).toBeUndefined();
    const followed = await get(res.headers.location!, BRANCH_MAC);
    expect(followed.status).toBe(200);
    expect(followed.bytes.equals(data)).toBe(true);
    expect(followed.headers.etag).toBe(`"${sha}"`);
    // The whole branch network is sent there.
    expect((await get(link, OTHER_BRANCH_MAC)).headers.location).toBe(res.headers.location);
  });

  it('keeps the requested path exactly (digest case, percent-encoding) and drops the query', async () => {
    const base = replica.runtime.config.publicUrl;
    for (const path of [
      `/d/${sha}/Windows%2011%20Golden.pvmp`,
      `/d/${sha}/Gr%C3%BC%C3%9Fe%20(arm).pvmp`,
      `/d/${sha.toUpperCase()}/golden.PVMP`,
    ]) {
      const res = await get(`${primary.url}${path}?utm_source=portal&x=%2F`, BRANCH_MAC);
      expect(res.status, path).toBe(302);
      expect(res.headers.location).toBe(`${base}${path}`);
      // The same path on the replica is the same package.
      const there = await get(res.headers.location!, BRANCH_MAC, { Range: 'bytes=0-99' });
      expect(there.status, path).toBe(206);
      expect(there.bytes.equals(data.subarray(0, 100))).toBe(true);
    }
  });

  it('sends a range request to the replica too; the replica answers the range', async () => {
    const res = await get(link, BRANCH_MAC, { Range: 'bytes=1000-', 'If-Range': `"${sha}"` });
    expect(res.status).toBe(302);
    const there = await get(res.headers.location!, BRANCH_MAC, { Range: 'bytes=1000-', 'If-Range': `"${sha}"` });
    expect(there.status).toBe(206);
    expect(there.bytes.equals(data.subarray(1000))).toBe(true);
  });

  it('keeps a request whose dates the replica would judge by its own Last-Modified (If-Range date, If-Unmodified-Since)', async () => {
    const first = await get(link, '127.0.0.1', { Range: 'bytes=0-0' });
    const lastModified = first.headers['last-modified']!;
    const byDate = await get(link, BRANCH_MAC, { Range: 'bytes=1000-', 'If-Range': lastModified });
    expect(byDate.status).toBe(206);
    expect(byDate.bytes.equals(data.subarray(1000))).toBe(true);
    const unmodified = await get(link, BRANCH_MAC, { Range: 'bytes=1000-', 'If-Unmodified-Since': lastModified });
    expect(unmodified.status).toBe(206);
    // The same resume by ETag is sent on: the ETag is the digest on every node.
    expect((await get(link, BRANCH_MAC, { Range: 'bytes=1000-', 'If-Range': `"${sha}"` })).status).toBe(302);
  });

  it('serves HEAD, the checksum line, the link check and Macs outside the branch itself', async () => {
    const head = await get(link, BRANCH_MAC, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(data.length));
    expect(head.headers.location).toBeUndefined();
    const checksum = await get(`${link}.sha256`, BRANCH_MAC);
    expect(checksum.status).toBe(200);
    expect(checksum.body).toBe(`${sha}  Golden.pvmp\n`);
    const check = await get(link, BRANCH_MAC, { 'User-Agent': LINK_CHECK_USER_AGENT, Range: 'bytes=0-9' });
    expect(check.status).toBe(206);
    expect(check.bytes.equals(data.subarray(0, 10))).toBe(true);
    // Head office has no replica, and the other Mac is in no site.
    for (const mac of [HQ_MAC, ELSEWHERE_MAC]) {
      const local = await get(link, mac);
      expect(local.status, mac).toBe(200);
      expect(local.bytes.equals(data)).toBe(true);
    }
  });

  it("never redirects another goldmirror's request (the hop header), and names this mirror in the answer", async () => {
    const ownId = await getMirrorId(primary.runtime.db);
    for (const method of ['GET', 'HEAD']) {
      const res = await get(link, BRANCH_MAC, { 'goldmirror-hop': 'some-replica', 'User-Agent': 'hop-test' }, method);
      expect(res.status, method).toBe(200);
      expect(res.headers['goldmirror-mirror']).toBe(ownId);
    }
    // A Mac's own request carries no such header.
    expect((await get(link, ELSEWHERE_MAC)).headers['goldmirror-mirror']).toBeUndefined();
  });

  it('logs where each download went: the site, and the replica for a redirect', async () => {
    const rows = await downloadLog(primary);
    const replicaUrl = replica.runtime.config.publicUrl;
    const redirected = rows.filter((r) => r.status === 302);
    expect(redirected.length).toBeGreaterThanOrEqual(6);
    for (const row of redirected) expect(row).toMatchObject({ site: 'branch', served_by: replicaUrl });
    expect(redirected.map((r) => r.client)).toEqual(expect.arrayContaining([BRANCH_MAC, OTHER_BRANCH_MAC]));
    expect(redirected).toContainEqual(
      expect.objectContaining({ first_byte: 1000, bytes_planned: data.length - 1000 }) as LogRow,
    );
    // Served here: a Mac of a site without a replica carries its site, one outside every site none.
    const local = rows.filter((r) => r.status !== 302);
    expect(local).toContainEqual(expect.objectContaining({ client: HQ_MAC, site: 'hq', served_by: null }) as LogRow);
    expect(local).toContainEqual(
      expect.objectContaining({ client: ELSEWHERE_MAC, site: null, served_by: null }) as LogRow,
    );
    // The hop request from the branch's address was served here, and says so.
    expect(local).toContainEqual(
      expect.objectContaining({
        client: BRANCH_MAC,
        user_agent: 'hop-test',
        status: 200,
        site: 'branch',
        served_by: null,
      }) as LogRow,
    );
    // HEAD and the link check are not logged.
    expect(rows.filter((r) => r.status === 206 && r.client === BRANCH_MAC && r.bytes_planned === 10)).toEqual([]);
  });

  it('counts downloads per site and where they were served in /metrics', async () => {
    const token = await issueToken(primary, 'metrics');
    const metrics = (await call(primary.url, 'GET', '/metrics', { token })).text;
    const count = (labels: string) => {
      const line = metrics.split('\n').find((l) => l.startsWith(`goldmirror_site_downloads_total{${labels}}`));
      return line ? Number(line.split(' ').at(-1)) : 0;
    };
    const replicaUrl = replica.runtime.config.publicUrl;
    expect(count(`site="branch",served_by="${replicaUrl}"`)).toBeGreaterThanOrEqual(6);
    expect(count('site="hq",served_by="local"')).toBeGreaterThanOrEqual(1);
    expect(count('site="",served_by="local"')).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^# TYPE goldmirror_site_downloads_total counter$/m);
  });

  it('a replica (MIRROR_SYNC_FROM) never redirects, even with sites and an up replica of its own', async () => {
    // Give the replica a site and a "replica" of its own (the primary), as a misconfiguration would.
    await createSite(replica.runtime, cliActor, { name: 'branch', networks: ['127.0.0.2/31'] });
    await acceptHeartbeat({ ...replica.runtime, publicUrl: replica.runtime.config.publicUrl }, 'test', {
      publicUrl: primary.runtime.config.publicUrl,
      site: 'branch',
      version: '0.1.0',
      mirrorId: 'not-the-primary',
      heartbeatMs: 60_000,
      verified: [sha],
    });
    const [own] = await listReplicas(replica.runtime);
    // Its check of that URL passes: the primary serves the package (and is not the replica itself).
    expect(await probeReplica(probeDeps(replica.runtime), own!.id)).toMatchObject({ ok: true });
    expect((await listReplicas(replica.runtime))[0]!.state).toBe('up');
    // Were it a primary, it would send the branch's Macs there.
    const explained = await call<{ reason: string; candidates: Array<{ publicUrl: string; excluded: string | null }> }>(
      replica.url,
      'GET',
      `/api/v1/sites/route?ip=${BRANCH_MAC}&sha256=${sha}`,
      { token: await issueToken(replica, 'explain') },
    );
    expect(explained.body.candidates).toEqual([
      expect.objectContaining({ publicUrl: primary.runtime.config.publicUrl, excluded: null }),
    ]);
    expect(explained.body.reason).toBe('this mirror is a replica (MIRROR_SYNC_FROM): replicas never redirect');
    const replicaLink = `${replica.runtime.config.publicUrl}/d/${sha}/Golden.pvmp`;
    // Past the routing table's reread, still served here.
    await new Promise((r) => setTimeout(r, 2_100));
    for (let i = 0; i < 3; i += 1) {
      const res = await get(replicaLink, BRANCH_MAC);
      expect(res.status).toBe(200);
      expect(res.bytes.equals(data)).toBe(true);
    }
  });
});

/** Stores `data` on both, makes site "branch" of `network` on the primary, and has `branch` report it (one heartbeat). */
async function joinBranch(
  primary: TestMirror,
  branch: TestMirror,
  data: Buffer,
  name: string,
  network: string,
): Promise<string> {
  const sha = await putBlob(primary, data, name);
  await putBlob(branch, data, name);
  await createSite(primary.runtime, cliActor, { name: 'branch', networks: [network] });
  const token = (await createApiToken(primary.runtime, cliActor, 'branch', 'sync')).token;
  const beat = await call(primary.url, 'POST', '/api/v1/replicas/heartbeat', {
    token,
    json: {
      publicUrl: branch.url,
      site: 'branch',
      version: '0.1.0',
      mirrorId: 'branch-1',
      heartbeatMs: 60_000,
      verified: [sha],
    },
  });
  expect(beat.status, beat.text).toBe(200);
  return sha;
}

describe('MIRROR_REDIRECTS=off', () => {
  let primary: TestMirror;
  let branch: TestMirror;

  beforeAll(async () => {
    primary = await startNamedMirror({ redirects: 'off' });
    branch = await startMirror();
  });
  afterAll(async () => {
    await primary?.close();
    await branch?.close();
  });

  it('serves every Mac here, though a site has an up replica holding the package; the log still names the site', async () => {
    const data = testBytes(70_000, 'redirects-off');
    const sha = await joinBranch(primary, branch, data, 'off.pvmp', '127.0.0.2/31');
    await waitForValue(async () => ((await listReplicas(primary.runtime))[0]?.state === 'up' ? true : undefined), {
      what: 'the replica checked',
    });
    const explained = await call<{ reason: string; candidates: Array<{ publicUrl: string; excluded: string | null }> }>(
      primary.url,
      'GET',
      `/api/v1/sites/route?ip=${BRANCH_MAC}&sha256=${sha}`,
      { token: await issueToken(primary, 'explain') },
    );
    expect(explained.body.candidates).toEqual([expect.objectContaining({ publicUrl: branch.url, excluded: null })]);
    expect(explained.body.reason).toBe('redirects are switched off (MIRROR_REDIRECTS=off)');
    const download = async () => {
      const res = await get(`${primary.url}/d/${sha}/off.pvmp`, BRANCH_MAC);
      expect(res.status).toBe(200);
      expect(res.bytes.equals(data)).toBe(true);
    };
    // Sites are read in the background (at most every 2 s): a download soon after a change may not see them yet.
    await waitFor(
      async () => {
        await download();
        return (await downloadLog(primary)).at(-1)?.site === 'branch';
      },
      { what: 'the sites read by the download path', intervalMs: 200 },
    );
    for (let i = 0; i < 3; i += 1) await download();
    const rows = await downloadLog(primary);
    expect(rows.every((r) => r.status === 200 && r.served_by === null)).toBe(true);
    expect(rows.slice(-4).map((r) => [r.client, r.site])).toEqual(Array(4).fill([BRANCH_MAC, 'branch']));
  });
});

describe('behind a trusted reverse proxy (MIRROR_TRUST_PROXY)', () => {
  let primary: TestMirror;
  let branch: TestMirror;

  beforeAll(async () => {
    primary = await startNamedMirror({ trustProxy: '127.0.0.1' });
    branch = await startMirror();
  });
  afterAll(async () => {
    await primary?.close();
    await branch?.close();
  });

  it('routes by the forwarded address when the proxy is trusted, in any spelling, and never believes anyone else', async () => {
    const data = testBytes(20_000, 'proxy');
    const sha = await joinBranch(primary, branch, data, 'proxy.pvmp', '10.2.0.0/16');
    const link = `${primary.url}/d/${sha}/proxy.pvmp`;
    const location = `${branch.url}/d/${sha}/proxy.pvmp`;
    await waitFor(async () => (await get(link, '127.0.0.1', { 'X-Forwarded-For': '10.2.3.4' })).status === 302, {
      what: 'the replica checked',
    });
    for (const forwarded of ['10.2.3.4', '203.0.113.9, 10.2.3.4', '::ffff:10.2.3.4', '::ffff:a02:304']) {
      const res = await get(link, '127.0.0.1', { 'X-Forwarded-For': forwarded });
      expect(res.status, forwarded).toBe(302);
      expect(res.headers.location).toBe(location);
    }
    // The proxy's own address is in no site; another Mac's claim to be in the branch is not believed.
    expect((await get(link, '127.0.0.1')).status).toBe(200);
    expect((await get(link, '127.0.0.1', { 'X-Forwarded-For': '10.9.9.9' })).status).toBe(200);
    expect((await get(link, ELSEWHERE_MAC, { 'X-Forwarded-For': '10.2.3.4' })).status).toBe(200);
    // The log names the Mac and its site.
    const rows = await downloadLog(primary);
    expect(rows.filter((r) => r.status === 302).map((r) => [r.client, r.site, r.served_by])).toContainEqual([
      '10.2.3.4',
      'branch',
      branch.url,
    ]);
  });
});

describe('a replica URL that leads back to the primary', () => {
  let primary: TestMirror;

  beforeAll(async () => {
    const port = await freePort();
    // The primary's address by name; the "replica" reports the same server by its IP address.
    primary = await startMirror({ port, publicUrl: `http://localhost:${port}` });
  });
  afterAll(async () => {
    await primary?.close();
  });

  it('is taken out by its first check, before and after it claims packages: no redirect loop', async () => {
    const data = testBytes(50_000, 'loop');
    const sha = await putBlob(primary, data, 'loop.pvmp');
    await createSite(primary.runtime, cliActor, { name: 'branch', networks: ['127.0.0.2/31'] });
    const token = (await createApiToken(primary.runtime, cliActor, 'branch', 'sync')).token;
    const self = primary.url.replace('localhost', '127.0.0.1');
    expect(self).not.toBe(primary.runtime.config.publicUrl);
    const beat = (verified: string[]) =>
      call<{ replica: { id: number } }>(primary.url, 'POST', '/api/v1/replicas/heartbeat', {
        token,
        json: {
          publicUrl: self,
          site: 'branch',
          version: '0.1.0',
          mirrorId: 'misconfigured',
          heartbeatMs: 60_000,
          verified,
        },
      });
    // Before its first sync it holds nothing: checked by its /healthz.
    expect((await beat([])).status).toBe(200);
    const leadsBack = `its URL ${self} leads back to this mirror`;
    const down = async () => ((await listReplicas(primary.runtime))[0]?.reason === leadsBack ? true : undefined);
    await waitForValue(down, { what: 'the first check' });
    expect((await beat([sha])).status).toBe(200);
    await waitForValue(down, { what: 'the check after the claims' });
    await new Promise((r) => setTimeout(r, 2_100));
    for (let i = 0; i < 3; i += 1) {
      const res = await get(`${primary.url}/d/${sha}/loop.pvmp`, BRANCH_MAC);
      expect(res.status).toBe(200);
      expect(res.bytes.equals(data)).toBe(true);
    }
  });
});
