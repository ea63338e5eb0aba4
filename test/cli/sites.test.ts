/**
 * `goldmirror site` and `goldmirror replica`: the real CLI in child processes on the data dir of a running
 * primary, with a real replica (its own goldmirror, joined by sync and heartbeat) in site `branch`, and a
 * second replica that reported itself by heartbeat but does not listen, so that the route explanation has
 * one replica to choose and one to pass over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { createImage } from '../../server/services/images.js';
import { acceptHeartbeat, listReplicas, type ReplicaView } from '../../server/services/replicas.js';
import type { RouteDecision } from '../../server/services/routing.js';
import type { SiteView } from '../../server/services/sites.js';
import { anyString, closedPort } from '../helpers/api.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { freePort, putBlob, startMirror, testBytes, TEST_FETCH_ALLOW, type TestMirror } from '../helpers/env.js';
import { httpRequest } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

type SiteSummary = SiteView & { replicas: number; replicasUp: number };
type Route = RouteDecision & { packageStored: boolean; location: string | null };

/** The Mac in the branch office, and one in no office. */
const BRANCH_MAC = '127.0.0.2';
const OTHER_MAC = '127.0.0.9';

describe('goldmirror site and replica commands', () => {
  let primary: TestMirror;
  let replica: TestMirror | undefined;
  let env: Record<string, string>;
  let sha: string;
  let replicaUrl: string;
  let realId: number;
  let deadId: number;
  let deadUrl: string;

  const cli = (...args: string[]): Promise<CliResult> => runCli(args, env);
  const ok = async (...args: string[]): Promise<string> => {
    const res = await cli(...args);
    expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
    return res.stdout;
  };
  const json = async <T>(...args: string[]): Promise<T> => JSON.parse(await ok(...args, '--json')) as T;
  /** A failure: the exit code, one line on stderr (plus the usage after a usage error), nothing on stdout. */
  const fails = async (code: number, message: RegExp, ...args: string[]): Promise<void> => {
    const res = await cli(...args);
    expect({ args, code: res.code, stdout: res.stdout }).toEqual({ args, code, stdout: '' });
    expect(res.stderr).toMatch(/^goldmirror: error: /);
    const [first, ...rest] = res.stderr.trimEnd().split('\n');
    expect(first).toMatch(message);
    if (code === 2 && rest.length) expect(rest[0]).toMatch(/^usage: goldmirror /);
    else expect(rest).toEqual([]);
  };

  beforeAll(async () => {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    // Scheduled probes are left to the test (replica check); a heartbeat still triggers one.
    primary = await startMirror({ port, publicUrl, replicaCheckIntervalMs: 3_600_000 });
    sha = await putBlob(primary, testBytes(200_000, 'sites-cli'), 'golden.pvmp');
    await createImage(primary.runtime, cliActor, { name: 'Golden', arm64: { enabled: true, sha256: sha } }, publicUrl);
    env = {
      MIRROR_DATA_DIR: primary.dir,
      MIRROR_PUBLIC_URL: publicUrl,
      MIRROR_MIN_FREE_BYTES: '0',
      // `replica check` probes replicas on loopback, as the primary's own job does in these tests.
      MIRROR_FETCH_ALLOW: TEST_FETCH_ALLOW,
    };
  });
  afterAll(async () => {
    await replica?.close();
    await primary?.close();
  });

  it('site create, list, update and delete, in text and --json', async () => {
    expect(await ok('site', 'create', 'branch', '--cidr', BRANCH_MAC, '--cidr', 'FD00:2:0::/64')).toBe(
      'created site branch: 127.0.0.2/32, fd00:2::/64; redirects on\n',
    );
    const hq = await json<SiteView>('site', 'create', 'hq', '--cidr', '10.1.0.0/16', '--redirects', 'off');
    expect(hq).toEqual({
      name: 'hq',
      networks: ['10.1.0.0/16'],
      redirects: false,
      createdAt: anyString(),
      updatedAt: anyString(),
    });
    expect((await ok('site', 'list')).split('\n')).toEqual([
      'NAME    NETWORKS                   REDIRECTS  REPLICAS',
      'branch  127.0.0.2/32, fd00:2::/64  on         none',
      'hq      10.1.0.0/16                off        none',
      '',
    ]);
    // --cidr replaces the list.
    expect(
      await ok('site', 'update', 'hq', '--cidr', '10.9.0.0/16', '--cidr', '10.8.0.0/24', '--redirects', 'on'),
    ).toBe('updated site hq: 10.9.0.0/16, 10.8.0.0/24; redirects on\n');
    expect(await ok('site', 'delete', 'hq')).toBe('deleted site hq; its Macs are served by this mirror now\n');
  });

  it('site commands refuse bad input with one clear line: bad CIDR, a taken network, unknown site, bad usage', async () => {
    await Promise.all([
      fails(2, /10\.0\.0\.1\/8.*did you mean 10\.0\.0\.0\/8\?/, 'site', 'create', 'lab', '--cidr', '10.0.0.1/8'),
      fails(
        1,
        /the network 127\.0\.0\.2\/32 belongs to site "branch" already/,
        'site',
        'create',
        'lab',
        '--cidr',
        '127.0.0.2',
      ),
      fails(1, /^goldmirror: error: no site named "nowhere"$/, 'site', 'update', 'nowhere', '--redirects', 'off'),
      fails(2, /site create needs at least one --cidr/, 'site', 'create', 'lab'),
    ]);
  });

  it('site route: a Mac in no site is served here, and says so', async () => {
    expect(await ok('site', 'route', '--ip', OTHER_MAC, '--sha256', sha.toUpperCase())).toBe(
      `client ${OTHER_MAC} is in no site\ndecision: served here: the client is in no site\n`,
    );
  });

  it('replica list shows a joined replica and one that reported but does not answer; site list counts them', async () => {
    const { token } = await createApiToken(primary.runtime, cliActor, 'branch-replica', 'sync');
    const port = await freePort();
    replicaUrl = `http://127.0.0.1:${port}`;
    replica = await startMirror({
      port,
      publicUrl: replicaUrl,
      syncFrom: primary.url,
      syncToken: token,
      site: 'branch',
      heartbeatIntervalMs: 600_000,
      syncIntervalMs: 3_600_000,
    });
    await waitFor(async () => (await listReplicas(primary.runtime)).some((r) => r.state === 'up' && r.verified === 1), {
      what: 'the replica to sync and be up with the package',
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    deadUrl = `http://127.0.0.1:${await closedPort()}`;
    const beat = await acceptHeartbeat({ ...primary.runtime, publicUrl: primary.runtime.config.publicUrl }, 'gone', {
      publicUrl: deadUrl,
      site: 'branch',
      version: '0.0.1-test',
      mirrorId: 'dead-replica',
      heartbeatMs: 600_000,
      verified: [sha],
    });
    deadId = beat.replicaId;

    const [replicas, text, sites] = await Promise.all([
      json<ReplicaView[]>('replica', 'list'),
      ok('replica', 'list'),
      json<SiteSummary[]>('site', 'list'),
    ]);
    const real = replicas.find((r) => r.publicUrl === replicaUrl)!;
    realId = real.id;
    expect(real).toMatchObject({ site: 'branch', state: 'up', reason: null, enabled: true, weight: 100, verified: 1 });
    expect(real.lacks).toEqual([]);
    expect(replicas.find((r) => r.id === deadId)).toMatchObject({
      publicUrl: deadUrl,
      state: 'pending',
      reason: 'not checked yet',
      version: '0.0.1-test',
      lastCheckAt: null,
    });
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^ID +URL +SITE +VERSION +WEIGHT +LAST HEARTBEAT +LAST SYNC +LAST CHECK +VERIFIED +LACKS +STATE$/,
    );
    expect(lines.find((l) => l.startsWith(`${realId} `))).toMatch(
      new RegExp(`^${realId} +${replicaUrl} +branch +\\S+ +100 +\\S+Z +\\S+Z +\\S+Z +1 +0 +up$`),
    );
    expect(lines.find((l) => l.startsWith(`${deadId} `))).toMatch(
      new RegExp(
        `^${deadId} +${deadUrl} +branch +0\\.0\\.1-test +100 +\\S+Z +never +never +1 +0 +pending \\(not checked yet\\)$`,
      ),
    );
    // The round trip's --json list: hq is gone, branch counts its replicas.
    expect(sites).toEqual([
      {
        name: 'branch',
        networks: ['127.0.0.2/32', 'fd00:2::/64'],
        redirects: true,
        createdAt: anyString(),
        updatedAt: anyString(),
        replicas: 2,
        replicasUp: 1,
      },
    ]);
  });

  it('site route: a Mac of the site goes to the replica holding the package; the other is passed over, with why', async () => {
    const [text, route] = await Promise.all([
      ok('site', 'route', '--ip', BRANCH_MAC, '--sha256', sha),
      json<Route>('site', 'route', '--ip', BRANCH_MAC, '--sha256', sha),
    ]);
    expect(route).toMatchObject({
      client: BRANCH_MAC,
      site: 'branch',
      network: '127.0.0.2/32',
      replica: { id: realId, publicUrl: replicaUrl },
      location: `${replicaUrl}/d/${sha}/golden.pvmp`,
      reason: null,
      packageStored: true,
    });
    expect(route.candidates).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: realId, state: 'up', excluded: null, score: expect.any(Number) as number }),
        expect.objectContaining({ id: deadId, state: 'pending', excluded: 'pending', detail: 'not checked yet' }),
      ]),
    );
    const lines = text.trimEnd().split('\n');
    expect(lines.slice(0, 4)).toEqual([
      `client ${BRANCH_MAC} is in site branch (network 127.0.0.2/32)`,
      `decision: redirect (302) to replica ${realId}: ${replicaUrl}/d/${sha}/golden.pvmp`,
      'replicas of site branch:',
      expect.stringMatching(/^ {2}ID +URL +STATE +WEIGHT +VERDICT$/) as string,
    ]);
    expect(lines.find((l) => l.startsWith(`  ${realId} `))).toMatch(/ up +100 +chosen \(score [\d.e+]+\)$/);
    expect(lines.find((l) => l.startsWith(`  ${deadId} `))).toMatch(
      / pending +100 +passed over \(pending\): not checked yet$/,
    );
    // The explanation is what the download path does (its rows are re-read within ROUTING_TABLE_TTL_MS).
    await waitFor(
      async () => {
        const download = await httpRequest(`${primary.url}/d/${sha}/golden.pvmp`, { localAddress: BRANCH_MAC });
        return download.status === 302 && download.headers.location === `${replicaUrl}/d/${sha}/golden.pvmp`;
      },
      { what: 'the primary to send the branch Mac to the replica', timeoutMs: 10_000, intervalMs: 250 },
    );
  });

  it('replica check probes now: a replica that answers passes, one that does not fails with exit 1', async () => {
    const [passed, failed] = await Promise.all([
      cli('replica', 'check', String(realId)),
      cli('replica', 'check', String(deadId)),
    ]);
    expect(passed).toEqual({
      code: 0,
      stdout: `check of replica ${realId} ${replicaUrl}: passed: serves package ${sha.slice(0, 12)}\nstate now: up\n`,
      stderr: '',
    });
    expect(failed).toEqual({
      code: 1,
      stdout:
        `check of replica ${deadId} ${deadUrl}: failed: cannot be reached: ECONNREFUSED\n` +
        'state now: down (cannot be reached: ECONNREFUSED)\n',
      stderr: `goldmirror: replica ${deadId} failed its check; no Mac is sent to it until it passes\n`,
    });
  });

  it('replica disable and update change the decision; a disabled replica is not checked; bad values are refused', async () => {
    expect(await ok('replica', 'disable', String(realId))).toBe(
      `replica ${realId} ${replicaUrl} (site branch): disabled (an admin disabled it); disabled, weight 100\n`,
    );
    const [route] = await Promise.all([
      json<Route>('site', 'route', '--ip', BRANCH_MAC, '--sha256', sha),
      fails(
        1,
        /^goldmirror: error: replica \d+ is disabled; enable it first \(goldmirror replica enable \d+\)$/,
        'replica',
        'check',
        String(realId),
      ),
      fails(2, /^goldmirror: error: invalid replica: weight: /, 'replica', 'update', String(realId), '--weight', '0'),
    ]);
    expect(route).toMatchObject({ replica: null, reason: 'no replica of site branch is up with a verified copy' });
    expect(route.candidates.find((c) => c.id === realId)).toMatchObject({
      state: 'disabled',
      excluded: 'disabled',
      detail: 'an admin disabled it',
    });
    expect(route.candidates.find((c) => c.id === deadId)).toMatchObject({
      state: 'down',
      excluded: 'down',
      detail: 'cannot be reached: ECONNREFUSED',
    });
    expect(
      await json<ReplicaView>('replica', 'update', String(realId), '--enabled', 'on', '--weight', '250'),
    ).toMatchObject({
      id: realId,
      enabled: true,
      weight: 250,
      state: 'up',
    });
  });

  it("site route with the site's redirects off: the replica is eligible but the Mac is served here", async () => {
    await ok('site', 'update', 'branch', '--redirects', 'off');
    const text = await ok('site', 'route', '--ip', BRANCH_MAC, '--sha256', sha);
    expect(text).toContain('decision: served here: redirects of site branch are switched off\n');
    expect(text).toMatch(
      new RegExp(`\\n {2}${realId} .* up +250 +eligible \\(score [\\d.e+]+\\), but not used \\(see the decision\\)\\n`),
    );
    expect(text).toMatch(
      new RegExp(`\\n {2}${deadId} .* down +100 +passed over \\(down\\): cannot be reached: ECONNREFUSED\\n`),
    );
  });

  it('replica forget removes it from the list; an unknown id says so; site list names sites only replicas know', async () => {
    expect(await ok('replica', 'forget', String(deadId))).toBe(
      `forgot replica ${deadId} ${deadUrl}; if it still runs, its next heartbeat lists it again (disable it to keep Macs away from it)\n`,
    );
    const attic = await acceptHeartbeat({ ...primary.runtime, publicUrl: primary.runtime.config.publicUrl }, 'attic', {
      publicUrl: 'http://127.0.0.1:9',
      site: 'attic',
      version: '0.0.1-test',
      mirrorId: 'attic-replica',
      heartbeatMs: 600_000,
      verified: [],
    });
    const [replicas, sites] = await Promise.all([
      json<ReplicaView[]>('replica', 'list'),
      ok('site', 'list'),
      fails(1, new RegExp(`^goldmirror: error: no replica with id ${deadId}$`), 'replica', 'forget', String(deadId)),
    ]);
    expect(replicas.map((r) => r.id).sort((a, b) => a - b)).toEqual([realId, attic.replicaId]);
    expect(sites.split('\n')).toEqual([
      'NAME    NETWORKS                   REDIRECTS  REPLICAS',
      'branch  127.0.0.2/32, fd00:2::/64  off        1 (1 up)',
      'replicas report sites not defined here (they get no Mac until created): attic',
      '',
    ]);
  });
});
