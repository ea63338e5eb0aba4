/**
 * Sites and replicas through the API of real servers: sites CRUD with every
 * validation error, audit sentences, replica heartbeats (sync scope),
 * an admin's switches, checks on demand, and the explain route with each
 * reason a replica is passed over and the weighted, sticky choice among
 * eligible ones. Replicas here are real mirrors holding the packages; the
 * heartbeats are sent by the test, so each field can be varied.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import type { ReplicaView } from '../../server/services/replicas.js';
import type { Candidate, RouteDecision } from '../../server/services/routing.js';
import type { SiteView } from '../../server/services/sites.js';
import type { Sha256 } from '../../storage/digest.js';
import {
  anyNumber,
  anyString,
  bootstrapTestAdmin,
  call,
  closedPort,
  expectError,
  issueToken,
  matching,
  type ApiResult,
} from '../helpers/api.js';
import { RANGE_CHECK_EVERY } from '../../server/jobs/replica-checks.js';
import { sendHeartbeat } from '../../server/jobs/replica-heartbeat.js';
import { packageVersion } from '../../server/version.js';
import { fakeClock, type FakeClock } from '../helpers/clock.js';
import { freePort, putBlob, sha256Hex, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { waitForValue } from '../helpers/wait.js';

type Route = RouteDecision & { packageStored: boolean; location: string | null };

/** A mirror on `dir` (a fresh one unless given) whose services read `clock`. */
function startClockedMirror(clock: FakeClock, overrides: Record<string, unknown>, dir?: string): Promise<TestMirror> {
  return startMirror(overrides, { clock, dir });
}

/** A primary on a port known in advance, so MIRROR_PUBLIC_URL can name it. */
async function startPrimary(clock: FakeClock, overrides: Record<string, unknown> = {}): Promise<TestMirror> {
  const port = await freePort();
  return startClockedMirror(clock, {
    port,
    publicUrl: `http://127.0.0.1:${port}`,
    // Probes run when a test asks (or after a heartbeat), never behind its back.
    replicaCheckIntervalMs: 3_600_000,
    ...overrides,
  });
}

