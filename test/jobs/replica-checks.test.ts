/**
 * The primary's probes of its replicas (server/jobs/replica-checks.ts)
 * against real mirrors and, for answers no goldmirror gives (a redirect, a
 * wrong length or ETag), a small HTTP server that gives them: each failure
 * takes the replica out with a reason, a byte mismatch also marks the copy
 * bad until a later probe of it passes, and a replica that stopped sending
 * heartbeats is taken out without being asked anything.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { probeDeps } from '../../server/jobs/probe-deps.js';
import { checkReplicas, probeReplica, RANGE_CHECK_EVERY, type ProbeDeps } from '../../server/jobs/replica-checks.js';
import {
  acceptHeartbeat,
  getReplica,
  listReplicas,
  updateReplica,
  type ReplicaView,
} from '../../server/services/replicas.js';
import { cliActor } from '../../server/services/audit.js';
import type { Sha256 } from '../../storage/digest.js';
import { closedPort } from '../helpers/api.js';
import { fakeClock } from '../helpers/clock.js';
import { freePort, putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';

/** An HTTP server answering every request with `answer`; counts the requests it got. */
async function fakeServer(
  answer: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests += 1;
    answer(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('replica probes', () => {
  const clock = fakeClock(Date.now());
  let primary: TestMirror;
  let replica: TestMirror;
  let deps: ProbeDeps;
  let data: Buffer;
  let sha: string;
  let primaryPort: number;

  /** Records a heartbeat as the API would (without the probe the API starts after it). */
  const beat = async (publicUrl: string, verified: string[], heartbeatMs = 60_000): Promise<ReplicaView> => {
    const { replicaId } = await acceptHeartbeat(
      { ...primary.runtime, publicUrl: primary.runtime.config.publicUrl },
      'branch',
      {
        publicUrl,
        site: 'branch',
        version: '0.1.0',
        mirrorId: `id-${publicUrl.replace(/\W/g, '')}`,
        heartbeatMs,
        verified,
      },
    );
    return getReplica(primary.runtime, replicaId);
  };
  const probe = async (replicaId: number) => {
    const result = await probeReplica(deps, replicaId);
    return { result, view: await getReplica(primary.runtime, replicaId) };
  };

  beforeAll(async () => {
    primaryPort = await freePort();
    // Its public address is spelled by name: a replica URL of 127.0.0.1:<its port> is another origin, the same server.
    primary = await startMirror(
      { port: primaryPort, publicUrl: `http://localhost:${primaryPort}`, replicaCheckIntervalMs: 3_600_000 },
      { clock },
    );
    deps = probeDeps(primary.runtime);
    replica = await startMirror();
    data = testBytes(200_000, 'probe');
    sha = await putBlob(primary, data, 'probe.pvmp');
    await putBlob(replica, data, 'replica-copy.pvmp');
  });
  beforeEach(async () => {
    for (const r of await listReplicas(primary.runtime))
      await primary.runtime.db.deleteFrom('replicas').where('id', '=', r.id).execute();
  });
  afterAll(async () => {
    await replica?.close();
    await primary?.close();
  });

  it('passes a replica serving the package: status, length, ETag, and on the first probe a compared range', async () => {
    const view = await beat(replica.url, [sha]);
    expect(view.state).toBe('pending');
    const { result, view: after } = await probe(view.id);
    expect(result).toEqual({ ok: true, detail: `serves package ${sha.slice(0, 12)}` });
    expect(after).toMatchObject({
      state: 'up',
      reason: null,
      lastCheck: 'passed',
      lastCheckAt: new Date(clock.now()).toISOString(),
      badCopies: [],
    });
  });

  it('takes out a replica that lacks the package it claims (404)', async () => {
    const empty = await startMirror();
    try {
      const view = await beat(empty.url, [sha]);
      const { result, view: after } = await probe(view.id);
      expect(result).toEqual({ ok: false, detail: `answered HTTP 404 for package ${sha.slice(0, 12)}` });
      expect(after).toMatchObject({ state: 'down', reason: result!.detail, lastCheck: result!.detail });
    } finally {
      await empty.close();
    }
  });

  it('takes out a replica whose URL leads back to this mirror', async () => {
    // Another spelling of the primary's own address (its public URL says localhost).
    const self = `http://127.0.0.1:${primaryPort}`;
    const view = await beat(self, [sha]);
    const { result, view: after } = await probe(view.id);
    expect(result).toEqual({ ok: false, detail: `its URL ${self} leads back to this mirror` });
    expect(after.state).toBe('down');
  });

  it('takes out a replica whose URL leads back here also while it claims none of our packages (its /healthz)', async () => {
    // A replica's first heartbeat often comes before its first sync: nothing to compare yet.
    const self = `http://127.0.0.1:${primaryPort}`;
    const view = await beat(self, []);
    const { result, view: after } = await probe(view.id);
    expect(result).toEqual({ ok: false, detail: `its URL ${self} leads back to this mirror` });
    expect(after.state).toBe('down');
    // So it is not up (and sent Macs) when its next heartbeat claims packages: a redirect to itself.
    await beat(self, [sha]);
    expect((await getReplica(primary.runtime, view.id)).state).toBe('down');
  });

  it('takes out a replica that redirects, for a package and (holding none of ours) for /healthz', async () => {
    const redirector = await fakeServer((_req, res) => {
      res.writeHead(302, { Location: 'http://127.0.0.1:9/elsewhere' });
      res.end();
    });
    try {
      const view = await beat(redirector.url, [sha]);
      expect((await probe(view.id)).result).toEqual({
        ok: false,
        detail: `answered HTTP 302 (a redirect) for package ${sha.slice(0, 12)}: replicas must serve, not redirect`,
      });
      await beat(redirector.url, []);
      const { result, view: after } = await probe(view.id);
      expect(result).toEqual({ ok: false, detail: 'its /healthz answered a redirect (HTTP 302)' });
      expect(after.state).toBe('down');
    } finally {
      await redirector.close();
    }
  });

  it('takes out a replica that sends another length or ETag for the package', async () => {
    let headers: Record<string, string> = {};
    const liar = await fakeServer((_req, res) => {
      res.writeHead(200, headers);
      res.end();
    });
    try {
      const view = await beat(liar.url, [sha]);
      headers = { 'Content-Length': String(data.length - 1), ETag: `"${sha}"` };
      expect((await probe(view.id)).result).toEqual({
        ok: false,
        detail: `sends ${data.length - 1} bytes for package ${sha.slice(0, 12)}, not ${data.length}`,
      });
      headers = { 'Content-Length': String(data.length), ETag: '"something-else"' };
      expect((await probe(view.id)).result).toEqual({
        ok: false,
        detail: `answers ETag "something-else" for package ${sha.slice(0, 12)}`,
      });
      headers = { 'Content-Length': String(data.length) };
      expect((await probe(view.id)).result?.detail).toBe(`answers ETag (none) for package ${sha.slice(0, 12)}`);
    } finally {
      await liar.close();
    }
  });

  it('takes out a replica that cannot be reached', async () => {
    const view = await beat(`http://127.0.0.1:${await closedPort()}`, [sha]);
    const { result, view: after } = await probe(view.id);
    expect(result).toEqual({ ok: false, detail: 'cannot be reached: ECONNREFUSED' });
    expect(after.state).toBe('down');
  });

  it('marks a copy with other bytes bad and the replica down; a later probe that reads it equal clears both', async () => {
    const blobFile = replica.runtime.store.layout.blobFile(sha as Sha256);
    const view = await beat(replica.url, [sha]);
    // Every byte differs, so whichever range the probe picks differs too.
    const flipped = Buffer.from(data.map((byte) => byte ^ 0xff));
    await fs.chmod(blobFile, 0o600);
    await fs.writeFile(blobFile, flipped);
    try {
      const first = await probe(view.id);
      expect(first.result?.ok).toBe(false);
      expect(first.result?.detail).toMatch(
        new RegExp(`^bytes (\\d+)-(\\d+) of package ${sha.slice(0, 12)} differ from this mirror's copy$`),
      );
      const [, start, end] = /bytes (\d+)-(\d+)/.exec(first.result!.detail)!;
      expect(Number(end) - Number(start) + 1).toBe(64 * 1024);
      expect(first.view).toMatchObject({ state: 'down', badCopies: [sha], lacks: [sha] });
      // The bad copy is read again on every probe, not only every RANGE_CHECK_EVERY-th.
      for (let i = 0; i < RANGE_CHECK_EVERY; i += 1) expect((await probe(view.id)).view.state).toBe('down');
    } finally {
      await fs.writeFile(blobFile, data);
    }
    const fixed = await probe(view.id);
    expect(fixed.result).toEqual({ ok: true, detail: `serves package ${sha.slice(0, 12)}` });
    expect(fixed.view).toMatchObject({ state: 'up', badCopies: [], lacks: [] });
  });

  it('marks a replica that missed its heartbeats down in the round, without asking it anything', async () => {
    const counting = await fakeServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"status":"ok"}');
    });
    try {
      // Holding none of this mirror's packages, it is checked by its /healthz.
      const quiet = await beat(counting.url, [], 1000);
      expect((await probe(quiet.id)).view.state).toBe('up');
      expect(counting.requests()).toBe(1);
      clock.advance(3_500);
      expect(await getReplica(primary.runtime, quiet.id)).toMatchObject({
        state: 'stale',
        reason: 'no heartbeat for 4 s',
      });
      await checkReplicas(deps);
      expect(counting.requests()).toBe(1);
      expect(await getReplica(primary.runtime, quiet.id)).toMatchObject({
        state: 'down',
        reason: 'missed its heartbeats (no heartbeat for 4 s)',
      });
      // Speaking again is not enough: down until a probe passes.
      await beat(counting.url, [], 1000);
      expect((await getReplica(primary.runtime, quiet.id)).state).toBe('down');
      await checkReplicas(deps);
      expect(counting.requests()).toBe(2);
      expect((await getReplica(primary.runtime, quiet.id)).state).toBe('up');
    } finally {
      await counting.close();
    }
  });

  it('a round probes every enabled replica, and never a disabled one', async () => {
    const counting = await fakeServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"status":"ok"}');
    });
    try {
      const on = await beat(`${counting.url}/on`, []);
      const off = await beat(`${counting.url}/off`, []);
      await updateReplica(primary.runtime, cliActor, off.id, { enabled: false });
      await checkReplicas(deps);
      expect(counting.requests()).toBe(1);
      expect((await getReplica(primary.runtime, on.id)).state).toBe('up');
      expect(await getReplica(primary.runtime, off.id)).toMatchObject({ state: 'disabled', lastCheckAt: null });
      expect(await probeReplica(deps, off.id)).toBeNull();
      expect(counting.requests()).toBe(1);
    } finally {
      await counting.close();
    }
  });
});
