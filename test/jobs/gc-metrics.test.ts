import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sha256 } from '../../storage/digest.js';
import { cliActor } from '../../server/services/audit.js';
import { collectGarbage } from '../../server/services/gc.js';
import { createImage } from '../../server/services/images.js';
import { ingest } from '../../server/services/ingest.js';
import { storedFiles } from '../helpers/blobs.js';
import { putBlob, startMirror, testBytes, testStream, type TestMirror } from '../helpers/env.js';

const HOUR = 3_600_000;

describe('garbage collection', () => {
  let mirror: TestMirror;
  beforeEach(async () => {
    mirror = await startMirror();
  });
  afterEach(async () => {
    await mirror.close();
  });

  const age = (sha: string, ms: number) =>
    mirror.runtime.db
      .updateTable('blobs')
      .set({ created_at: Date.now() - ms, ingested_at: Date.now() - ms })
      .where('sha256', '=', sha)
      .execute();

  it('removes only unreferenced blobs older than the grace period, and dry-run removes nothing', async () => {
    const used = await putBlob(mirror, testBytes(1000, 'used'));
    const old = await putBlob(mirror, testBytes(2000, 'old'));
    const young = await putBlob(mirror, testBytes(3000, 'young'));
    await createImage(mirror.runtime, cliActor, { name: 'img', x86_64: { enabled: true, sha256: used } }, mirror.url);
    await age(used, 48 * HOUR);
    await age(old, 48 * HOUR);
    await age(young, 1 * HOUR);
    // Nothing ran a transfer recently.
    await mirror.runtime.db.deleteFrom('blob_activity').execute();

    const dry = await collectGarbage(mirror.runtime, cliActor, { dryRun: true, graceMs: 24 * HOUR });
    expect(dry.removed.map((r) => r.sha256)).toEqual([old]);
    expect(dry.freedBytes).toBe(2000);
    expect(dry.kept).toEqual([{ sha256: young, reason: 'grace' }]);
    expect(await mirror.runtime.store.stat(old as Sha256)).not.toBeNull();

    const real = await collectGarbage(mirror.runtime, cliActor, { dryRun: false, graceMs: 24 * HOUR });
    expect(real.removed.map((r) => r.sha256)).toEqual([old]);
    expect(await mirror.runtime.store.stat(old as Sha256)).toBeNull();
    expect((await fetch(`${mirror.url}/d/${old}/x.pvmp`)).status).toBe(404);
    expect((await fetch(`${mirror.url}/d/${used}/x.pvmp`)).status).toBe(200);
    const audit = await mirror.runtime.db.selectFrom('audit_log').selectAll().where('action', '=', 'blob.gc').execute();
    expect(audit.map((a) => a.target)).toEqual([`blob:${old}`]);
  });

  it('never removes a blob while it is being downloaded', async () => {
    const sha = await putBlob(mirror, testBytes(32 << 20, 'busy'));
    await age(sha, 48 * HOUR);
    await mirror.runtime.db.deleteFrom('blob_activity').execute();
    // A client that starts a download and then reads slowly.
    const req = http.get(`${mirror.url}/d/${sha}/busy.pvmp`);
    const res = await new Promise<http.IncomingMessage>((r) => req.on('response', r));
    res.pause();
    try {
      await mirror.runtime.activity.flush();
      const report = await collectGarbage(mirror.runtime, cliActor, { dryRun: false, graceMs: 24 * HOUR });
      expect(report.removed).toEqual([]);
      expect(report.kept).toEqual([{ sha256: sha, reason: 'in-use' }]);
    } finally {
      req.destroy();
    }
  });

  it('never removes a blob that is being uploaded again (expected digest known)', async () => {
    const data = testBytes(8 << 20, 'reupload');
    const sha = await putBlob(mirror, data);
    await age(sha, 48 * HOUR);
    await mirror.runtime.db.deleteFrom('blob_activity').execute();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const source = (async function* () {
      yield data.subarray(0, 1 << 20);
      await gate;
      yield data.subarray(1 << 20);
    })();
    const upload = ingest(mirror.runtime.ingestDeps, { source, fileName: 'again.pvmp', expectedSha256: sha as Sha256 });
    await new Promise((r) => setTimeout(r, 20));
    await mirror.runtime.activity.flush();
    const report = await collectGarbage(mirror.runtime, cliActor, { dryRun: false, graceMs: 24 * HOUR });
    release();
    await upload;
    expect(report.kept).toEqual([{ sha256: sha, reason: 'in-use' }]);
  });

  it('counts the grace period from the last ingest: a package uploaded again is kept', async () => {
    const data = testBytes(4000, 'again');
    const sha = await putBlob(mirror, data);
    await age(sha, 48 * HOUR);
    await mirror.runtime.db.deleteFrom('blob_activity').execute();
    await ingest(mirror.runtime.ingestDeps, { source: [data], fileName: 'again.pvmp' });
    const row = await mirror.runtime.db
      .selectFrom('blobs')
      .selectAll()
      .where('sha256', '=', sha)
      .executeTakeFirstOrThrow();
    // Last-Modified still shows the first ingest...
    expect(row.created_at).toBeLessThan(Date.now() - 47 * HOUR);
    // ...but GC sees a fresh upload.
    const report = await collectGarbage(mirror.runtime, cliActor, { dryRun: false, graceMs: 24 * HOUR });
    expect(report.removed).toEqual([]);
    expect(report.kept).toEqual([{ sha256: sha, reason: 'grace' }]);
  });

  it('removes files that have no database row once past the grace period', async () => {
    const sha = await putBlob(mirror, testBytes(500, 'orphan'));
    await mirror.runtime.db.deleteFrom('blobs').where('sha256', '=', sha).execute();
    const young = await collectGarbage(mirror.runtime, cliActor, { dryRun: false, graceMs: 24 * HOUR });
    expect(young.removed).toEqual([]);
    // Two days on: the GC's clock moves, since an object's write time cannot be set back like a file's.
    const clock = { ...mirror.runtime.clock, now: () => Date.now() + 48 * HOUR };
    const { db, store } = mirror.runtime;
    const report = await collectGarbage({ db, store, clock }, cliActor, { dryRun: false, graceMs: 24 * HOUR });
    expect(report.removed).toEqual([{ sha256: sha, size: 500, name: '', orphanFile: true }]);
    expect(await mirror.runtime.store.stat(sha as Sha256)).toBeNull();
  });
});

