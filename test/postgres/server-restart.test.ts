/**
 * PostgreSQL restarted under a running mirror (a failover, an upgrade): while it is down, requests that need it fail
 * at once with 503 and nothing is half-written; when it is back, the mirror recovers by itself without a restart.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTestAdmin, call, issueToken } from '../helpers/api.js';
import { onPostgres } from '../helpers/database.js';
import { putBlob, startMirror, testBytes, type TestMirror } from '../helpers/env.js';
import { startPostgresServer, type PostgresServer } from '../helpers/postgres-server.js';
import { waitFor } from '../helpers/wait.js';

describe.skipIf(!onPostgres)('PostgreSQL restarted while the mirror runs', () => {
  let pg: PostgresServer;
  let mirror: TestMirror;
  let token: string;
  let link: string;

  beforeAll(async () => {
    pg = await startPostgresServer();
    mirror = await startMirror({ databaseUrl: pg.url, publicUrl: 'http://mirror.test' });
    await bootstrapTestAdmin(mirror);
    token = await issueToken(mirror, 'restart');
    const sha256 = await putBlob(mirror, testBytes(200_000, 'restart'), 'Win11.pvmp');
    link = `${mirror.url}/d/${sha256}/Win11.pvmp`;
    const created = await call(mirror.url, 'POST', '/api/v1/images', {
      token,
      json: { name: 'Before', arm64: { enabled: true, sha256 } },
    });
    expect(created.status, created.text).toBe(201);
  });
  afterAll(async () => {
    pg?.start(); // if a failure left it stopped: the mirror's close should not wait for a server that never comes
    await mirror?.close();
    pg?.destroy();
  });

  it('answers 503 fast while it is down, writes nothing half-way, and recovers by itself', async () => {
    pg.stop();
    const started = performance.now();
    const list = await call(mirror.url, 'GET', '/api/v1/images', { token });
    expect(list.status, list.text).toBe(503);
    expect((list.body as { error: { code: string } }).error.code).toBe('DATABASE_UNAVAILABLE');
    const write = await call(mirror.url, 'POST', '/api/v1/images', { token, json: { name: 'During' } });
    expect(write.status).toBe(503);
    const health = await fetch(`${mirror.url}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.text()).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/); // the reason stays terse for strangers
    // Past the one-second cache of servable rows, a link cannot be checked either: 503, never a wrong answer.
    await new Promise((r) => setTimeout(r, 1100));
    const download = await fetch(link);
    expect(download.status).toBe(503);
    await download.arrayBuffer();
    expect(performance.now() - started).toBeLessThan(5000);

    pg.start();
    await waitFor(async () => (await call(mirror.url, 'GET', '/api/v1/images', { token })).status === 200, {
      what: 'the API to answer again',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    const after = await call(mirror.url, 'POST', '/api/v1/images', { token, json: { name: 'After' } });
    expect(after.status, after.text).toBe(201);
    const names = (await call<Array<{ name: string }>>(mirror.url, 'GET', '/api/v1/images', { token })).body.map(
      (i) => i.name,
    );
    expect(names.sort()).toEqual(['After', 'Before']);
    expect((await fetch(link)).status).toBe(200);
    expect((await fetch(`${mirror.url}/healthz`)).status).toBe(200);
    await fs.access(mirror.dir);
  });
});