/** A TCP server that accepts connections and never answers: a probe of it stays in flight. */
async function blackHole(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

interface FieldProblem {
  field: string;
  message: string;
}

/** The `fields` of a 400 VALIDATION_FAILED answer (fails the test on any other answer). */
function fieldsOf(res: ApiResult): FieldProblem[] {
  return expectError(res, 400, 'VALIDATION_FAILED').fields as FieldProblem[];
}

interface Heartbeat {
  publicUrl: string;
  site: string;
  version: string;
  mirrorId: string;
  heartbeatMs: number;
  syncedAt?: number | null;
  verified: string[];
}

describe('sites API', () => {
  const clock = fakeClock(Date.now());
  let p: TestMirror;
  let admin: string;
  let reader: string;
  let syncer: string;
  const api = <T = unknown>(method: string, path: string, json?: unknown, token = admin) =>
    call<T>(p.url, method, `/api/v1${path}`, { token, json });

  beforeAll(async () => {
    p = await startPrimary(clock);
    await bootstrapTestAdmin(p);
    admin = await issueToken(p, 'sites-admin');
    reader = (await createApiToken(p.runtime, cliActor, 'dashboard', 'read')).token;
    syncer = (await createApiToken(p.runtime, cliActor, 'branch', 'sync')).token;
  });
  afterAll(async () => {
    await p?.close();
  });

  it('creates, lists, shows, changes and deletes a site; networks are stored canonical and once each', async () => {
    expect((await api('GET', '/sites')).body).toEqual([]);
    const created = await api<SiteView>('POST', '/sites', {
      name: ' hq ',
      networks: ['10.1.0.0/16', 'FD00:0001::/64', '10.1.0.0/16', ' 10.9.8.7 '],
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toEqual({
      name: 'hq',
      networks: ['10.1.0.0/16', 'fd00:1::/64', '10.9.8.7/32'],
      redirects: true,
      createdAt: anyString(),
      updatedAt: anyString(),
    });
    expect(created.body.createdAt).toBe(new Date(clock.now()).toISOString());
    const branch = await api<SiteView>('POST', '/sites', {
      name: 'branch-2.b_x',
      networks: ['10.2.0.0/16'],
      redirects: false,
    });
    expect(branch.status, branch.text).toBe(201);
    expect(branch.body.redirects).toBe(false);

    expect((await api<SiteView[]>('GET', '/sites')).body.map((s) => s.name)).toEqual(['branch-2.b_x', 'hq']);
    expect((await api<SiteView>('GET', '/sites/hq')).body).toEqual(created.body);

    clock.advance(1000);
    const changed = await api<SiteView>('PATCH', '/sites/hq', { networks: ['10.1.0.0/16', '10.3.0.0/16'] });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body).toMatchObject({ name: 'hq', networks: ['10.1.0.0/16', '10.3.0.0/16'], redirects: true });
    expect(changed.body.updatedAt).toBe(new Date(clock.now()).toISOString());
    expect(changed.body.createdAt).toBe(created.body.createdAt);
    // The switch alone leaves the networks.
    const off = await api<SiteView>('PATCH', '/sites/hq', { redirects: false });
    expect(off.body).toMatchObject({ networks: ['10.1.0.0/16', '10.3.0.0/16'], redirects: false });
    expect((await api<SiteView>('PATCH', '/sites/hq', { redirects: true })).body.redirects).toBe(true);

    expect((await api('DELETE', '/sites/branch-2.b_x')).status).toBe(204);
    expectError(await api('GET', '/sites/branch-2.b_x'), 404, 'NOT_FOUND');
    expect((await api<SiteView[]>('GET', '/sites')).body.map((s) => s.name)).toEqual(['hq']);
  });

  it('refuses a bad site with 400 VALIDATION_FAILED naming each bad field', async () => {
    expect(fieldsOf(await api('POST', '/sites', {}))).toEqual([
      { field: 'name', message: 'must be a string' },
      { field: 'networks', message: 'must be a list of CIDR blocks' },
    ]);
    const nameRule = 'must be 1-64 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit';
    for (const name of ['HQ', '-hq', 'h q', 'a'.repeat(65), '', 'hq/1', 'zürich'])
      expect(fieldsOf(await api('POST', '/sites', { name, networks: ['10.5.0.0/16'] })), name).toEqual([
        { field: 'name', message: nameRule },
      ]);
    expect(fieldsOf(await api('POST', '/sites', { name: 7, networks: ['10.5.0.0/16'] }))).toEqual([
      { field: 'name', message: 'must be a string' },
    ]);
    // GET /sites/route is the explain route: no site may be called that.
    const reserved = await api('POST', '/sites', { name: 'route', networks: ['10.5.0.0/16'] });
    expect(fieldsOf(reserved)).toEqual([{ field: 'name', message: 'must not be "route" (the API uses that path)' }]);
    expect(expectError(reserved, 400, 'VALIDATION_FAILED').message).toBe(
      'invalid site: name: must not be "route" (the API uses that path)',
    );

    const networks = async (value: unknown) => fieldsOf(await api('POST', '/sites', { name: 'lab', networks: value }));
    expect(await networks([])).toEqual([
      { field: 'networks', message: 'must name at least one network (e.g. 10.2.0.0/16)' },
    ]);
    expect(await networks('10.5.0.0/16')).toEqual([{ field: 'networks', message: 'must be a list of CIDR blocks' }]);
    expect(await networks(['10.5.0.0/16', 5])).toEqual([{ field: 'networks.1', message: 'must be a string' }]);
    expect(await networks(['10.5.1.0/16', 'lab-net', 'fd00::/200'])).toEqual([
      { field: 'networks', message: '"10.5.1.0/16" has bits set past its /16 prefix; did you mean 10.5.0.0/16?' },
      { field: 'networks', message: '"lab-net" is not an IP address or CIDR block (e.g. 10.0.0.0/8 or fd00::/8)' },
      { field: 'networks', message: '"fd00::/200" has an invalid prefix length (0 to 128 for IPv6)' },
    ]);
    expect((await networks(['1'.repeat(101)]))[0]).toEqual({
      field: 'networks.0',
      message: 'must be at most 100 characters',
    });
    const many = Array.from({ length: 257 }, (_, i) => `10.${Math.floor(i / 256) + 100}.${i % 256}.0/24`);
    expect(await networks(many)).toEqual([{ field: 'networks', message: 'must hold at most 256 networks' }]);

    expect(fieldsOf(await api('POST', '/sites', { name: 'lab', networks: ['10.5.0.0/16'], redirects: 'yes' }))).toEqual(
      [{ field: 'redirects', message: 'must be true or false' }],
    );
    const extra = fieldsOf(await api('POST', '/sites', { name: 'lab', networks: ['10.5.0.0/16'], replicas: [] }));
    expect(extra).toEqual([{ field: 'site', message: matching(/replicas/) }]);

    // PATCH: the same rules, and no renaming.
    expect(fieldsOf(await api('PATCH', '/sites/hq', { networks: [] }))).toEqual([
      { field: 'networks', message: 'must name at least one network (e.g. 10.2.0.0/16)' },
    ]);
    expect(fieldsOf(await api('PATCH', '/sites/hq', { name: 'head-office' }))).toEqual([
      { field: 'site', message: matching(/name/) },
    ]);
    expect(fieldsOf(await api('PATCH', '/sites/hq', { redirects: null }))).toEqual([
      { field: 'redirects', message: 'must be true or false' },
    ]);
    // A body that is not JSON is no site at all.
    expectError(
      await call(p.url, 'POST', '/api/v1/sites', { token: admin, raw: 'name=lab', contentType: 'application/json' }),
      400,
      'BAD_REQUEST',
    );
    expect((await api<SiteView[]>('GET', '/sites')).body.map((s) => s.name)).toEqual(['hq']);
  });

  it('refuses a taken name or network with 409 and an unknown site with 404', async () => {
    const taken = expectError(
      await api('POST', '/sites', { name: 'hq', networks: ['10.6.0.0/16'] }),
      409,
      'NAME_TAKEN',
    );
    expect(taken.message).toBe('a site named "hq" already exists');

    // The same block in another spelling is the same block.
    const network = await api('POST', '/sites', { name: 'annex', networks: ['10.6.0.0/16', '10.3.0.0/16'] });
    const error = expectError(network, 409, 'NETWORK_TAKEN');
    expect(error.message).toBe('the network 10.3.0.0/16 belongs to site "hq" already');
    expect(error).toMatchObject({ network: '10.3.0.0/16', site: 'hq' });
    // A narrower block inside another site's is fine: the most specific one wins.
    const annex = await api<SiteView>('POST', '/sites', {
      name: 'annex',
      networks: ['10.3.7.0/24', 'fd00:1:0:0::/64'],
    });
    expect(annex.status, annex.text).toBe(201);
    expect(annex.body.networks).toEqual(['10.3.7.0/24', 'fd00:1::/64']);
    expect(
      expectError(await api('POST', '/sites', { name: 'lab', networks: ['FD00:1::/64'] }), 409, 'NETWORK_TAKEN')
        .message,
    ).toBe('the network fd00:1::/64 belongs to site "annex" already');
    // PATCH checks against the other sites only: a site keeps its own networks.
    expectError(await api('PATCH', '/sites/hq', { networks: ['10.3.7.0/24'] }), 409, 'NETWORK_TAKEN');
    expect((await api('PATCH', '/sites/hq', { networks: ['10.3.0.0/16', '10.1.0.0/16'] })).status).toBe(200);
    expect((await api<SiteView[]>('GET', '/sites')).body.map((s) => [s.name, s.networks])).toEqual([
      ['annex', ['10.3.7.0/24', 'fd00:1::/64']],
      ['hq', ['10.3.0.0/16', '10.1.0.0/16']],
    ]);

    for (const [method, json] of [
      ['GET', undefined],
      ['PATCH', { redirects: false }],
      ['DELETE', undefined],
    ] as const)
      expect(expectError(await api(method, '/sites/nowhere', json), 404, 'NOT_FOUND').message).toBe(
        'no site named "nowhere"',
      );
    expect((await api('DELETE', '/sites/annex')).status).toBe(204);
    expectError(await api('DELETE', '/sites/annex'), 404, 'NOT_FOUND');
  });

  it('a read token lists sites but cannot change them; a sync token cannot even list them', async () => {
    expect((await api('GET', '/sites', undefined, reader)).status).toBe(200);
    expect((await api('GET', '/sites/hq', undefined, reader)).status).toBe(200);
    const refused = expectError(
      await api('POST', '/sites', { name: 'lab', networks: ['10.7.0.0/16'] }, reader),
      403,
      'TOKEN_SCOPE',
    );
    expect(refused.message).toBe('the API token "dashboard" has scope "read"; POST /api/v1/sites needs scope "admin"');
    expectError(await api('PATCH', '/sites/hq', { redirects: false }, reader), 403, 'TOKEN_SCOPE');
    expectError(await api('DELETE', '/sites/hq', undefined, reader), 403, 'TOKEN_SCOPE');
    expectError(await api('GET', '/sites', undefined, syncer), 403, 'TOKEN_SCOPE');
    expectError(await call(p.url, 'GET', '/api/v1/sites'), 401, 'UNAUTHORIZED');
  });

  it('records each change in the audit log, and the history reads it as sentences', async () => {
    const res = await api<Array<{ action: string; target: string; details: unknown; sentence: string }>>(
      'GET',
      '/audit?q=site',
    );
    expect(res.status, res.text).toBe(200);
    const entries = res.body.filter((e) => e.action.startsWith('site.')).reverse();
    expect(entries.map((e) => [e.action, e.target, e.sentence])).toEqual([
      ['site.create', 'site:hq', 'API token “sites-admin” created site “hq” for 10.1.0.0/16, fd00:1::/64, 10.9.8.7/32'],
      [
        'site.create',
        'site:branch-2.b_x',
        'API token “sites-admin” created site “branch-2.b_x” for 10.2.0.0/16, with redirects switched off',
      ],
      ['site.update', 'site:hq', 'API token “sites-admin” changed site “hq”: networks → 10.1.0.0/16, 10.3.0.0/16'],
      ['site.update', 'site:hq', 'API token “sites-admin” changed site “hq”: redirects switched off'],
      ['site.update', 'site:hq', 'API token “sites-admin” changed site “hq”: redirects switched on'],
      ['site.delete', 'site:branch-2.b_x', 'API token “sites-admin” deleted site “branch-2.b_x”'],
      ['site.create', 'site:annex', 'API token “sites-admin” created site “annex” for 10.3.7.0/24, fd00:1::/64'],
      ['site.update', 'site:hq', 'API token “sites-admin” changed site “hq”: networks → 10.3.0.0/16, 10.1.0.0/16'],
      ['site.delete', 'site:annex', 'API token “sites-admin” deleted site “annex”'],
    ]);
    expect(entries[0]!.details).toEqual({ networks: ['10.1.0.0/16', 'fd00:1::/64', '10.9.8.7/32'], redirects: true });
    // Refused requests changed nothing and wrote nothing.
    expect(entries).toHaveLength(9);
  });
});

describe('replica heartbeats and admin switches', () => {
  const clock = fakeClock(Date.now());
  let p: TestMirror;
  let r: TestMirror;
  let admin: string;
  let reader: string;
  let syncer: string;
  let a: string;
  let b: string;
  let c: string;
  const api = <T = unknown>(method: string, path: string, json?: unknown, token = admin) =>
    call<T>(p.url, method, `/api/v1${path}`, { token, json });
  const beat = (changes: Partial<Heartbeat> = {}, token = syncer) =>
    api<{ replica: ReplicaView; siteKnown: boolean }>(
      'POST',
      '/replicas/heartbeat',
      {
        publicUrl: r.url,
        site: 'hq',
        version: '0.1.0',
        mirrorId: 'replica-r',
        heartbeatMs: 30_000,
        verified: [a],
        ...changes,
      },
      token,
    );
  /** The replica once the probe its heartbeat started has recorded a verdict. */
  const settled = (id: number) =>
    waitForValue(
      async () => {
        const view = (await api<ReplicaView>('GET', `/replicas/${id}`)).body;
        return view.state === 'pending' ? undefined : view;
      },
      { what: 'the probe after a heartbeat' },
    );

  beforeAll(async () => {
    p = await startPrimary(clock);
    r = await startMirror();
    admin = await issueToken(p, 'replicas-admin');
    reader = (await createApiToken(p.runtime, cliActor, 'dashboard', 'read')).token;
    syncer = (await createApiToken(p.runtime, cliActor, 'branch', 'sync')).token;
    const bytes = [testBytes(90_000, 'hb-a'), testBytes(5_000, 'hb-b'), testBytes(7_000, 'hb-c')];
    const digests = await Promise.all(bytes.map((d, i) => putBlob(p, d, `p${i}.pvmp`)));
    [a, b, c] = [digests[0]!, digests[1]!, digests[2]!];
    // The replica holds a and b, not c.
    await putBlob(r, bytes[0]!, 'a.pvmp');
    await putBlob(r, bytes[1]!, 'b.pvmp');
  });
  afterAll(async () => {
    await p?.close();
    await r?.close();
  });

  it('refuses a bad heartbeat with 400 VALIDATION_FAILED naming each bad field', async () => {
    const fields = async (changes: Record<string, unknown>) => fieldsOf(await beat(changes));
    const url = 'must be an http:// or https:// URL without credentials, query or fragment';
    for (const publicUrl of [
      'ftp://127.0.0.1:21',
      'http://user:pw@127.0.0.1:8080',
      'http://127.0.0.1:8080/?x=1',
      'http://127.0.0.1:8080/#top',
      'branch-mirror',
      '',
    ])
      expect(await fields({ publicUrl }), publicUrl).toEqual([{ field: 'publicUrl', message: url }]);
    expect(await fields({ publicUrl: `http://${'a'.repeat(500)}.lan` })).toEqual([
      { field: 'publicUrl', message: 'must be at most 500 characters' },
    ]);
    expect(await fields({ site: 'Branch' })).toEqual([
      {
        field: 'site',
        message: 'must be 1-64 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit',
      },
    ]);
    expect(await fields({ mirrorId: 'not/an id' })).toEqual([
      { field: 'mirrorId', message: 'must be 1-64 letters, digits or dashes' },
    ]);
    expect((await fields({ version: '' }))[0]).toMatchObject({ field: 'version' });
    expect((await fields({ heartbeatMs: 999 }))[0]).toMatchObject({ field: 'heartbeatMs' });
    expect((await fields({ heartbeatMs: 1500.5 }))[0]).toMatchObject({ field: 'heartbeatMs' });
    expect((await fields({ syncedAt: -1 }))[0]).toMatchObject({ field: 'syncedAt' });
    expect(await fields({ verified: [a, 'not-a-digest'] })).toEqual([
      { field: 'verified.1', message: 'must be 64 hexadecimal digits' },
    ]);
    const tooMany = Array.from({ length: 10_001 }, (_, i) => sha256Hex(Buffer.from(String(i))));
    expect(await fields({ verified: tooMany })).toEqual([
      { field: 'verified', message: 'must list at most 10000 packages' },
    ]);
    expect((await fields({ role: 'primary' }))[0]).toMatchObject({ field: 'heartbeat', message: matching(/role/) });
    // Several at once, each named.
    expect((await fields({ site: 'X', mirrorId: '' })).map((f) => f.field)).toEqual(['site', 'mirrorId']);
    expect((await api<ReplicaView[]>('GET', '/replicas')).body).toEqual([]);
  });

  it('takes a heartbeat from a sync token, and a read or admin token; a sync token may do nothing else here', async () => {
    const first = await beat();
    expect(first.status, first.text).toBe(200);
    expect(first.body).toEqual({
      siteKnown: false,
      replica: {
        id: anyNumber(),
        publicUrl: r.url,
        site: 'hq',
        version: '0.1.0',
        state: 'pending',
        reason: 'not checked yet',
        enabled: true,
        weight: 100,
        heartbeatIntervalMs: 30_000,
        firstSeenAt: new Date(clock.now()).toISOString(),
        lastHeartbeatAt: new Date(clock.now()).toISOString(),
        lastSyncAt: null,
        lastCheckAt: null,
        lastCheck: null,
        verified: 1,
        lacks: expect.any(Array) as string[],
        badCopies: [],
      },
    });
    expect([...first.body.replica.lacks].sort()).toEqual([b, c].sort());
    const id = first.body.replica.id;
    // The heartbeat of a replica not up yet starts a probe at once: the replica serves package a.
    expect(await settled(id)).toMatchObject({ state: 'up', reason: null, lastCheck: 'passed' });

    expectError(await api('GET', '/replicas', undefined, syncer), 403, 'TOKEN_SCOPE');
    expectError(await api('GET', `/replicas/${id}`, undefined, syncer), 403, 'TOKEN_SCOPE');
    expectError(await api('PATCH', `/replicas/${id}`, { enabled: false }, syncer), 403, 'TOKEN_SCOPE');
    expectError(await api('POST', `/replicas/${id}/check`, undefined, syncer), 403, 'TOKEN_SCOPE');
    expectError(await api('DELETE', `/replicas/${id}`, undefined, syncer), 403, 'TOKEN_SCOPE');
    expect((await api('GET', '/replicas', undefined, reader)).status).toBe(200);
    expectError(await api('PATCH', `/replicas/${id}`, { enabled: false }, reader), 403, 'TOKEN_SCOPE');
    // An admin token may send one too; a read token may not (a heartbeat makes a replica Macs are sent to).
    const readBeat = expectError(await beat({}, reader), 403, 'TOKEN_SCOPE');
    expect(readBeat.message).toMatch(/has scope "read"; POST \/api\/v1\/replicas\/heartbeat needs scope "sync"/);
    const byAdmin = await beat({}, admin);
    expect(byAdmin.status).toBe(200);
    // Another token spoke for the URL: no Mac goes there until it passes a check again.
    expect(byAdmin.body.replica.state).toBe('pending');
    expect((await beat()).status).toBe(200);
    expect((await settled(id)).state).toBe('up');
    expectError(await call(p.url, 'POST', '/api/v1/replicas/heartbeat', { json: {} }), 401, 'UNAUTHORIZED');
  });

  it('keys a replica by its public URL: a later heartbeat updates it and replaces its claimed packages', async () => {
    const [before] = (await api<ReplicaView[]>('GET', '/replicas')).body;
    const firstSeen = before!.firstSeenAt;
    expect((await api('POST', '/sites', { name: 'branch', networks: ['10.2.0.0/16'] })).status).toBe(201);
    clock.advance(5_000);
    const syncedAt = clock.now() - 1000;
    // The same URL with a trailing slash, another site, version and claims.
    const again = await beat({
      publicUrl: `${r.url}/`,
      site: 'branch',
      version: '0.2.0',
      mirrorId: 'replica-r2',
      heartbeatMs: 10_000,
      syncedAt,
      verified: [b, c, b],
    });
    expect(again.status, again.text).toBe(200);
    expect(again.body.siteKnown).toBe(true);
    expect(again.body.replica).toMatchObject({
      id: before!.id,
      publicUrl: r.url,
      site: 'branch',
      version: '0.2.0',
      heartbeatIntervalMs: 10_000,
      firstSeenAt: firstSeen,
      lastHeartbeatAt: new Date(clock.now()).toISOString(),
      lastSyncAt: new Date(syncedAt).toISOString(),
      verified: 2,
      lacks: [a],
      // The probe's verdict stays: a heartbeat does not make a replica up or down.
      state: 'up',
    });
    // A heartbeat without syncedAt keeps the last sync time.
    const later = await beat({ publicUrl: r.url, site: 'branch', verified: [] });
    expect(later.body.replica).toMatchObject({ lastSyncAt: new Date(syncedAt).toISOString(), verified: 0 });
    expect([...later.body.replica.lacks].sort()).toEqual([a, b, c].sort());
    expect((await api<ReplicaView[]>('GET', '/replicas')).body).toHaveLength(1);
    // Claims are only ever what the last heartbeat said.
    await beat({ verified: [a] });
  });

  it('refuses a heartbeat from this mirror itself (its own id, or its own MIRROR_PUBLIC_URL) with 409 REPLICA_IS_SELF', async () => {
    // Another goldmirror's request (the hop header) is answered with this mirror's id.
    const head = await fetch(`${p.url}/d/${a}/a.pvmp`, { method: 'HEAD', headers: { 'goldmirror-hop': 'x' } });
    const ownId = head.headers.get('goldmirror-mirror');
    expect(ownId).toMatch(/^[0-9a-f-]{36}$/);
    const self = expectError(
      await beat({ publicUrl: 'http://branch.example:8080', mirrorId: ownId! }),
      409,
      'REPLICA_IS_SELF',
    );
    expect(self.message).toBe(
      'the heartbeat comes from this mirror itself (http://branch.example:8080): MIRROR_SYNC_FROM of a replica must name another goldmirror, and its MIRROR_PUBLIC_URL its own address',
    );
    for (const publicUrl of [p.runtime.config.publicUrl, `${p.runtime.config.publicUrl}/branch`])
      expectError(await beat({ publicUrl, mirrorId: 'other-id' }), 409, 'REPLICA_IS_SELF');
    expect((await api<ReplicaView[]>('GET', '/replicas')).body.map((x) => x.publicUrl)).toEqual([r.url]);
  });

  it('an admin disables, enables and weighs a replica; bad changes are 400, unknown ids 404', async () => {
    const [replica] = (await api<ReplicaView[]>('GET', '/replicas')).body;
    const id = replica!.id;
    const off = await api<ReplicaView>('PATCH', `/replicas/${id}`, { enabled: false });
    expect(off.status, off.text).toBe(200);
    expect(off.body).toMatchObject({ enabled: false, state: 'disabled', reason: 'an admin disabled it' });
    // A heartbeat does not switch it back on.
    expect((await beat()).body.replica.state).toBe('disabled');
    const on = await api<ReplicaView>('PATCH', `/replicas/${id}`, { enabled: true, weight: 300 });
    expect(on.body).toMatchObject({ enabled: true, weight: 300, state: 'up' });
    expect((await api<ReplicaView>('PATCH', `/replicas/${id}`, { weight: 1000 })).body.weight).toBe(1000);

    const fields = async (json: unknown) => fieldsOf(await api('PATCH', `/replicas/${id}`, json));
    expect(await fields({ weight: 1.5 })).toEqual([{ field: 'weight', message: 'must be a whole number' }]);
    expect(await fields({ weight: '300' })).toEqual([{ field: 'weight', message: 'must be a number' }]);
    expect((await fields({ weight: 0 }))[0]).toMatchObject({ field: 'weight' });
    expect((await fields({ weight: 1001 }))[0]).toMatchObject({ field: 'weight' });
    expect(await fields({ enabled: 'no' })).toEqual([{ field: 'enabled', message: 'must be true or false' }]);
    expect((await fields({ publicUrl: 'http://x' }))[0]).toMatchObject({ field: 'replica' });
    expect((await api<ReplicaView>('GET', `/replicas/${id}`)).body.weight).toBe(1000);

    for (const [method, path, json] of [
      ['GET', '/replicas/9999', undefined],
      ['PATCH', '/replicas/9999', { enabled: false }],
      ['POST', '/replicas/9999/check', undefined],
      ['DELETE', '/replicas/9999', undefined],
    ] as const)
      expect(expectError(await api(method, path, json), 404, 'NOT_FOUND').message).toBe('no replica with id 9999');
    expectError(await api('GET', '/replicas/abc'), 404, 'NOT_FOUND');
    expectError(await api('PATCH', '/replicas/0', { enabled: true }), 404, 'NOT_FOUND');
  });

  it('POST /replicas/{id}/check probes at once and answers the replica after the verdict', async () => {
    const [replica] = (await api<ReplicaView[]>('GET', '/replicas')).body;
    clock.advance(1000);
    const checked = await api<ReplicaView>('POST', `/replicas/${replica!.id}/check`);
    expect(checked.status, checked.text).toBe(200);
    expect(checked.body).toMatchObject({
      state: 'up',
      lastCheck: 'passed',
      lastCheckAt: new Date(clock.now()).toISOString(),
    });
    // Claiming a package it does not hold: the probe asks for it, gets 404, and takes the replica out.
    await beat({ verified: [c] });
    const down = await api<ReplicaView>('POST', `/replicas/${replica!.id}/check`);
    expect(down.body).toMatchObject({ state: 'down', reason: `answered HTTP 404 for package ${c.slice(0, 12)}` });
    expect(down.body.lastCheck).toBe(down.body.reason);
    // A heartbeat of a replica that is down starts a probe at once too.
    await beat({ verified: [a, b] });
    await waitForValue(
      async () => ((await api<ReplicaView>('GET', `/replicas/${replica!.id}`)).body.state === 'up' ? true : undefined),
      { what: 'the replica back up after its heartbeat' },
    );
  });

  it('forgets a replica; a running one comes back with its next heartbeat, as new', async () => {
    const [replica] = (await api<ReplicaView[]>('GET', '/replicas')).body;
    expect((await api('DELETE', `/replicas/${replica!.id}`)).status).toBe(204);
    expect((await api<ReplicaView[]>('GET', '/replicas')).body).toEqual([]);
    expectError(await api('GET', `/replicas/${replica!.id}`), 404, 'NOT_FOUND');
    const back = await beat();
    expect(back.body.replica.id).not.toBe(replica!.id);
    expect(back.body.replica).toMatchObject({ weight: 100, enabled: true, state: 'pending' });
    await settled(back.body.replica.id);
  });

  it("sends a replica's own heartbeat (jobs/replica-heartbeat.ts) and reports the primary's refusal in words", async () => {
    const send = (changes: { syncToken?: string; syncFrom?: string; publicUrl?: string }) =>
      sendHeartbeat(
        {
          db: r.runtime.db,
          clock: r.runtime.clock,
          outbound: r.runtime.ingestDeps.outbound!,
          config: {
            syncFrom: p.url,
            syncToken: syncer,
            site: 'hq',
            publicUrl: r.url,
            heartbeatIntervalMs: 15_000,
            ...changes,
          },
        },
        { syncedAt: 1_700_000_000_000 },
      );
    const answer = await send({});
    expect(answer.siteKnown).toBe(false);
    // It claims what its own checks verified (a and b), under its own mirror id and version.
    expect(answer.replica).toMatchObject({
      publicUrl: r.url,
      site: 'hq',
      version: await packageVersion(),
      heartbeatIntervalMs: 15_000,
      lastSyncAt: new Date(1_700_000_000_000).toISOString(),
      verified: 2,
      lacks: [c],
    });
    await expect(send({ syncToken: 'gm_not-a-token' })).rejects.toThrow(
      new RegExp(`^the primary ${p.url} refused the heartbeat \\(HTTP 401 UNAUTHORIZED\\)`),
    );
    await expect(send({ publicUrl: `${p.runtime.config.publicUrl}/` })).rejects.toThrow(
      `the primary ${p.url} refused the heartbeat (HTTP 409 REPLICA_IS_SELF): the heartbeat comes from this mirror itself`,
    );
    const nowhere = `http://127.0.0.1:${await closedPort()}`;
    await expect(send({ syncFrom: nowhere })).rejects.toThrow(`cannot reach the primary ${nowhere}: ECONNREFUSED`);
  });

  it('records replica changes in the audit log as sentences', async () => {
    const res = await api<Array<{ action: string; target: string; sentence: string }>>('GET', '/audit?q=replica');
    const entries = res.body.filter((e) => e.action.startsWith('replica.')).reverse();
    const who = 'API token “replicas-admin”';
    expect(entries.map((e) => [e.action, e.target, e.sentence])).toEqual([
      ['replica.update', `replica:${r.url}`, `${who} disabled replica ${r.url}`],
      ['replica.update', `replica:${r.url}`, `${who} enabled replica ${r.url} and set its weight to 300`],
      ['replica.update', `replica:${r.url}`, `${who} set the weight of replica ${r.url} to 1000`],
      ['replica.delete', `replica:${r.url}`, `${who} forgot replica ${r.url}`],
    ]);
    // Heartbeats are not audited: they are a replica's routine, not an admin's change.
    expect(res.body.some((e) => e.action.includes('heartbeat'))).toBe(false);
  });
});

describe('this mirror’s public address set in the settings (no MIRROR_PUBLIC_URL)', () => {
  let p: TestMirror;
  let r: TestMirror;

  beforeAll(async () => {
    [p, r] = await Promise.all([startMirror(), startMirror()]);
  });
  afterAll(async () => {
    await p?.close();
    await r?.close();
  });

  it('is this mirror too: a heartbeat naming it is REPLICA_IS_SELF, and the explain route passes over a replica there', async () => {
    const admin = await issueToken(p, 'settings-admin');
    const syncer = (await createApiToken(p.runtime, cliActor, 'branch', 'sync')).token;
    const sha = await putBlob(p, testBytes(4_000, 'settings-self'), 'x.pvmp');
    await putBlob(r, testBytes(4_000, 'settings-self'), 'x.pvmp');
    expect(p.runtime.config.publicUrl).toBe('');
    expect(
      (await call(p.url, 'POST', '/api/v1/sites', { token: admin, json: { name: 'hq', networks: ['10.1.0.0/16'] } }))
        .status,
    ).toBe(201);
    const beat = (publicUrl: string) =>
      call<{ replica: ReplicaView }>(p.url, 'POST', '/api/v1/replicas/heartbeat', {
        token: syncer,
        json: { publicUrl, site: 'hq', version: '0.1.0', mirrorId: 'branch-1', heartbeatMs: 60_000, verified: [sha] },
      });
    // A replica registered while the address was another one.
    expect((await beat(r.url)).status).toBe(200);
    const set = await call(p.url, 'PATCH', '/api/v1/settings', { token: admin, json: { publicUrl: r.url } });
    expect(set.status, set.text).toBe(200);
    expectError(await beat(r.url), 409, 'REPLICA_IS_SELF');
    const route = await call<Route>(p.url, 'GET', `/api/v1/sites/route?ip=10.1.2.3&sha256=${sha}`, { token: admin });
    expect(route.body.candidates).toEqual([
      expect.objectContaining({ publicUrl: r.url, excluded: 'self', detail: 'its URL leads back to this mirror' }),
    ]);
  });
});

describe('GET /api/v1/sites/route explains the decision', () => {
  const clock = fakeClock(Date.now());
  let p: TestMirror;
  let r1: TestMirror;
  let r2: TestMirror;
  let admin: string;
  let syncer: string;
  let a: string;
  let b: string;
  const notStored = sha256Hex(Buffer.from('a package this mirror never had'));
  const api = <T = unknown>(method: string, path: string, json?: unknown, token = admin) =>
    call<T>(p.url, method, `/api/v1${path}`, { token, json });
  const explain = async (ip: string, sha256 = a, on: TestMirror = p) => {
    const res = await call<Route>(on.url, 'GET', `/api/v1/sites/route?ip=${encodeURIComponent(ip)}&sha256=${sha256}`, {
      token: admin,
    });
    expect(res.status, res.text).toBe(200);
    return res.body;
  };
  const candidate = (route: Route, url: string): Candidate => {
    const found = route.candidates.find((x) => x.publicUrl === url);
    if (!found) throw new Error(`${url} is not a candidate: ${JSON.stringify(route.candidates)}`);
    return found;
  };
  const beat = async (publicUrl: string, changes: Partial<Heartbeat> = {}) => {
    const res = await api<{ replica: ReplicaView }>(
      'POST',
      '/replicas/heartbeat',
      {
        publicUrl,
        site: 'hq',
        version: '0.1.0',
        mirrorId: `id-${publicUrl.replace(/\W/g, '')}`,
        heartbeatMs: 3_600_000,
        verified: [a],
        ...changes,
      },
      syncer,
    );
    expect(res.status, res.text).toBe(200);
    return res.body.replica;
  };
  const settled = (id: number) =>
    waitForValue(
      async () => {
        const view = (await api<ReplicaView>('GET', `/replicas/${id}`)).body;
        return view.state === 'pending' ? undefined : view;
      },
      { what: 'the probe after a heartbeat' },
    );
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    p = await startPrimary(clock);
    [r1, r2] = await Promise.all([startMirror(), startMirror()]);
    admin = await issueToken(p, 'explain-admin');
    syncer = (await createApiToken(p.runtime, cliActor, 'branches', 'sync')).token;
    const bytes = [testBytes(200_000, 'route-a'), testBytes(3_000, 'route-b')];
    const digests = await Promise.all(bytes.map((d, i) => putBlob(p, d, `p${i}.pvmp`)));
    [a, b] = [digests[0]!, digests[1]!];
    for (const m of [r1, r2]) for (const [i, d] of bytes.entries()) await putBlob(m, d, `r${i}.pvmp`);
  });
  afterAll(async () => {
    for (const m of [p, r1, r2]) await m?.close();
  });

  it('refuses a bad question with 400 VALIDATION_FAILED naming the field', async () => {
    const ask = (query: string) => call(p.url, 'GET', `/api/v1/sites/route${query}`, { token: admin });
    expect(fieldsOf(await ask(`?sha256=${a}`))).toEqual([{ field: 'ip', message: 'must be an IPv4 or IPv6 address' }]);
    expect(fieldsOf(await ask(`?ip=mac-17&sha256=${a}`))).toEqual([
      { field: 'ip', message: 'must be an IPv4 or IPv6 address' },
    ]);
    expect(fieldsOf(await ask('?ip=10.1.2.3&sha256=abc'))).toEqual([
      { field: 'sha256', message: 'must be 64 hexadecimal digits' },
    ]);
    expect(fieldsOf(await ask('?ip=x'))).toEqual([
      { field: 'ip', message: 'must be an IPv4 or IPv6 address' },
      { field: 'sha256', message: 'must be 64 hexadecimal digits' },
    ]);
  });

  it('serves locally while no site is defined, and a client in no site', async () => {
    expect(await explain('10.1.2.3')).toEqual({
      client: '10.1.2.3',
      site: null,
      network: null,
      replica: null,
      location: null,
      reason: 'no site is defined',
      packageStored: true,
      candidates: [],
    });
    expect((await api('POST', '/sites', { name: 'hq', networks: ['10.1.0.0/16', 'fd00:1::/64'] })).status).toBe(201);
    expect(await explain('10.200.0.1')).toMatchObject({
      site: null,
      reason: 'the client is in no site',
      candidates: [],
    });
    expect(await explain('10.1.2.3')).toMatchObject({
      site: 'hq',
      network: '10.1.0.0/16',
      reason: 'site hq has no replica',
      candidates: [],
    });
  });

  it('sends a client of the site to an up replica holding a verified copy, at the same path', async () => {
    const replica = await beat(r1.url);
    ids.r1 = replica.id;
    expect(replica.state).toBe('pending');
    expect((await settled(replica.id)).state).toBe('up');

    const route = await explain('::ffff:10.1.2.3');
    expect(route).toEqual({
      client: '10.1.2.3',
      site: 'hq',
      network: '10.1.0.0/16',
      replica: { id: replica.id, publicUrl: r1.url },
      location: `${r1.url}/d/${a}/p0.pvmp`,
      reason: null,
      packageStored: true,
      candidates: [
        {
          id: replica.id,
          publicUrl: r1.url,
          site: 'hq',
          state: 'up',
          weight: 100,
          excluded: null,
          detail: null,
          score: anyNumber(),
        },
      ],
    });
    expect((await explain('fd00:1::42')).replica?.publicUrl).toBe(r1.url);
    // Upper-case digests are the same package.
    expect((await explain('10.1.2.3', a.toUpperCase())).replica?.publicUrl).toBe(r1.url);
  });

  it('passes over a replica that lacks the package, and one whose copy a check found bad', async () => {
    const route = await explain('10.1.2.3', b);
    expect(candidate(route, r1.url)).toMatchObject({
      excluded: 'lacks-package',
      detail: 'it does not report a verified copy',
    });
    expect(route).toMatchObject({ replica: null, reason: 'no replica of site hq is up with a verified copy' });

    // A bad copy: the replica's bytes of b differ from this mirror's (same length, same ETag). The range its
    // check compares every RANGE_CHECK_EVERY-th probe finds it and takes the replica out...
    const blobFile = r1.runtime.store.layout.blobFile(b as Sha256);
    const good = await fs.readFile(blobFile);
    await fs.chmod(blobFile, 0o600);
    await fs.writeFile(blobFile, Buffer.from(good).fill(0x55, 100, 200));
    await beat(r1.url, { verified: [b] });
    let checked: ReplicaView | undefined;
    for (let i = 0; i < RANGE_CHECK_EVERY && checked?.state !== 'down'; i += 1)
      checked = (await api<ReplicaView>('POST', `/replicas/${ids.r1}/check`)).body;
    expect(checked).toMatchObject({ state: 'down', badCopies: [b] });
    expect(checked!.reason).toBe(`bytes 0-2999 of package ${b.slice(0, 12)} differ from this mirror's copy`);
    expect(candidate(await explain('10.1.2.3', b), r1.url)).toMatchObject({ excluded: 'down', state: 'down' });
    // ...while that copy stays bad: the next check reads it again, not another package. (Switched off while it
    // reports, so that its heartbeat starts no check of its own that could end after the ones below.)
    await api('PATCH', `/replicas/${ids.r1}`, { enabled: false });
    await beat(r1.url, { verified: [a, b] });
    await api('PATCH', `/replicas/${ids.r1}`, { enabled: true });
    expect((await api<ReplicaView>('POST', `/replicas/${ids.r1}/check`)).body).toMatchObject({ state: 'down' });
    // Once this mirror no longer holds b, a check of a puts the replica back; b stays marked, and no Mac is
    // sent there for it.
    expect((await api('DELETE', `/blobs/${b}`)).status).toBe(200);
    expect((await api<ReplicaView>('POST', `/replicas/${ids.r1}/check`)).body).toMatchObject({
      state: 'up',
      badCopies: [b],
    });
    expect(candidate(await explain('10.1.2.3', b), r1.url)).toMatchObject({
      state: 'up',
      excluded: 'bad-copy',
      detail: "a check read other bytes than this mirror's",
    });
    // Dropping the claim drops the mark.
    await fs.writeFile(blobFile, good);
    await putBlob(p, good, 'b-again.pvmp');
    await beat(r1.url, { verified: [a] });
    expect((await api<ReplicaView>('GET', `/replicas/${ids.r1}`)).body.badCopies).toEqual([]);
  });

  it('says when this mirror does not hold the package itself', async () => {
    const route = await explain('10.1.2.3', notStored);
    expect(route).toMatchObject({
      site: 'hq',
      replica: null,
      location: null,
      packageStored: false,
      reason: 'this mirror does not hold a verified copy of the package',
    });
    expect(candidate(route, r1.url).excluded).toBe('lacks-package');
  });

  it('passes over a disabled, a down, a pending and a stale replica, each with its reason', async () => {
    const hole = await blackHole();
    const dead = `http://127.0.0.1:${await closedPort()}`;
    try {
      ids.r2 = (await beat(r2.url)).id;
      expect((await settled(ids.r2)).state).toBe('up');
      // One that never answers stays pending while its first probe waits.
      ids.hole = (await beat(hole.url)).id;
      ids.dead = (await beat(dead)).id;
      expect(await settled(ids.dead)).toMatchObject({ state: 'down', reason: 'cannot be reached: ECONNREFUSED' });

      const route = await explain('10.1.2.3');
      expect(route.candidates.map((x) => [x.publicUrl, x.state, x.excluded])).toEqual(
        expect.arrayContaining([
          [hole.url, 'pending', 'pending'],
          [dead, 'down', 'down'],
        ]),
      );
      expect(candidate(route, hole.url)).toMatchObject({ detail: 'not checked yet', score: null });
      expect(candidate(route, dead)).toMatchObject({ detail: 'cannot be reached: ECONNREFUSED', score: null });
      expect(route.replica).not.toBeNull();
      expect(
        route.candidates
          .filter((x) => x.excluded === null)
          .map((x) => x.publicUrl)
          .sort(),
      ).toEqual([r1.url, r2.url].sort());

      await api('PATCH', `/replicas/${ids.r2}`, { enabled: false });
      const disabled = await explain('10.1.2.3');
      expect(candidate(disabled, r2.url)).toMatchObject({
        state: 'disabled',
        excluded: 'disabled',
        detail: 'an admin disabled it',
        score: null,
      });
      expect(disabled.replica).toEqual({ id: ids.r1, publicUrl: r1.url });
      await api('PATCH', `/replicas/${ids.r2}`, { enabled: true });

      // A heartbeat every second: silent for more than three of them, it is stale, though its last check passed.
      await beat(r2.url, { heartbeatMs: 1000 });
      clock.advance(3_200);
      const stale = await explain('10.1.2.3');
      expect(candidate(stale, r2.url)).toMatchObject({
        state: 'stale',
        excluded: 'stale',
        detail: 'no heartbeat for 3 s',
        score: null,
      });
      expect(stale.replica).toEqual({ id: ids.r1, publicUrl: r1.url });
      // Its next heartbeat puts it back at once.
      await beat(r2.url);
      expect(candidate(await explain('10.1.2.3'), r2.url)).toMatchObject({ state: 'up', excluded: null });
    } finally {
      await hole.close();
    }
    for (const id of [ids.hole, ids.dead]) expect((await api('DELETE', `/replicas/${id}`)).status).toBe(204);
  });

  it('keeps a site switched off on this mirror, and says which replica it would otherwise pick', async () => {
    await api('PATCH', '/sites/hq', { redirects: false });
    const route = await explain('10.1.2.3');
    expect(route).toMatchObject({
      site: 'hq',
      replica: null,
      location: null,
      reason: 'redirects of site hq are switched off',
    });
    expect(
      route.candidates
        .filter((x) => x.excluded === null)
        .map((x) => x.publicUrl)
        .sort(),
    ).toEqual([r1.url, r2.url].sort());
    await api('PATCH', '/sites/hq', { redirects: true });
    expect((await explain('10.1.2.3')).replica).not.toBeNull();
  });

  it('shares clients among replicas by weight (100 : 300 → about 1 : 3), each address always to the same one', async () => {
    await api('PATCH', `/replicas/${ids.r1}`, { weight: 100 });
    await api('PATCH', `/replicas/${ids.r2}`, { weight: 300 });
    const clients = Array.from({ length: 2000 }, (_, i) => `10.1.${Math.floor(i / 250)}.${i % 250}`);
    const chosen = new Map<string, string>();
    for (let i = 0; i < clients.length; i += 16)
      await Promise.all(
        clients.slice(i, i + 16).map(async (ip) => {
          const route = await explain(ip);
          const best = route.candidates.reduce((x, y) => ((x.score ?? -1) >= (y.score ?? -1) ? x : y));
          // The replica chosen is the one with the highest score.
          expect(route.replica?.publicUrl).toBe(best.publicUrl);
          chosen.set(ip, route.replica!.publicUrl);
        }),
      );
    const heavy = [...chosen.values()].filter((url) => url === r2.url).length / clients.length;
    expect(heavy).toBeGreaterThan(0.7);
    expect(heavy).toBeLessThan(0.8);
    // Asked again (the rows reread, a heartbeat in between), every address gets the same replica.
    await beat(r1.url);
    for (const ip of clients.slice(0, 100)) expect((await explain(ip)).replica?.publicUrl).toBe(chosen.get(ip));
    // A replica leaving moves only its own clients: r1's clients stay on r1 when r2 goes.
    await api('PATCH', `/replicas/${ids.r2}`, { enabled: false });
    for (const ip of clients.slice(0, 200)) expect((await explain(ip)).replica?.publicUrl).toBe(r1.url);
    await api('PATCH', `/replicas/${ids.r2}`, { enabled: true });
  });

  describe('what this mirror is overrides the decision', () => {
    /** Another server on the same data dir (so the same sites and replicas), configured differently. */
    const sibling = (overrides: Record<string, unknown>) =>
      startClockedMirror(clock, { replicaCheckIntervalMs: 3_600_000, ...overrides }, p.dir);

    it('MIRROR_REDIRECTS=off', async () => {
      const off = await sibling({ redirects: 'off' });
      try {
        const route = await explain('10.1.2.3', a, off);
        expect(route).toMatchObject({
          site: 'hq',
          replica: null,
          location: null,
          reason: 'redirects are switched off (MIRROR_REDIRECTS=off)',
        });
        expect(route.candidates.some((x) => x.excluded === null)).toBe(true);
      } finally {
        await off.close();
      }
    });

    it('a replica (MIRROR_SYNC_FROM) never redirects', async () => {
      const replica = await sibling({ syncFrom: `http://127.0.0.1:${await closedPort()}`, syncToken: 'gm_unused' });
      try {
        expect(await explain('10.1.2.3', a, replica)).toMatchObject({
          site: 'hq',
          replica: null,
          reason: 'this mirror is a replica (MIRROR_SYNC_FROM): replicas never redirect',
        });
      } finally {
        await replica.close();
      }
    });

    it('a replica at this mirror’s own public URL is passed over as itself', async () => {
      const self = await sibling({ publicUrl: r1.url });
      try {
        const route = await explain('10.1.2.3', a, self);
        expect(candidate(route, r1.url)).toMatchObject({
          excluded: 'self',
          detail: 'its URL leads back to this mirror',
          score: null,
        });
        expect(route.replica?.publicUrl).toBe(r2.url);
      } finally {
        await self.close();
      }
    });
  });
});