describe('disk guard and health', () => {
  it('refuses an ingest up front with INSUFFICIENT_STORAGE and keeps nothing', async () => {
    const mirror = await startMirror();
    try {
      const { freeBytes } = await mirror.runtime.store.diskUsage();
      // A minimum above what is free now: other processes on a shared disk free space at any moment, and a margin
      // of a few bytes let a concurrent test's clean-up make this ingest fit (seen in full parallel runs).
      const deps = { ...mirror.runtime.ingestDeps, minFreeBytes: freeBytes + (64 << 20) };
      await expect(
        ingest(deps, { source: [testBytes(5000)], fileName: 'x.pvmp', expectedSize: 5000 }),
      ).rejects.toMatchObject({
        code: 'INSUFFICIENT_STORAGE',
      });
      // Unknown length: caught while writing, after the first check interval.
      await expect(ingest(deps, { source: testStream(300 << 20, 'big'), fileName: 'y.pvmp' })).rejects.toMatchObject({
        code: 'INSUFFICIENT_STORAGE',
      });
      expect(await storedFiles(mirror, 'tmp')).toEqual({});
      expect(await mirror.runtime.db.selectFrom('blobs').selectAll().execute()).toEqual([]);
    } finally {
      await mirror.close();
    }
  });

  it('answers /healthz 503 with the reason when free space is below the guard', async () => {
    const ok = await startMirror();
    const low = await startMirror({ minFreeBytes: Number.MAX_SAFE_INTEGER });
    try {
      const good = await fetch(`${ok.url}/healthz`);
      expect(good.status).toBe(200);
      expect(await good.json()).toEqual({ status: 'ok', reason: null });
      const bad = await fetch(`${low.url}/healthz`);
      expect(bad.status).toBe(503);
      // Only a reason code for strangers; the byte counts are at GET /api/v1/health (test/api/health.test.ts).
      expect(await bad.json()).toEqual({ status: 'unhealthy', reason: 'DISK_LOW' });
    } finally {
      await ok.close();
      await low.close();
    }
  });
});

