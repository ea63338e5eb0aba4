import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sha256 } from '../../storage/digest.js';
import { createLogger } from '../../server/log.js';
import { IntegrityChecker } from '../../server/jobs/integrity-checker.js';
import { queueDueChecks } from '../../server/jobs/verify-schedule.js';
import { dueAfter } from '../../server/services/verify-due.js';
import { every } from '../../server/jobs/scheduler.js';
import { findBlob } from '../../server/db/repos/blobs.js';
import { ingest } from '../../server/services/ingest.js';
import { integritySummary } from '../../server/services/integrity.js';
import { createImage } from '../../server/services/images.js';
import { createGroup } from '../../server/services/groups.js';
import { cliActor } from '../../server/services/audit.js';
import { corruptStored, quarantined, removeStored } from '../helpers/blobs.js';
import { fakeClock } from '../helpers/clock.js';
import { putBlob, sha256Hex, startMirror, testBytes, testStream, type TestMirror } from '../helpers/env.js';
import { waitFor } from '../helpers/wait.js';

describe('integrity checks', () => {
  let mirror: TestMirror;
  beforeEach(async () => {
    mirror = await startMirror();
  });
  afterEach(async () => {
    await mirror.close();
  });

  it('passes an intact blob and records when', async () => {
    const sha = await putBlob(mirror, testBytes(300_000, 'ok'));
    await mirror.runtime.db.updateTable('blobs').set({ verified_at: null }).execute();
    expect(await mirror.runtime.checker.check(sha as Sha256)).toBe('ok');
    const row = await findBlob(mirror.runtime.db, sha as Sha256);
    expect(row?.state).toBe('ok');
    expect(row?.verified_at).toBeGreaterThan(0);
  });

  it('flags one flipped byte: quarantined, link 503, dashboard names images and groups, re-import repairs', async () => {
    const data = testBytes(2 * 1024 * 1024 + 3, 'flip');
    const sha = await putBlob(mirror, data, 'Win11.pvmp');
    const image = await createImage(
      mirror.runtime,
      cliActor,
      { name: 'Win 11', arm64: { enabled: true, sha256: sha } },
      mirror.url,
    );
    await createGroup(mirror.runtime, cliActor, { name: 'Engineering', imageId: image.id });
    await corruptStored(mirror, sha, 1_000_000);

    expect(await mirror.runtime.checker.check(sha as Sha256)).toBe('corrupt');
    const row = await findBlob(mirror.runtime.db, sha as Sha256);
    expect(row?.state).toBe('corrupt');
    expect(row?.state_detail).toMatch(/^content hashes to [0-9a-f]{64}$/);
    const moved = await quarantined(mirror);
    expect(moved).toHaveLength(1);
    expect(moved[0]!.name).toMatch(new RegExp(`^${sha}-\\d+$`));

    const res = await fetch(`${mirror.url}/d/${sha}/Win11.pvmp`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BLOB_UNAVAILABLE');

    const summary = await integritySummary(mirror.runtime);
    expect(summary.blobs).toEqual({ ok: 0, corrupt: 1, missing: 0 });
    expect(summary.problems[0]).toMatchObject({
      sha256: sha,
      state: 'corrupt',
      images: [{ name: 'Win 11', arch: 'arm64' }],
      groups: ['Engineering'],
    });

    const metrics = await mirror.runtime.metrics.registry.metrics();
    expect(metrics).toMatch(/goldmirror_verify_runs_total\{result="corrupt"\} 1/);
    expect(metrics).toMatch(/goldmirror_corrupt_blobs 1/);

    await ingest(mirror.runtime.ingestDeps, { source: [data], fileName: 'Win11.pvmp' });
    const repaired = await fetch(`${mirror.url}/d/${sha}/Win11.pvmp`);
    expect(repaired.status).toBe(200);
    expect(sha256Hex(Buffer.from(await repaired.arrayBuffer()))).toBe(sha);
    expect(await mirror.runtime.checker.check(sha as Sha256)).toBe('ok');
  });

  it('a corrupt blob that cannot be moved to quarantine stays withheld, and the audit says why', async () => {
    const sha = (await putBlob(mirror, testBytes(50_000, 'stuck'))) as Sha256;
    await corruptStored(mirror, sha, 10);
    // The disk refuses the move (as a read-only quarantine dir or a failing disk would); everything else is real.
    const store = new Proxy(mirror.runtime.store, {
      get(target, prop) {
        if (prop === 'quarantine')
          return () =>
            Promise.reject(Object.assign(new Error('EACCES: permission denied, rename'), { code: 'EACCES' }));
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const checker = new IntegrityChecker({
      db: mirror.runtime.db,
      clock: mirror.runtime.clock,
      store,
      log: createLogger('silent'),
      concurrency: 1,
      maxBytesPerSec: 0,
    });
    try {
      expect(await checker.check(sha)).toBe('corrupt');
    } finally {
      await checker.close();
    }
    expect((await findBlob(mirror.runtime.db, sha))?.state).toBe('corrupt');
    const res = await fetch(`${mirror.url}/d/${sha}/stuck.pvmp`);
    expect(res.status).toBe(503);
    await res.arrayBuffer();
    const audit = await mirror.runtime.db
      .selectFrom('audit_log')
      .select(['action', 'details'])
      .where('target', '=', `blob:${sha}`)
      .execute();
    expect(audit.map((a) => [a.action, JSON.parse(a.details ?? '{}') as unknown])).toEqual([
      [
        'blob.corrupt',
        {
          detail: expect.stringMatching(/^content hashes to /) as string,
          quarantined: null,
          quarantineError: 'EACCES: permission denied, rename',
        },
      ],
    ]);
  });

  it('reports a blob whose file went missing the same way', async () => {
    const sha = await putBlob(mirror, testBytes(1000, 'gone'));
    await removeStored(mirror, sha);
    expect(await mirror.runtime.checker.check(sha as Sha256)).toBe('missing');
    expect((await findBlob(mirror.runtime.db, sha as Sha256))?.state).toBe('missing');
    expect((await fetch(`${mirror.url}/d/${sha}/x.pvmp`)).status).toBe(503);
  });

  it('can be cancelled mid-check, shows progress, and leaves the state alone', async () => {
    const { blob } = await ingest(mirror.runtime.ingestDeps, {
      source: testStream(64 << 20, 'slow'),
      fileName: 'slow.pvmp',
    });
    // A slow checker: 16 MiB/s over a 64 MiB blob takes ~4 s.
    const checker = new IntegrityChecker({
      db: mirror.runtime.db,
      store: mirror.runtime.store,
      log: createLogger('silent'),
      clock: mirror.runtime.clock,
      concurrency: 1,
      maxBytesPerSec: 16 << 20,
    });
    const result = checker.check(blob.sha256 as Sha256);
    let progress = checker.status().running[0];
    for (let i = 0; i < 200 && !(progress && progress.bytesDone > 0); i += 1) {
      await new Promise((r) => setTimeout(r, 10));
      progress = checker.status().running[0];
    }
    expect(progress).toMatchObject({ sha256: blob.sha256, totalBytes: 64 << 20 });
    expect(progress!.bytesDone).toBeGreaterThan(0);
    expect(progress!.bytesDone).toBeLessThan(64 << 20);
    expect(checker.cancel(blob.sha256)).toBe(1);
    expect(await result).toBe('cancelled');
    expect((await findBlob(mirror.runtime.db, blob.sha256 as Sha256))?.state).toBe('ok');
    await checker.close();
  });

  it('shuts down cleanly with checks queued and running', async () => {
    const shas = [await putBlob(mirror, testBytes(4 << 20, 'a')), await putBlob(mirror, testBytes(4 << 20, 'b'))];
    const checker = new IntegrityChecker({
      db: mirror.runtime.db,
      clock: mirror.runtime.clock,
      store: mirror.runtime.store,
      log: createLogger('silent'),
      concurrency: 1,
      maxBytesPerSec: 1 << 20,
    });
    const results = shas.map((s) => checker.check(s as Sha256));
    await checker.close();
    expect(await Promise.all(results)).toEqual(['cancelled', 'cancelled']);
    expect(await checker.check(shas[0] as Sha256)).toBe('cancelled');
  });

  it('caps the read rate', async () => {
    const sha = await putBlob(mirror, testBytes(3 << 20, 'rate'));
    const checker = new IntegrityChecker({
      db: mirror.runtime.db,
      clock: mirror.runtime.clock,
      store: mirror.runtime.store,
      log: createLogger('silent'),
      concurrency: 1,
      maxBytesPerSec: 2 << 20,
    });
    const started = performance.now();
    expect(await checker.check(sha as Sha256)).toBe('ok');
    // 3 MiB at 2 MiB/s with a 250 ms burst allowance: at least ~1.2 s.
    expect(performance.now() - started).toBeGreaterThan(1000);
    await checker.close();
  });

  it('rejects a bad concurrency setting by name', () => {
    expect(
      () =>
        new IntegrityChecker({
          db: mirror.runtime.db,
          clock: mirror.runtime.clock,
          store: mirror.runtime.store,
          log: createLogger('silent'),
          concurrency: 0,
          maxBytesPerSec: 0,
        }),
    ).toThrow(/concurrency must be a whole number >= 1, got 0 \(number\)/);
  });
});

describe('verify schedule (fake clock)', () => {
  let mirror: TestMirror;
  beforeEach(async () => {
    mirror = await startMirror({ verifyIntervalMs: 0 });
  });
  afterEach(async () => {
    await mirror.close();
  });

  it('checks each blob once per interval, spread by a per-blob offset', async () => {
    const day = 86_400_000;
    const week = 7 * day;
    const t0 = 1_800_000_000_000;
    const shas: string[] = [];
    for (let i = 0; i < 6; i += 1) shas.push(await putBlob(mirror, testBytes(10_000, `sched-${i}`)));
    await mirror.runtime.db.updateTable('blobs').set({ verified_at: t0 }).execute();
    const clock = fakeClock(t0);
    const checker = new IntegrityChecker({
      db: mirror.runtime.db,
      store: mirror.runtime.store,
      log: createLogger('silent'),
      clock,
      concurrency: 4,
      maxBytesPerSec: 0,
    });
    const deps = { db: mirror.runtime.db, clock };
    /** One scheduler tick at `at`. */
    const tick = (at: number) => {
      clock.set(at);
      return queueDueChecks(deps, checker, week);
    };
    const drain = async (): Promise<void> => {
      await waitFor(() => checker.status().running.length + checker.status().queued.length === 0, {
        what: 'the checker to drain',
        intervalMs: 5,
      });
    };

    expect(await tick(t0 + 0.8 * week)).toEqual([]);
    const seen = new Map<string, number>();
    for (let now = t0 + 0.8 * week; now <= t0 + 1.05 * week; now += day / 4) {
      for (const sha of await tick(now)) {
        expect(seen.has(sha)).toBe(false);
        seen.set(sha, now);
      }
      await drain();
    }
    expect([...seen.keys()].sort()).toEqual([...shas].sort());
    for (const [sha, at] of seen) {
      expect(at).toBeGreaterThanOrEqual(t0 + dueAfter(sha, week));
      expect(at).toBeLessThanOrEqual(t0 + dueAfter(sha, week) + day / 4);
    }
    // Not all on the same tick.
    expect(new Set(seen.values()).size).toBeGreaterThan(1);
    // The checks recorded the fake time, so nothing is due again right after.
    expect(await tick(t0 + 1.06 * week)).toEqual([]);
    await checker.close();
  });

  it('runs ticks from a fake clock until stopped', async () => {
    const clock = fakeClock(0);
    const ticks: number[] = [];
    const job = every(
      clock,
      1000,
      async () => void ticks.push(clock.now()),
      () => undefined,
    );
    for (let i = 0; i < 3; i += 1) {
      clock.advance(1000);
      await new Promise((r) => setImmediate(r));
    }
    await job.stop();
    expect(ticks).toEqual([1000, 2000, 3000]);
    expect(clock.pending()).toHaveLength(0);
  });
});

describe('verify after ingest (MIRROR_VERIFY_AFTER_INGEST)', () => {
  it('re-reads every stored package and reports ok', async () => {
    const mirror = await startMirror({ verifyAfterIngest: true });
    try {
      const data = testBytes(3 << 20, 'after-ingest');
      const { blob } = await ingest(mirror.runtime.ingestDeps, { source: [data], fileName: 'a.pvmp' });
      expect(blob.sha256).toBe(sha256Hex(data));
      const metrics = await mirror.runtime.metrics.registry.metrics();
      expect(metrics).toMatch(/goldmirror_verify_runs_total\{result="ok"\} 1/);
    } finally {
      await mirror.close();
    }
  });
});
