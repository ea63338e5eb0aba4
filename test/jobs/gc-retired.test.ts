/**
 * Retired packages and garbage collection (issue 17, item 2): a package an
 * image stopped using is kept until the admin marked the portal updated,
 * the grace period has passed since then, and nobody downloaded it within
 * the grace period; the grace period never counts from the upload. Real
 * SQLite and files; the services and GC are given fake clocks (times
 * relative to now), downloads are real HTTP requests, and the scheduled GC
 * runs on a fake clock injected into the runtime.
 */
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sha256 } from '../../storage/digest.js';
import { createLogger } from '../../server/log.js';
import { openRuntime } from '../../server/runtime.js';
import { startServer } from '../../server/serve.js';
import { ingest } from '../../server/services/ingest.js';
import { cliActor } from '../../server/services/audit.js';
import { deleteBlob, getBlobView, listBlobViews } from '../../server/services/blobs.js';
import type { AppError } from '../../server/errors.js';
import { collectGarbage } from '../../server/services/gc.js';
import { createImage, deleteImage, listImages, updateImage } from '../../server/services/images.js';
import { importBundle } from '../../server/bundles/import.js';
import { confirmPortalValues } from '../../server/services/portal-changes.js';
import { bootstrapTestAdmin, call, mustSignIn } from '../helpers/api.js';
import { fakeClock } from '../helpers/clock.js';
import { makeTempDir, putBlob, startMirror, testBytes, testConfig, type TestMirror } from '../helpers/env.js';
import { exportToBuffer, openLocal, store } from '../bundles/helpers.js';

const HOUR = 3_600_000;
const GRACE = 24 * HOUR;
const BASE = 'http://mirror.example.lan:8080';