describe('metrics', () => {
  it('counts real downloads per image and arch, bytes and ingests', async () => {
    const mirror = await startMirror();
    try {
      const data = testBytes(1 << 20, 'metrics');
      const sha = await putBlob(mirror, data, 'Win11.pvmp');
      const big = await putBlob(mirror, testBytes(64 << 20, 'metrics-big'), 'Win11-intel.pvmp');
      const image = await createImage(
        mirror.runtime,
        cliActor,
        { name: 'Win 11', arm64: { enabled: true, sha256: sha }, x86_64: { enabled: true, sha256: big } },
        mirror.url,
      );
      const url = `${mirror.url}/d/${sha}/Win11.pvmp`;
      expect((await (await fetch(url)).arrayBuffer()).byteLength).toBe(1 << 20);
      expect((await (await fetch(url, { headers: { Range: 'bytes=0-99' } })).arrayBuffer()).byteLength).toBe(100);
      // An aborted download.
      await new Promise<void>((resolve) => {
        const req = http.get(`${mirror.url}/d/${big}/Win11-intel.pvmp`, (res) => {
          res.once('data', () => {
            req.destroy();
            setTimeout(resolve, 100);
          });
        });
        req.on('error', () => undefined);
      });
      expect((await fetch(`${mirror.url}/healthz`)).status).toBe(200);
      await mirror.runtime.activity.flush();
      const text = await mirror.runtime.metrics.registry.metrics();
      const labels = '{image="Win 11",arch="arm64"}';
      const intel = '{image="Win 11",arch="x86_64"}';
      expect(text).toContain(`goldmirror_downloads_started_total${labels} 2`);
      expect(text).toContain(`goldmirror_downloads_completed_total${labels} 2`);
      expect(text).toContain(`goldmirror_downloads_started_total${intel} 1`);
      expect(text).toContain(`goldmirror_downloads_aborted_total${intel} 1`);
      expect(text).not.toContain('image=""');
      expect(text).toMatch(new RegExp(`goldmirror_download_bytes_total\\{image="Win 11",arch="arm64"\\} (\\d+)`));
      const bytes = Number(/goldmirror_download_bytes_total\{image="Win 11",arch="arm64"\} (\d+)/.exec(text)![1]);
      expect(bytes).toBeGreaterThanOrEqual((1 << 20) + 100);
      expect(bytes).toBe((1 << 20) + 100);
      expect(text).toContain('goldmirror_active_downloads 0');
      expect(text).toContain('goldmirror_ingests_total{result="stored"} 2');
      expect(text).toContain(`goldmirror_ingest_bytes_total ${(1 << 20) + (64 << 20)}`);
      expect(text).toMatch(/goldmirror_disk_free_bytes \d+/);
      expect(text).toContain(`goldmirror_blob_bytes ${(1 << 20) + (64 << 20)}`);
      expect(text).toMatch(
        /goldmirror_http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} 1/,
      );

      // The full download counts toward the image; the 100-byte range does not.
      const view = (await import('../../server/services/images.js')).getImage(mirror.runtime, image.id, mirror.url);
      expect((await view).arm64.downloads).toBe(1);
      expect((await view).lastDownloadAt).not.toBeNull();
    } finally {
      await mirror.close();
    }
  });
});
