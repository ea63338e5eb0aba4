/**
 * Two `goldmirror serve` processes on one PostgreSQL database and one data dir, as two nodes behind a load balancer:
 * what one writes, the other serves at once, and the schema's rules hold when both write at the same moment.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type ApiResult } from '../helpers/api.js';
import { runCli } from '../helpers/cli.js';
import { onPostgres } from '../helpers/database.js';
import { makeTempDir, sha256Hex, testBytes } from '../helpers/env.js';
import { createToken, killAllChildren, mirrorEnv, startServe, type ServeProc } from '../faults/helpers.js';

describe.skipIf(!onPostgres)('two processes on one PostgreSQL', () => {
  let work: string;
  let env: Record<string, string>;
  let one: ServeProc;
  let two: ServeProc;
  let token: string;
  const api = <T>(server: ServeProc, method: string, route: string, json?: unknown): Promise<ApiResult<T>> =>
    call<T>(server.url, method, `/api/v1${route}`, { token, json });

  beforeAll(async () => {
    work = await makeTempDir('goldmirror-two-nodes-');
    env = mirrorEnv(path.join(work, 'data'));
    token = await createToken(env, 'nodes');
    [one, two] = await Promise.all([startServe(env), startServe(env)]);
  });
  afterAll(async () => {
    await killAllChildren();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('serves through one what was stored and created through the other, at once', async () => {
    const data = testBytes(300_000, 'two-nodes');
    const file = path.join(work, 'Win11.pvmp');
    await fs.writeFile(file, data);
    const imported = await runCli(['import', file, '--json'], env);
    expect(imported.code, imported.stderr).toBe(0);
    const sha256 = sha256Hex(data);

    const created = await api<{ id: number; arm64: { url: string } }>(one, 'POST', '/images', {
      name: 'Windows 11',
      arm64: { enabled: true, sha256 },
    });
    expect(created.status, created.text).toBe(201);
    const seen = await api<{ name: string }>(two, 'GET', `/images/${created.body.id}`);
    expect({ status: seen.status, name: seen.body.name }).toEqual({ status: 200, name: 'Windows 11' });
    const link = new URL(created.body.arm64.url).pathname;
    for (const server of [one, two]) {
      const res = await fetch(`${server.url}${link}`);
      expect(res.status).toBe(200);
      expect(sha256Hex(Buffer.from(await res.arrayBuffer()))).toBe(sha256);
    }
  });

  it('keeps names unique, one primary group, one group per license key and one image per group under simultaneous writes from both', async () => {
    const both = <T>(make: (i: number) => Promise<ApiResult<T>>, n = 20): Promise<Array<ApiResult<T>>> =>
      Promise.all(Array.from({ length: n }, (_, i) => make(i)));
    const statuses = (results: Array<ApiResult<unknown>>): Record<number, number> =>
      results.reduce<Record<number, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
    const codes = (results: Array<ApiResult<unknown>>): Set<string> =>
      new Set(results.filter((r) => r.status !== 201).map((r) => (r.body as { error: { code: string } }).error.code));

    const sameName = await both((i) => api(i % 2 ? one : two, 'POST', '/groups', { name: 'Sales' }));
    expect(statuses(sameName)).toEqual({ 201: 1, 409: 19 });
    expect(codes(sameName)).toEqual(new Set(['NAME_TAKEN']));

    const primaries = await both((i) => api(i % 2 ? one : two, 'POST', '/groups', { name: `P${i}`, primary: true }));
    expect(statuses(primaries)).toEqual({ 201: 1, 409: 19 });
    expect(codes(primaries)).toEqual(new Set(['PRIMARY_TAKEN']));

    const keyed = await both((i) => api(i % 2 ? one : two, 'POST', '/groups', { name: `K${i}`, licenseKey: 'KEY-1' }));
    expect(statuses(keyed)).toEqual({ 201: 1, 409: 19 });
    expect(codes(keyed)).toEqual(new Set(['LICENSE_KEY_TAKEN']));

    // One golden image per group, a rule the service checks by reading first: the same unassigned group given
    // image A through one node and image B through the other, ten times each at once. The first write wins;
    // the same image again is fine, the other one is refused (never silently replacing the first).
    const [imageA, imageB] = await Promise.all(
      ['Image A', 'Image B'].map(async (name, i) => {
        const res = await api<{ id: number }>(i ? two : one, 'POST', '/images', { name });
        expect(res.status, res.text).toBe(201);
        return res.body.id;
      }),
    );
    const contended = await api<{ id: number }>(one, 'POST', '/groups', { name: 'Contended' });
    expect(contended.status).toBe(201);
    const wanted = (i: number): number => (i % 2 ? imageA! : imageB!);
    const assigned = await both((i) =>
      api(i % 2 ? one : two, 'PATCH', `/groups/${contended.body.id}`, { imageId: wanted(i) }),
    );
    const final = (await api<{ imageId: number }>(two, 'GET', `/groups/${contended.body.id}`)).body.imageId;
    assigned.forEach((res, i) => {
      if (wanted(i) === final) expect({ i, status: res.status }).toEqual({ i, status: 200 });
      else
        expect({ i, status: res.status, code: (res.body as { error?: { code: string } }).error?.code }).toEqual({
          i,
          status: 409,
          code: 'GROUP_HAS_IMAGE',
        });
    });
    expect(statuses(assigned)).toEqual({ 200: 10, 409: 10 });

    // Both nodes list the same groups, exactly those that were answered 201.
    const made = [...sameName, ...primaries, ...keyed].filter((r) => r.status === 201).length + 1; // + Contended
    const listed = await Promise.all([one, two].map((s) => api<Array<{ name: string }>>(s, 'GET', '/groups')));
    expect(listed[0]!.body).toEqual(listed[1]!.body);
    expect(listed[0]!.body.length).toBe(made);
  });
});