describe('retired packages', () => {
  let mirror: TestMirror;
  let t0: number;
  /** The services as of a moment relative to t0. */
  const at = (offsetMs: number) => ({ ...mirror.runtime, clock: fakeClock(t0 + offsetMs) });
  const gc = (offsetMs: number, dryRun = false) => collectGarbage(at(offsetMs), cliActor, { dryRun, graceMs: GRACE });
  const exists = async (sha: string) => (await mirror.runtime.store.stat(sha as Sha256)) !== null;
  /** A package uploaded long ago (so the upload-age rule alone would collect it). */
  const oldPackage = async (seed: string) => {
    const sha = await putBlob(mirror, testBytes(3000, seed), `${seed}.pvmp`);
    await mirror.runtime.db
      .updateTable('blobs')
      .set({ created_at: t0 - 100 * HOUR, ingested_at: t0 - 100 * HOUR })
      .where('sha256', '=', sha)
      .execute();
    return sha;
  };
  /** An image that used `from` since long ago and switched to `to` at `switchAt`. */
  const switched = async (name: string, from: string, to: string, switchAt: number) => {
    const img = await createImage(at(-90 * HOUR), cliActor, { name, arm64: { enabled: true, sha256: from } }, BASE);
    await updateImage(at(switchAt), cliActor, img.id, { arm64: { sha256: to } }, BASE);
    return img.id;
  };

  beforeEach(async () => {
    mirror = await startMirror();
    t0 = Date.now();
  });
  afterEach(async () => {
    await mirror.close();
  });

  it('keeps a package the portal still points at, however old its upload, until the portal is marked updated', async () => {
    const old = await oldPackage('retired-old');
    const next = await oldPackage('retired-next');
    const id = await switched('Win 11', old, next, -50 * HOUR);

    const report = await gc(0);
    expect(report.removed).toEqual([]);
    expect(report.kept).toEqual([{ sha256: old, reason: 'portal' }]);
    expect(await exists(old)).toBe(true);
    expect((await getBlobView(mirror.runtime, old, BASE)).retired).toEqual({
      since: new Date(t0 - 50 * HOUR).toISOString(),
      portalUpdatedAt: null,
      heldBy: [{ imageId: id, imageName: 'Win 11' }],
      lastDownloadAt: null,
    });

    // Marked updated 30 h ago: the grace period has passed since, nobody downloaded it.
    expect(await confirmPortalValues(at(-30 * HOUR), cliActor, id, BASE, undefined)).toBe(true);
    expect((await getBlobView(mirror.runtime, old, BASE)).retired).toMatchObject({
      portalUpdatedAt: new Date(t0 - 30 * HOUR).toISOString(),
      heldBy: [],
    });
    const second = await gc(0);
    expect(second.removed.map((r) => r.sha256)).toEqual([old]);
    expect(await exists(old)).toBe(false);
    expect(await exists(next)).toBe(true);
  });

  it('refuses a manual delete of a retired package the portal still points at, until the portal is marked updated', async () => {
    const old = await oldPackage('delete-held-old');
    const next = await oldPackage('delete-held-next');
    const id = await switched('Held', old, next, -5 * HOUR);
    const refused = await deleteBlob(mirror.runtime, cliActor, old, BASE).then(
      () => null,
      (err: unknown) => err as AppError,
    );
    expect(refused?.code).toBe('BLOB_IN_USE');
    expect(refused?.message).toContain('the portal still sends Macs to this package for golden image "Held"');
    expect(await exists(old)).toBe(true);
    await confirmPortalValues(at(0), cliActor, id, BASE, undefined);
    await deleteBlob(mirror.runtime, cliActor, old, BASE);
    expect(await exists(old)).toBe(false);
  });

  it('counts the grace period from when the package stopped being used, never from its upload', async () => {
    const old = await oldPackage('grace-old');
    const next = await oldPackage('grace-next');
    const id = await switched('Win 11', old, next, -1 * HOUR);
    await confirmPortalValues(at(-1 * HOUR), cliActor, id, BASE, undefined);

    // Uploaded 100 h ago, retired and released 1 h ago: kept.
    expect((await gc(0)).kept).toEqual([{ sha256: old, reason: 'grace' }]);
    expect((await gc(GRACE - HOUR - 60_000)).kept).toEqual([{ sha256: old, reason: 'grace' }]);
    expect(await exists(old)).toBe(true);
    const report = await gc(GRACE - HOUR + 60_000);
    expect(report.removed.map((r) => r.sha256)).toEqual([old]);
    expect(await exists(old)).toBe(false);
  });

  it('keeps a retired package that was downloaded within the grace period', async () => {
    const old = await oldPackage('dl-old');
    const next = await oldPackage('dl-next');
    const id = await switched('Win 11', old, next, -50 * HOUR);
    await confirmPortalValues(at(-48 * HOUR), cliActor, id, BASE, undefined);
    // A Mac that still has the old link downloads the package now.
    const res = await fetch(`${mirror.url}/d/${old}/old-link.pvmp`);
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(3000);
    await mirror.runtime.activity.flush();

    expect((await gc(0)).kept).toEqual([{ sha256: old, reason: 'downloaded' }]);
    expect(await exists(old)).toBe(true);
    const retired = (await getBlobView(mirror.runtime, old, BASE)).retired!;
    expect(Date.parse(retired.lastDownloadAt!)).toBeGreaterThanOrEqual(t0 - 1000);
    // A grace period after that download, with none since, it goes.
    expect((await gc(GRACE + 60 * 60_000)).removed.map((r) => r.sha256)).toEqual([old]);
  });

  it('starts the grace period of a deleted image’s packages at its deletion', async () => {
    const longAgo = await oldPackage('deleted-long-ago');
    const recently = await oldPackage('deleted-recently');
    const a = await createImage(
      at(-90 * HOUR),
      cliActor,
      { name: 'A', arm64: { enabled: true, sha256: longAgo } },
      BASE,
    );
    const b = await createImage(
      at(-90 * HOUR),
      cliActor,
      { name: 'B', arm64: { enabled: true, sha256: recently } },
      BASE,
    );
    await deleteImage(at(-25 * HOUR), cliActor, a.id, BASE);
    await deleteImage(at(-1 * HOUR), cliActor, b.id, BASE);
    const report = await gc(0);
    expect(report.removed.map((r) => r.sha256)).toEqual([longAgo]);
    expect(report.kept).toEqual([{ sha256: recently, reason: 'grace' }]);
  });

  it('catches a change no service recorded (a direct write, like a bundle import): the portal hold and a grace period from then', async () => {
    const old = await oldPackage('direct-old');
    const next = await oldPackage('direct-next');
    const img = await createImage(
      at(-90 * HOUR),
      cliActor,
      { name: 'Imported', arm64: { enabled: true, sha256: old } },
      BASE,
    );
    await mirror.runtime.db.updateTable('images').set({ arm64_sha256: next }).where('id', '=', img.id).execute();

    const dry = await gc(0, true);
    expect(dry.kept).toEqual([{ sha256: old, reason: 'portal' }]);
    const usage = await mirror.runtime.db
      .selectFrom('blob_usage')
      .selectAll()
      .where('sha256', '=', old)
      .executeTakeFirstOrThrow();
    expect(usage).toEqual({ sha256: old, retired_at: t0, released_at: null });
    await confirmPortalValues(at(1 * HOUR), cliActor, img.id, BASE, undefined);
    expect((await gc(2 * HOUR)).kept).toEqual([{ sha256: old, reason: 'grace' }]);
    expect((await gc(GRACE + 2 * HOUR)).removed.map((r) => r.sha256)).toEqual([old]);
  });

  it('is used again: no longer retired, and never collected while used', async () => {
    const old = await oldPackage('reused-old');
    const next = await oldPackage('reused-next');
    const id = await switched('Win 11', old, next, -50 * HOUR);
    await updateImage(at(-40 * HOUR), cliActor, id, { arm64: { sha256: old } }, BASE);
    expect((await getBlobView(mirror.runtime, old, BASE)).retired).toBeNull();
    const report = await gc(0);
    // `next` was used for ten hours while the portal kept the old values (the switch was undone, so the
    // pending change went away with nothing to mark): released when it retired, 40 h ago, never downloaded.
    expect(report.removed.map((r) => r.sha256)).toEqual([next]);
    expect(report.kept).toEqual([]);
    expect(await exists(old)).toBe(true);
  });

  it('shows retired packages as such on the packages page', async () => {
    const old = await oldPackage('page-old');
    const next = await oldPackage('page-next');
    const unused = await oldPackage('page-unused');
    const id = await switched('Page image', old, next, -2 * HOUR);
    const views = await listBlobViews(mirror.runtime, BASE);
    expect(views.find((v) => v.sha256 === unused)!.retired).toBeNull();
    expect(views.find((v) => v.sha256 === next)!.retired).toBeNull();
    await bootstrapTestAdmin(mirror);
    const session = await mustSignIn(mirror.url);
    const html = (await call(mirror.url, 'GET', '/admin/blobs', { session })).text;
    expect(html).toMatch(
      new RegExp(
        `page-old\\.pvmp</a>.*?<span class="badge bad">retired</span> since .*?the portal still sends Macs here until you update it for <a href="/admin/images/${id}">Page image</a>`,
        's',
      ),
    );
    expect(html).toMatch(/page-unused\.pvmp<\/a>.*?<span class="muted">unused<\/span>/s);
    await confirmPortalValues(at(-1 * HOUR), cliActor, id, BASE, undefined);
    const after = (await call(mirror.url, 'GET', `/admin/blobs/${old}`, { session })).text;
    const until = new Date(t0 - 1 * HOUR + GRACE).toISOString().slice(0, 16).replace('T', ' ');
    expect(after).toContain(
      `kept until at least ${until} UTC (24 h after the portal update and after the last download)`,
    );
  });
});

