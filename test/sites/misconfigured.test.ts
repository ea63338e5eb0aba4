/**
 * Sites that must change nothing, and replicas that are wrong: real `serve`
 * processes on loopback. With no site defined a Mac sees exactly what it saw
 * before any replica existed; a replica never redirects `/d/`, even with sites
 * and an up replica of its own; and a replica whose public URL is the
 * primary's own, or leads back to it, never makes a Mac loop.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { testBytes } from '../helpers/env.js';
import { waitFor, waitForValue } from '../helpers/wait.js';
import {
  addPackage,
  api,
  cliToken,
  cluster,
  curlFollow,
  get,
  INTERVAL_MS,
  replicas,
  route,
  TABLE_TTL_MS,
  transparentRelay,
  waitUpWith,
  type Cluster,
  type Node,
} from './helpers.js';

const MAC_IN_BRANCH = '127.0.0.2';
const MAC_IN_LOOP = '127.0.0.3';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('sites that change nothing, and misconfigured replicas', () => {
  let nodes: Cluster;
  let primary: Node;
  let admin: string;
  let syncToken: string;
  const data = testBytes(1024 * 1024 + 11, 'sites-misconfigured');
  let sha: string;
  let link: string;

  beforeAll(async () => {
    nodes = await cluster();
    // No scheduled probe round during the file (the default is a minute): the probe a replica's heartbeat triggers
    // must be enough to keep a misconfigured replica out.
    primary = await nodes.node('primary', { MIRROR_REPLICA_CHECK_INTERVAL: '10m' });
    admin = await cliToken(primary, 'admin', 'admin');
    await primary.start();
    const sync = await api<{ token: string }>(primary.url, admin, 'POST', '/tokens', {
      name: 'replicas',
      scope: 'sync',
    });
    expect(sync.status, sync.text).toBe(201);
    syncToken = sync.body.token;
    sha = await addPackage(primary, admin, data, 'Golden');
    link = `${primary.url}/d/${sha}/Golden.pvmp`;
  });
  afterAll(async () => {
    await nodes?.close();
  });
  beforeEach(() => onTestFailed(() => console.log(nodes.logs())));

  const replicaEnv = (site: string, publicUrl?: string): Record<string, string> => ({
    MIRROR_SYNC_FROM: primary.url,
    MIRROR_SYNC_TOKEN: syncToken,
    MIRROR_SITE: site,
    MIRROR_SYNC_INTERVAL: '1h',
    ...(publicUrl ? { MIRROR_PUBLIC_URL: publicUrl } : {}),
  });

  let branch: Node;

  it('with no site defined, a Mac sees no change at all, even with an up replica holding the package', async () => {
    const before = await get(link, MAC_IN_BRANCH);
    expect(before.status).toBe(200);
    expect(before.sha256).toBe(sha);

    branch = await nodes.node('branch', replicaEnv('branch'));
    await branch.start();
    await waitUpWith(primary, admin, branch, [sha]);
    // Past the primary's routing table lifetime: the table it decides with lists the replica.
    await sleep(TABLE_TTL_MS + 200);
    await get(link, MAC_IN_BRANCH);
    const after = await get(link, MAC_IN_BRANCH);
    expect(after.status).toBe(200);
    // Every header but the clock's.
    expect({ ...after.headers, date: '' }).toEqual({ ...before.headers, date: '' });
    expect(after.sha256).toBe(sha);

    const decision = await route(primary, admin, MAC_IN_BRANCH, sha);
    expect(decision).toMatchObject({ site: null, replica: null, reason: 'no site is defined' });
  });

  it('a replica never redirects /d/, even with a site of its own and an up replica holding the package', async () => {
    const replicaAdmin = await cliToken(branch, 'admin', 'admin');
    const site = await api(branch.url, replicaAdmin, 'POST', '/sites', {
      name: 'branch',
      networks: [`${MAC_IN_BRANCH}/32`],
    });
    expect(site.status, site.text).toBe(201);
    const ownSync = await api<{ token: string }>(branch.url, replicaAdmin, 'POST', '/tokens', {
      name: 'below',
      scope: 'sync',
    });
    // A mirror reporting to the replica as its replica: the primary's URL, a server that does hold the package.
    const beat = await api(branch.url, ownSync.body.token, 'POST', '/replicas/heartbeat', {
      publicUrl: primary.url,
      site: 'branch',
      version: 'test',
      mirrorId: 'a-mirror-below-the-replica',
      heartbeatMs: 3_600_000,
      verified: [sha],
    });
    expect(beat.status, beat.text).toBe(200);
    await waitForValue(async () => (await replicas(branch, replicaAdmin)).find((r) => r.state === 'up'), {
      what: 'the replica to see its own replica up',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    // As a primary would, it finds an eligible replica for that Mac; as a replica, it serves the Mac itself.
    const decision = await route(branch, replicaAdmin, MAC_IN_BRANCH, sha);
    expect(decision.candidates).toHaveLength(1);
    expect(decision.candidates[0]).toMatchObject({ publicUrl: primary.url, excluded: null });
    expect(decision.replica).toBeNull();
    expect(decision.reason).toMatch(/replicas never redirect/);
    await sleep(TABLE_TTL_MS + 200);
    for (let i = 0; i < 3; i += 1) {
      const res = await get(`${branch.url}/d/${sha}/Golden.pvmp`, MAC_IN_BRANCH);
      expect(res.status).toBe(200);
      expect(res.headers.location).toBeUndefined();
      expect(res.sha256).toBe(sha);
    }
  });

  it("a replica whose public URL is the primary's own is refused; the primary serves the Mac (curl -L: 200, no hop)", async () => {
    const site = await api(primary.url, admin, 'POST', '/sites', { name: 'loop', networks: [`${MAC_IN_LOOP}/32`] });
    expect(site.status, site.text).toBe(201);
    const self = await nodes.node('self', replicaEnv('loop', primary.url));
    await self.start();
    await waitFor(() => self.log().includes('REPLICA_IS_SELF'), {
      what: 'the primary to refuse the heartbeat',
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    expect((await replicas(primary, admin)).map((r) => r.publicUrl)).not.toContain(primary.url);
    const decision = await route(primary, admin, MAC_IN_LOOP, sha);
    expect(decision).toMatchObject({ site: 'loop', replica: null, reason: 'site loop has no replica' });

    const file = path.join(nodes.dir, 'self.pvmp');
    const curl = await curlFollow(link, MAC_IN_LOOP, file);
    expect(curl, curl.stderr).toMatchObject({ code: 0, status: 200, redirects: 0, finalUrl: link });
    expect(await fs.readFile(file)).toEqual(data);
    await self.kill9();
  });

  it('a replica URL that leads back to the primary (a relay keeping the Mac address) is taken out; no Mac loops', async () => {
    const relay = await transparentRelay(primary.port);
    try {
      const relayUrl = `http://127.0.0.1:${relay.port}`;
      const looping = await nodes.node('looping', replicaEnv('loop', relayUrl));
      // A Mac of that site asks all along, while the replica joins, syncs, claims the package and is probed.
      const answers: number[] = [];
      let asking = true;
      const mac = (async () => {
        while (asking) {
          // A failed request (a loop cut by the relay, say) counts as an answer that is not the primary's 206.
          answers.push(
            await get(link, MAC_IN_LOOP, { Range: 'bytes=0-0' }).then(
              (r) => r.status,
              () => -1,
            ),
          );
          await sleep(50);
        }
      })();
      await looping.start();
      const joined = await waitForValue(
        async () => {
          const row = (await replicas(primary, admin)).find((r) => r.publicUrl === relayUrl);
          return row && row.verified > 0 && row.state !== 'pending' ? row : undefined;
        },
        { what: 'the replica to claim the package', timeoutMs: 30_000, intervalMs: 100 },
      );
      // A few heartbeats and a fresh routing table later.
      await sleep(TABLE_TTL_MS + 3 * INTERVAL_MS);
      asking = false;
      await mac;
      expect(new Set(answers), 'every answer while it joined came from the primary itself').toEqual(new Set([206]));
      const file = path.join(nodes.dir, 'looping.pvmp');
      const curl = await curlFollow(link, MAC_IN_LOOP, file);
      expect(curl, curl.stderr).toMatchObject({ code: 0, status: 200 });
      expect(curl.redirects).toBeLessThanOrEqual(1);
      expect(await fs.readFile(file)).toEqual(data);

      const row = (await replicas(primary, admin)).find((r) => r.publicUrl === relayUrl)!;
      expect(row.verified).toBeGreaterThan(0);
      expect(row.state).toBe('down');
      expect(row.reason).toContain('leads back to this mirror');
      expect(joined.state, 'never up, not even before its first probe of a package').toBe('down');
      const decision = await route(primary, admin, MAC_IN_LOOP, sha);
      expect(decision.replica).toBeNull();
      expect(decision.candidates).toHaveLength(1);
      expect(decision.candidates[0]).toMatchObject({ publicUrl: relayUrl, excluded: 'down' });
      expect(decision.candidates[0]!.detail).toContain('leads back to this mirror');
      await looping.kill9();
    } finally {
      await relay.close();
    }
  });
});
