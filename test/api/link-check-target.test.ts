/**
 * Where the link check connects. It fetches the mirror itself, so it may
 * only ever reach the public address the admin set (Settings, or
 * MIRROR_PUBLIC_URL), never the host a client put in its Host header.
 * A decoy server stands where a forged Host points.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LinkCheckReport } from '../../server/services/link-check.js';
import { issueToken } from '../helpers/api.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { request } from '../faults/helpers.js';

const SIZE = 200 * 1024 + 1;

describe('the link check only ever reaches this mirror', () => {
  let decoy: http.Server;
  let decoyHost: string;
  const decoyHits: string[] = [];
  const data = testBytes(SIZE, 'link-target');
  beforeAll(async () => {
    decoy = http.createServer((req, res) => {
      decoyHits.push(`${req.method} ${req.url}`);
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => decoy.listen(0, '127.0.0.1', r));
    decoyHost = `127.0.0.1:${(decoy.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    decoy.closeAllConnections();
    await new Promise((r) => decoy.close(r));
  });

  async function imageWith(m: TestMirror, token: string, name: string): Promise<number> {
    const sha = await putBlob(m, data, `${name}.pvmp`);
    const res = await fetch(`${m.url}/api/v1/images`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name, arm64: { enabled: true, sha256: sha } }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: number }).id;
  }

  /** POST …/check with a forged Host header (node:http, so the header goes out as written). */
  async function checkWithHost(m: TestMirror, path: string, token: string): Promise<{ status: number; body: string }> {
    return request(`${m.url}${path}`, {
      method: 'POST',
      headers: { Host: decoyHost, Authorization: `Bearer ${token}`, 'Content-Length': 0 },
    });
  }

  describe('with the address stored in Settings', () => {
    let m: TestMirror;
    let token: string;
    beforeAll(async () => {
      m = await startMirror({ publicUrl: '' });
      token = await issueToken(m, 'lc-target');
    });
    afterAll(async () => {
      await m?.close();
    });

    it('without an address it connects nowhere and says the address is missing', async () => {
      const id = await imageWith(m, token, 'No address');
      decoyHits.length = 0;
      const res = await checkWithHost(m, `/api/v1/images/${id}/check`, token);
      expect(res.status, res.body).toBe(200);
      const report = JSON.parse(res.body) as LinkCheckReport;
      expect(report.ok).toBe(false);
      expect(report.architectures.arm64!.url).toBeNull();
      expect(report.architectures.arm64!.steps.map((s) => s.name)).toEqual(['public address']);
      expect(decoyHits).toEqual([]);
    });

    it('checks the stored address, whatever Host the request carries (API and page)', async () => {
      const set = await fetch(`${m.url}/api/v1/settings`, {
        method: 'PATCH',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ publicUrl: m.url }),
      });
      expect(set.status, await set.text()).toBe(200);
      const id = await imageWith(m, token, 'Forged host');
      decoyHits.length = 0;
      const res = await checkWithHost(m, `/api/v1/images/${id}/check`, token);
      expect(res.status, res.body).toBe(200);
      const report = JSON.parse(res.body) as LinkCheckReport;
      const arm = report.architectures.arm64!;
      expect(arm.url!.startsWith(`${m.url}/d/`)).toBe(true);
      expect(
        arm.steps.every((s) => s.ok),
        JSON.stringify(arm.steps),
      ).toBe(true);
      expect(report.ok).toBe(true);
      expect(decoyHits).toEqual([]);

      // The admin page's check goes the same way (it answers with a redirect to the result).
      const page = await checkWithHost(m, `/admin/images/${id}/check`, token);
      expect(page.status).toBe(303);
      expect(decoyHits).toEqual([]);
    });
  });

  describe('with MIRROR_PUBLIC_URL', () => {
    let remote: TestMirror;
    let local: TestMirror;
    let token: string;
    beforeAll(async () => {
      remote = await startMirror();
      local = await startMirror({ publicUrl: remote.url });
      token = await issueToken(local, 'lc-public');
      await putBlob(remote, data, 'Public.pvmp');
    });
    afterAll(async () => {
      await local?.close();
      await remote?.close();
    });

    it('checks the configured public URL whatever Host the request carries', async () => {
      const id = await imageWith(local, token, 'Public');
      decoyHits.length = 0;
      const res = await checkWithHost(local, `/api/v1/images/${id}/check`, token);
      expect(res.status, res.body).toBe(200);
      const report = JSON.parse(res.body) as LinkCheckReport;
      expect(report.architectures.arm64!.url!.startsWith(`${remote.url}/d/`)).toBe(true);
      expect(report.ok).toBe(true);
      expect(decoyHits).toEqual([]);
    });
  });
});