describe('scheduled garbage collection on a fake clock', () => {
  it('keeps a retired package while the portal points at it, and removes it a grace period after the portal update', async () => {
    const dir = await makeTempDir();
    // A lease far longer than the jumps below: this process stays the leader however far the clock moves.
    const config = testConfig(dir, {
      gcIntervalMs: HOUR,
      gcGraceMs: GRACE,
      verifyIntervalMs: 0,
      leaderLeaseMs: 365 * 24 * HOUR,
    });
    const clock = fakeClock(Date.now());
    const runtime = await openRuntime(config, createLogger('silent'), { clock });
    /** Moves the fake clock on, firing the timers that fall due (each scheduled GC run). */
    const advance = async (ms: number) => {
      const jobs = clock.pending().length;
      clock.advance(ms);
      // Every job that fired reschedules itself when its run is done: wait for all of them, GC among them.
      await expect.poll(() => clock.pending().length, { timeout: 10_000 }).toBeGreaterThanOrEqual(jobs);
      await runtime.leadership.idle();
    };
    const server = await startServer(runtime);
    try {
      const deps = runtime;
      const old = (await ingest(runtime.ingestDeps, { source: [testBytes(2000, 'sched-old')], fileName: 'old.pvmp' }))
        .blob.sha256;
      const next = (
        await ingest(runtime.ingestDeps, { source: [testBytes(2001, 'sched-next')], fileName: 'next.pvmp' })
      ).blob.sha256;
      await runtime.db
        .updateTable('blobs')
        .set({ created_at: clock.now() - 100 * HOUR, ingested_at: clock.now() - 100 * HOUR })
        .execute();
      const img = await createImage(deps, cliActor, { name: 'Scheduled', arm64: { enabled: true, sha256: old } }, BASE);
      await updateImage(deps, cliActor, img.id, { arm64: { sha256: next } }, BASE);
      const stored = async () => (await runtime.store.stat(old as Sha256)) !== null;

      await advance(2 * GRACE); // a scheduled run two grace periods later: still held by the portal
      expect(await stored()).toBe(true);
      await confirmPortalValues(deps, cliActor, img.id, BASE, undefined);
      await advance(GRACE - 2 * HOUR);
      expect(await stored()).toBe(true);
      await advance(3 * HOUR);
      expect(await stored()).toBe(false);
      expect(
        await runtime.db.selectFrom('audit_log').select(['actor', 'target']).where('action', '=', 'blob.gc').execute(),
      ).toEqual([{ actor: 'system:goldmirror', target: `blob:${old}` }]);
    } finally {
      await server.close(1000);
      await runtime.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('retired packages that arrive by bundle import or sync', () => {
  it('keeps the package the portal still points at after an import replaced it, and starts its retirement then', async () => {
    const source = await openLocal();
    const target = await openLocal();
    try {
      const first = await store(source, testBytes(5000, 'bundle-first'), 'Win-first.pvmp');
      const image = await createImage(
        source.runtime,
        cliActor,
        { name: 'Win', arm64: { enabled: true, sha256: first } },
        BASE,
      );
      const importInto = async (tarBytes: Buffer) =>
        importBundle(target.runtime.ingestDeps, Readable.from([tarBytes]), { dryRun: false, actor: cliActor });
      await importInto((await exportToBuffer(source, { includeBlobs: true })).tar);
      // The admin opens the images page: the portal now holds the first package.
      expect((await listImages(target.runtime, BASE)).map((i) => i.portalChange)).toEqual([null]);

      const second = await store(source, testBytes(5000, 'bundle-second'), 'Win-second.pvmp');
      await updateImage(source.runtime, cliActor, image.id, { arm64: { sha256: second } }, BASE);
      const importedAt = Date.now();
      await importInto((await exportToBuffer(source, { includeBlobs: true })).tar);
      // Both packages look ancient, so only the portal rule can keep the first one.
      await target.runtime.db.updateTable('blobs').set({ created_at: 0, ingested_at: 0 }).execute();

      const report = await collectGarbage(target.runtime, cliActor, { dryRun: false, graceMs: GRACE });
      expect(report.removed).toEqual([]);
      expect(report.kept).toEqual([{ sha256: first, reason: 'portal' }]);
      expect(await target.runtime.store.stat(first as Sha256)).not.toBeNull();
      const usage = await target.runtime.db
        .selectFrom('blob_usage')
        .selectAll()
        .where('sha256', '=', first)
        .executeTakeFirstOrThrow();
      expect(usage.released_at).toBeNull();
      expect(usage.retired_at).toBeGreaterThanOrEqual(importedAt);
    } finally {
      await source.close();
      await target.close();
    }
  });
});
