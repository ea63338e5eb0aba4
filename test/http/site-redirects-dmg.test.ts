/**
 * Parallels Desktop update files on the download path of sites, over real listening mirrors: a primary that
 * publishes a version, and a branch replica that joined by syncing from it. The replica gets the published version
 * and its .dmg, reports the file among its verified copies, passes the primary's checks of it (made under a .dmg
 * name), serves the same feed with its own address, and the primary sends a branch Mac's .dmg download there with a
 * 302, exactly as it does for a .pvmp.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listReplicaClaims } from '../../server/db/repos/sites.js';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { readFeed } from '../../server/services/pd-updates/feed.js';
import { addUpdateFile } from '../../server/services/pd-updates/versions.js';
import { listReplicas } from '../../server/services/replicas.js';
import { createSite } from '../../server/services/sites.js';
import { call, issueToken } from '../helpers/api.js';
import { freePort, startMirror, type TestMirror } from '../helpers/env.js';
import { httpRequest, type HttpReply } from '../helpers/http.js';
import { fakeDmg, sha256Of } from '../helpers/pd-upstream.js';
import { waitFor } from '../helpers/wait.js';

/** The branch's network is 127.0.0.2/31; 127.0.0.9 is in no site. */
const BRANCH_MAC = '127.0.0.2';
const ELSEWHERE_MAC = '127.0.0.9';
const VERSION = '26.3.3-57507';

async function startNamedMirror(overrides: Record<string, unknown> = {}): Promise<TestMirror> {
  const port = await freePort();
  return startMirror({ port, publicUrl: `http://127.0.0.1:${port}`, ...overrides });
}

function get(url: string, from: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpReply> {
  return httpRequest(url, { method, headers, localAddress: from });
}

describe('a .dmg download of a Mac in a site whose replica holds a verified copy', () => {
  let primary: TestMirror;
  let replica: TestMirror;
  const dmg = fakeDmg(400_000 + 3, 'site-dmg');
  const sha = sha256Of(dmg);
  let link: string;

  beforeAll(async () => {
    primary = await startNamedMirror({ replicaCheckIntervalMs: 1000 });
    await addUpdateFile({ ...primary.runtime.ingestDeps, config: primary.runtime.config }, cliActor, {
      source: [dmg],
      what: 'ParallelsDesktop.dmg',
      version: VERSION,
      publish: true,
    });
    await createSite(primary.runtime, cliActor, { name: 'branch', networks: ['127.0.0.2/31'] });
    const { token } = await createApiToken(primary.runtime, cliActor, 'branch-replica', 'sync');
    replica = await startNamedMirror({
      syncFrom: primary.url,
      syncToken: token,
      site: 'branch',
      heartbeatIntervalMs: 1000,
      syncIntervalMs: 3_600_000,
    });
    // The link Macs read in the primary's feed.
    const feed = readFeed(await (await fetch(`${primary.url}/updates/parallels_updates.xml`)).text(), 'primary');
    link = feed.versions[0]!.fileUrl;
    expect(link).toBe(`${primary.runtime.config.publicUrl}/d/${sha}/ParallelsDesktop-${VERSION}.dmg`);
    await waitFor(async () => (await get(link, BRANCH_MAC)).status === 302, {
      what: 'the replica synced the update file, reported it and passed its check',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
  });
  afterAll(async () => {
    await replica?.close();
    await primary?.close();
  });

  it('the replica reports the update file among its verified copies and passes the checks made of it', async () => {
    const [seen] = await listReplicas(primary.runtime);
    expect(seen).toMatchObject({ site: 'branch', state: 'up', verified: 1, lacks: [], badCopies: [] });
    expect(seen!.lastCheck).toBe('passed');
    expect(seen!.lastCheckAt).not.toBeNull();
    const claims = await listReplicaClaims(primary.runtime.db, seen!.id);
    expect(claims.map((c) => [c.sha256, c.bad])).toEqual([[sha, 0]]);
  });

  it('answers 302 to the same path on the replica, which serves the same bytes, ranges too', async () => {
    const res = await get(link, BRANCH_MAC);
    expect(res.status).toBe(302);
    const location = `${replica.runtime.config.publicUrl}/d/${sha}/ParallelsDesktop-${VERSION}.dmg`;
    expect(res.headers.location).toBe(location);
    expect(res.headers['cache-control']).toBe('private, no-store');
    const followed = await get(location, BRANCH_MAC);
    expect(followed.status).toBe(200);
    expect(followed.bytes.equals(dmg)).toBe(true);
    expect(followed.headers.etag).toBe(`"${sha}"`);
    const resumed = await get(link, BRANCH_MAC, { Range: 'bytes=1000-', 'If-Range': `"${sha}"` });
    expect(resumed.status).toBe(302);
    const there = await get(resumed.headers.location!, BRANCH_MAC, { Range: 'bytes=1000-', 'If-Range': `"${sha}"` });
    expect(there.status).toBe(206);
    expect(there.bytes.equals(dmg.subarray(1000))).toBe(true);
    // The file is an update file on the replica too: never offered as a package.
    expect((await get(location.replace(/\.dmg$/, '.pvmp'), BRANCH_MAC)).status).toBe(404);
  });

  it('serves HEAD, the checksum line and Macs outside the site itself', async () => {
    const head = await get(link, BRANCH_MAC, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(dmg.length));
    const checksum = await get(`${link}.sha256`, BRANCH_MAC);
    expect(checksum.status).toBe(200);
    expect(checksum.body).toBe(`${sha}  ParallelsDesktop-${VERSION}.dmg\n`);
    const local = await get(link, ELSEWHERE_MAC);
    expect(local.status).toBe(200);
    expect(local.bytes.equals(dmg)).toBe(true);
  });

  it('the replica serves the same feed with its own address, and the route explanation names the .dmg', async () => {
    const own = await (await fetch(`${replica.url}/updates/parallels_updates.xml`)).text();
    const primaryFeed = await (await fetch(`${primary.url}/updates/parallels_updates.xml`)).text();
    expect(own).toBe(primaryFeed.replaceAll(primary.runtime.config.publicUrl, replica.runtime.config.publicUrl));
    const explained = await call<{ location: string | null; replica: { publicUrl: string } | null }>(
      primary.url,
      'GET',
      `/api/v1/sites/route?ip=${BRANCH_MAC}&sha256=${sha}`,
      { token: await issueToken(primary, 'explain') },
    );
    expect(explained.body.location).toBe(
      `${replica.runtime.config.publicUrl}/d/${sha}/ParallelsDesktop-${VERSION}.dmg`,
    );
  });
});
