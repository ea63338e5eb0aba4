/**
 * Sites with real processes: a primary and two replicas of site `branch`,
 * each a `goldmirror serve` on its own port of 127.0.0.1, and Macs told apart
 * by their loopback source address. A branch Mac is sent to a replica holding
 * a verified copy and gets the right bytes; others are served by the
 * primary; each address keeps its replica (a resumed download goes back to
 * it) and the addresses spread over both; a replica lacking a package, one
 * whose own check found its copy corrupt, one whose bytes differ without its
 * knowing, and one killed with -9 are skipped, and taken back once right.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { corruptStored, replaceStored } from '../helpers/blobs.js';
import { runCli } from '../helpers/cli.js';
import { sha256Hex, testBytes } from '../helpers/env.js';
import { httpRequest } from '../helpers/http.js';
import { waitForValue } from '../helpers/wait.js';
import {
  addPackage,
  api,
  baseOf,
  cliToken,
  cluster,
  get,
  INTERVAL_MS,
  replicas,
  route,
  sentTo,
  TABLE_TTL_MS,
  waitUpWith,
  type Cluster,
  type Node,
  type ReplicaView,
} from './helpers.js';

const KiB = 1024;
/** In site `branch` (with 127.0.1.0/24). */
const BRANCH_MAC = '127.0.0.2';
/** In no site. */
const OTHER_MAC = '127.0.0.9';
/** In site `annex`, which has no replica. */
const ANNEX_MAC = '127.0.4.7';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a primary and two replicas of one site', () => {
  let nodes: Cluster;
  let primary: Node;
  let a: Node;
  let b: Node;
  let admin: string;
  const golden = testBytes(1536 * KiB + 5, 'sites-golden');
  /** More packages, so that each scenario corrupts its own copy, and a replica claims five (see the last test). */
  const others = ['sites-self-checked', 'sites-probed-1', 'sites-probed-2', 'sites-probed-3'].map((seed, i) =>
    testBytes(256 * KiB + i, seed),
  );
  let goldenSha: string;
  let otherShas: string[];
  const byUrl = (): Map<string, Node> => new Map([a, b].map((n) => [n.url, n]));
  /** Where BRANCH_MAC is sent (the first test finds out). */
  let branchMacReplica = '';

  beforeAll(async () => {
    nodes = await cluster();
    primary = await nodes.node('primary');
    admin = await cliToken(primary, 'admin', 'admin');
    await primary.start();
    const sync = await api<{ token: string }>(primary.url, admin, 'POST', '/tokens', { name: 'branch', scope: 'sync' });
    expect(sync.status, sync.text).toBe(201);
    goldenSha = await addPackage(primary, admin, golden, 'Golden');
    otherShas = [];
    for (const [i, data] of others.entries()) otherShas.push(await addPackage(primary, admin, data, `Other ${i}`));
    for (const site of [
      { name: 'branch', networks: [`${BRANCH_MAC}/32`, '127.0.1.0/24'] },
      { name: 'annex', networks: ['127.0.4.0/24'] },
    ]) {
      const created = await api(primary.url, admin, 'POST', '/sites', site);
      expect(created.status, created.text).toBe(201);
    }
    const replicaEnv = {
      MIRROR_SYNC_FROM: primary.url,
      MIRROR_SYNC_TOKEN: sync.body.token,
      MIRROR_SITE: 'branch',
      // One sync, at start: a package added later stays missing on the replicas.
      MIRROR_SYNC_INTERVAL: '1h',
    };
    a = await nodes.node('a', replicaEnv);
    b = await nodes.node('b', replicaEnv);
    await Promise.all([a.start(), b.start()]);
    const all = [goldenSha, ...otherShas];
    await Promise.all([waitUpWith(primary, admin, a, all), waitUpWith(primary, admin, b, all)]);
  });
  afterAll(async () => {
    await nodes?.close();
  });
  beforeEach(() => onTestFailed(() => console.log(nodes.logs())));

  /** Where the primary sends `mac` for `sha256`, once its routing table shows the change `accept` waits for. */
  const waitSentTo = (mac: string, sha256: string, accept: (base: string | null) => boolean, what: string) =>
    waitForValue(
      async () => {
        const base = baseOf(await sentTo(primary, sha256, mac));
        return accept(base) ? { base } : undefined;
      },
      { what, timeoutMs: 15_000, intervalMs: 100 },
    ).then((r) => r.base);

  it('a Mac in the branch is sent to a branch replica and gets the right bytes; other Macs get them from the primary', async () => {
    const link = `${primary.url}/d/${goldenSha}/Golden.pvmp`;
    const replicaBase = await waitSentTo(BRANCH_MAC, goldenSha, (base) => base !== null, 'the first redirect');
    expect(byUrl().has(replicaBase!)).toBe(true);
    branchMacReplica = replicaBase!;
    const redirect = await get(link, BRANCH_MAC);
    expect(redirect.status).toBe(302);
    expect(redirect.headers.location).toBe(`${replicaBase}/d/${goldenSha}/Golden.pvmp`);
    expect(redirect.headers['cache-control']).toBe('private, no-store');
    const got = await get(redirect.headers.location!, BRANCH_MAC);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(goldenSha);
    const decision = await route(primary, admin, BRANCH_MAC, goldenSha);
    expect(decision).toMatchObject({ site: 'branch', replica: { publicUrl: replicaBase }, reason: null });
    expect(decision.candidates.map((c) => c.excluded)).toEqual([null, null]);

    // HEAD and the checksum line are answered by the primary itself, for a branch Mac too.
    expect((await get(`${link}.sha256`, BRANCH_MAC)).status).toBe(200);
    const head = await httpRequest(link, { method: 'HEAD', localAddress: BRANCH_MAC });
    expect(head.status).toBe(200);

    for (const [mac, reason] of [
      [OTHER_MAC, 'the client is in no site'],
      [ANNEX_MAC, 'site annex has no replica'],
    ] as const) {
      const local = await get(link, mac);
      expect(local.status).toBe(200);
      expect(local.headers.location).toBeUndefined();
      expect(local.sha256).toBe(goldenSha);
      expect(await route(primary, admin, mac, goldenSha)).toMatchObject({ replica: null, reason });
    }
  });

  /** Mac address → the replica it was sent to (filled by the next test, used by the later ones). */
  const assigned = new Map<string, string>();
  const macOf = (replica: Node): string => [...assigned].find(([, base]) => base === replica.url)![0];

  it('each Mac keeps its replica (after a quiet spell too), Macs spread over both, and a resumed download goes back to its replica', async () => {
    const macs = Array.from({ length: 40 }, (_, i) => `127.0.1.${i + 1}`);
    for (const mac of macs) assigned.set(mac, baseOf(await sentTo(primary, goldenSha, mac))!);
    // Again, after a quiet spell of more than three heartbeats without a download: the first one after it too.
    await sleep(3 * INTERVAL_MS + TABLE_TTL_MS);
    for (const mac of macs) expect(baseOf(await sentTo(primary, goldenSha, mac)), mac).toBe(assigned.get(mac));
    const counts = [a, b].map((n) => [...assigned.values()].filter((base) => base === n.url).length);
    expect(counts[0]! + counts[1]!).toBe(macs.length);
    expect(Math.min(...counts), `spread ${counts.join('/')}`).toBeGreaterThanOrEqual(5);

    // One Mac per replica: the first half, then the rest with If-Range, each through the primary's link.
    const link = `${primary.url}/d/${goldenSha}/Golden.pvmp`;
    const half = Math.floor(golden.length / 2);
    for (const replica of [a, b]) {
      const mac = macOf(replica);
      const first = await get(link, mac, { Range: `bytes=0-${half - 1}` });
      expect(first.status).toBe(302);
      expect(baseOf(first.headers.location!)).toBe(replica.url);
      const start = await get(first.headers.location!, mac, { Range: `bytes=0-${half - 1}` });
      expect(start.status).toBe(206);
      expect(start.headers.etag).toBe(`"${goldenSha}"`);
      const resume = { Range: `bytes=${half}-`, 'If-Range': start.headers.etag as string };
      const again = await get(link, mac, resume);
      expect(again.status).toBe(302);
      expect(again.headers.location).toBe(first.headers.location);
      const rest = await get(again.headers.location!, mac, resume);
      expect(rest.status).toBe(206);
      expect(rest.headers['content-range']).toBe(`bytes ${half}-${golden.length - 1}/${golden.length}`);
      expect(sha256Hex(Buffer.concat([start.bytes, rest.bytes]))).toBe(goldenSha);
    }
  });

  it('a replica that does not hold a package yet is skipped: a package added after its sync comes from the primary', async () => {
    const later = testBytes(300 * KiB + 3, 'sites-added-later');
    const laterSha = await addPackage(primary, admin, later, 'Later');
    await sleep(TABLE_TTL_MS + 200);
    for (const mac of [BRANCH_MAC, macOf(a), macOf(b)]) {
      const got = await get(`${primary.url}/d/${laterSha}/Later.pvmp`, mac);
      expect(got.status, mac).toBe(200);
      expect(got.sha256).toBe(laterSha);
      // The same Mac is still sent to its replica for a package that replica holds.
      expect(baseOf(await sentTo(primary, goldenSha, mac))).toBe(assigned.get(mac) ?? branchMacReplica);
    }
    const decision = await route(primary, admin, BRANCH_MAC, laterSha);
    expect(decision.replica).toBeNull();
    expect(decision.reason).toBe('no replica of site branch is up with a verified copy');
    expect(decision.candidates.map((c) => c.excluded)).toEqual(['lacks-package', 'lacks-package']);
    const listed = await replicas(primary, admin);
    for (const r of listed) expect(r.lacks).toEqual([laterSha]);
  });

  it('a replica whose own check finds its copy corrupt drops it at its next heartbeat; its Macs go to the other', async () => {
    const sha = otherShas[0]!;
    const mac = macOf(a);
    expect(baseOf(await sentTo(primary, sha, mac))).toBe(a.url);
    await corruptStored(a.dataDir, sha, [0, 100 * KiB]);
    const verify = await runCli(['verify', sha], a.env);
    expect(verify.code, verify.stdout + verify.stderr).toBe(1);
    expect(verify.stdout).toContain('corrupt');

    const now = await waitSentTo(mac, sha, (base) => base !== a.url, 'the corrupt copy to be dropped');
    expect(now).toBe(b.url);
    const got = await get(`${b.url}/d/${sha}/Other.pvmp`, mac);
    expect(got.sha256).toBe(sha);
    const decision = await route(primary, admin, mac, sha);
    expect(decision.replica?.publicUrl).toBe(b.url);
    expect(decision.candidates.find((c) => c.publicUrl === a.url)).toMatchObject({
      state: 'up',
      excluded: 'lacks-package',
    });
    // Its other packages still send the same Mac to it.
    expect(baseOf(await sentTo(primary, goldenSha, mac))).toBe(a.url);
  });

  it("other bytes on a replica that does not know it are found by the primary's range probe; it is out until they are right again", async () => {
    // B claims these five (the package added later was not synced). The range probes must reach every one of them,
    // not only those whose position shares RANGE_CHECK_EVERY's remainders: the last one by digest is changed.
    const claimed = [goldenSha, ...otherShas].sort();
    const id = (await replicas(primary, admin)).find((r) => r.publicUrl === b.url)!.id;
    expect((await api<ReplicaView>(primary.url, admin, 'GET', `/replicas/${id}`)).body.verified).toBe(claimed.length);
    const sha = claimed.at(-1)!;
    const right = sha === goldenSha ? golden : others[otherShas.indexOf(sha)]!;
    await replaceStored(b.dataDir, sha, testBytes(right.length, 'sites-other-bytes'));
    const mac = macOf(b);
    // Probes run every second; checks asked through the API besides shorten the wait for a range probe of this one.
    const checkUntil = async (state: 'up' | 'down'): Promise<ReplicaView> => {
      let view: ReplicaView | undefined;
      for (let i = 0; i < 6 * claimed.length && view?.state !== state; i += 1) {
        const checked = await api<ReplicaView>(primary.url, admin, 'POST', `/replicas/${id}/check`);
        expect(checked.status, checked.text).toBe(200);
        view = checked.body;
      }
      return view!;
    };
    const down = await checkUntil('down');
    expect(down.state).toBe('down');
    expect(down.reason).toMatch(new RegExp(`of package ${sha.slice(0, 12)} differ from this mirror's copy`));
    expect(down.badCopies).toEqual([sha]);
    expect((await route(primary, admin, mac, sha)).candidates.find((c) => c.publicUrl === b.url)).toMatchObject({
      excluded: 'down',
    });
    // The replica never found out: it still serves those bytes as verified.
    expect((await get(`${b.url}/d/${sha}/x.pvmp`, mac, { Range: 'bytes=0-0' })).status).toBe(206);
    // Its Macs go to the other replica, for every package (or to the primary for the one the other dropped).
    for (const pkg of claimed) {
      const expected = pkg === otherShas[0] ? null : a.url;
      expect(await waitSentTo(mac, pkg, (base) => base === expected, 'the Mac to be sent elsewhere')).toBe(expected);
      expect((await get(`${expected ?? primary.url}/d/${pkg}/x.pvmp`, mac)).sha256).toBe(pkg);
    }

    // The right bytes again: the next probe compares that copy first, passes, and clears it.
    await replaceStored(b.dataDir, sha, right);
    const up = await checkUntil('up');
    expect(up.state).toBe('up');
    expect(up.badCopies).toEqual([]);
    expect(await waitSentTo(mac, sha, (base) => base === b.url, 'the replica to be taken back')).toBe(b.url);
  });

  it('a replica killed with -9 is skipped within one check interval and taken back when it returns', async () => {
    const mac = macOf(b);
    const link = `${primary.url}/d/${goldenSha}/Golden.pvmp`;
    await b.kill9();
    const killedAt = Date.now();
    const down = await waitForValue(
      async () => {
        const candidate = (await route(primary, admin, mac, goldenSha)).candidates.find((c) => c.publicUrl === b.url);
        return candidate?.excluded ? candidate : undefined;
      },
      { what: 'the primary to take the killed replica out', timeoutMs: 15_000, intervalMs: 50 },
    );
    const outAfterMs = Date.now() - killedAt;
    // Its probe failed (down), or, on a round that came late, its missed heartbeats took it out first (stale).
    expect(['down', 'stale']).toContain(down.excluded);
    expect(down.detail).toMatch(/cannot be reached|heartbeat/);
    // One check interval, and slack for a probe round on a loaded machine.
    expect(outAfterMs).toBeLessThan(INTERVAL_MS + 3000);
    // The download path decides with rows at most TABLE_TTL_MS old.
    expect(await waitSentTo(mac, goldenSha, (base) => base === a.url, 'the Mac to be sent to the other replica')).toBe(
      a.url,
    );
    expect(Date.now() - killedAt).toBeLessThan(INTERVAL_MS + TABLE_TTL_MS + 3000);
    const skipped = await get(`${a.url}/d/${goldenSha}/Golden.pvmp`, mac);
    expect(skipped.status).toBe(200);
    expect(skipped.sha256).toBe(goldenSha);

    await b.start();
    const back = await waitSentTo(mac, goldenSha, (base) => base === b.url, 'the restarted replica to be taken back');
    expect(back).toBe(b.url);
    const again = await get(link, mac);
    expect(again.headers.location).toBe(`${b.url}/d/${goldenSha}/Golden.pvmp`);
    expect((await get(again.headers.location!, mac)).sha256).toBe(goldenSha);
  });

  it('replicas whose heartbeats stop (their token revoked) stay out, though they still answer the probes', async () => {
    const revoked = await api(primary.url, admin, 'DELETE', '/tokens/branch');
    expect(revoked.status, revoked.text).toBe(204);
    const mark = primary.log().length;
    await waitForValue(
      async () => ((await replicas(primary, admin)).every((r) => r.state !== 'up') ? true : undefined),
      { what: 'the silent replicas to be taken out', timeoutMs: 15_000, intervalMs: 100 },
    );
    // Several probe rounds later: still out, for their silence, and never said to be back.
    await sleep(4 * INTERVAL_MS);
    for (const r of await replicas(primary, admin)) {
      expect(r.state).not.toBe('up');
      expect(r.reason).toMatch(/heartbeat/);
    }
    const verdicts = primary
      .log()
      .slice(mark)
      .split('\n')
      .filter((l) => l.includes('replica passed its check'));
    expect(verdicts).toEqual([]);
    expect(await sentTo(primary, goldenSha, BRANCH_MAC)).toBeNull();
  });
});
