/**
 * /healthz tells strangers only whether the mirror is ready and a short
 * reason code; free bytes and database error text are for admins, at
 * GET /api/v1/health (scope read).
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../server/services/audit.js';
import { createApiToken } from '../../server/services/auth.js';
import { anyNumber, call, expectError } from '../helpers/api.js';
import { startMirror, type TestMirror } from '../helpers/env.js';
import { onS3 } from '../helpers/s3.js';

describe('health', () => {
  let ok: TestMirror;
  let low: TestMirror;
  beforeAll(async () => {
    ok = await startMirror();
    low = await startMirror({ minFreeBytes: Number.MAX_SAFE_INTEGER });
  });
  afterAll(async () => {
    await ok?.close();
    await low?.close();
  });

  it('/healthz answers only {status, reason}: 200 when ready, 503 with a reason code when not', async () => {
    const good = await call(ok.url, 'GET', '/healthz');
    expect(good.status).toBe(200);
    expect(JSON.parse(good.text)).toEqual({ status: 'ok', reason: null });

    const bad = await call(low.url, 'GET', '/healthz');
    expect(bad.status).toBe(503);
    expect(JSON.parse(bad.text)).toEqual({ status: 'unhealthy', reason: 'DISK_LOW' });
    // No byte counts, paths or other details for a stranger.
    expect(bad.text).not.toMatch(/\d/);
  });

  it('GET /api/v1/health gives the details to admins and read tokens, not to strangers or sync tokens', async () => {
    expectError(await call(low.url, 'GET', '/api/v1/health'), 401, 'UNAUTHORIZED');
    const read = (await createApiToken(low.runtime, cliActor, 'monitor', 'read')).token;
    const sync = (await createApiToken(low.runtime, cliActor, 'branch', 'sync')).token;
    expectError(await call(low.url, 'GET', '/api/v1/health', { token: sync }), 403, 'TOKEN_SCOPE');

    const detail = await call<Record<string, unknown>>(low.url, 'GET', '/api/v1/health', { token: read });
    expect(detail.status).toBe(503);
    expect(detail.body).toEqual({
      status: 'unhealthy',
      ok: false,
      reason: 'DISK_LOW',
      checks: {
        database: 'ok',
        // A bucket is checked too when the run stores blobs in one (MIRROR_TEST_STORAGE=s3).
        ...(onS3 ? { storage: 'ok' } : {}),
        dataDir: 'ok',
        disk: expect.stringMatching(/^low: \d+ bytes free, minimum \d+$/) as string,
      },
      freeBytes: anyNumber(),
      minFreeBytes: Number.MAX_SAFE_INTEGER,
      // The only process on its database leads (test/jobs/leader.test.ts covers several).
      leader: expect.objectContaining({
        holder: low.runtime.leadership.identity.holder,
        pid: process.pid,
        live: true,
        thisProcess: true,
      }) as unknown,
    });
    const admin = (await createApiToken(ok.runtime, cliActor, 'monitor', 'read')).token;
    const fine = await call<{ status: string; freeBytes: number }>(ok.url, 'GET', '/api/v1/health', { token: admin });
    expect(fine.status).toBe(200);
    expect(fine.body).toMatchObject({
      status: 'ok',
      reason: null,
      checks: { database: 'ok', dataDir: 'ok', disk: 'ok' },
    });
    expect(fine.body.freeBytes).toBeGreaterThan(0);
  });

  it('names a broken database DB_UNAVAILABLE on /healthz, without its error text', async () => {
    const m = await startMirror();
    try {
      await m.runtime.db.destroy();
      const res = await call(m.url, 'GET', '/healthz');
      expect(res.status).toBe(503);
      expect(JSON.parse(res.text)).toEqual({ status: 'unhealthy', reason: 'DB_UNAVAILABLE' });
    } finally {
      await m.server.close(1000);
      // Its jobs stop even though the database is already gone.
      await m.runtime.close().catch(() => undefined);
      await fs.rm(m.dir, { recursive: true, force: true });
    }
  });
});
