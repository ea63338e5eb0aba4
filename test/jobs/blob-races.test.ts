/**
 * Narrow races between decisions that end in a file operation on one digest
 * (a check quarantining a corrupt copy, GC or a bundle rollback moving one aside to delete it)
 * and an ingest of the same content (a repair) committing meanwhile. Each test
 * forces the bad interleaving: the real store is wrapped so that one file
 * operation waits until the test lets it go, and the test runs the competing
 * ingest in that gap. With decision and file operation in one withBlobLock
 * step the ingest cannot land in the gap (it waits, then commits after), and
 * the good copy survives; before, it was quarantined or unlinked under its row.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { importBundle } from '../../server/bundles/import.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, type Manifest } from '../../server/bundles/manifest.js';
import { withBlobLock } from '../../server/db/blob-lock.js';
import { IntegrityChecker } from '../../server/jobs/integrity-checker.js';
import { createLogger } from '../../server/log.js';
import { findBlob } from '../../server/db/repos/blobs.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import { cliActor } from '../../server/services/audit.js';
import { collectGarbage } from '../../server/services/gc.js';
import { ingest, type IngestDeps } from '../../server/services/ingest.js';
import { corruptStored, quarantined, removeStored, storedDigest } from '../helpers/blobs.js';
import { spawnCli } from '../helpers/cli.js';
import { makeTempDir, sha256Hex, testBytes, testConfig } from '../helpers/env.js';
import { onS3 } from '../helpers/s3.js';
import { waitFor } from '../helpers/wait.js';
import { blobEntry, buildTar, headerOffset, manifestEntry } from '../bundles/helpers.js';

/**
 * The real store, except that the first call of `method` stops until
 * release(): `arrived` resolves when it stopped. `staged` resolves when an
 * ingest through this store has its verified temp file ready to commit.
 * For 'open', the stop comes after the real open failed (a check that just
 * found the file missing), before the failure reaches the caller.
 */
function pausing(store: BlobStore, method: 'quarantine' | 'detach' | 'open') {
  let arrive!: () => void;
  let release!: () => void;
  let stagedNow!: () => void;
  const arrived = new Promise<void>((r) => (arrive = r));
  const released = new Promise<void>((r) => (release = r));
  const staged = new Promise<void>((r) => (stagedNow = r));
  let paused = false;
  const proxy = new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const real = (...args: unknown[]): Promise<unknown> =>
        (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      if (prop === method) {
        return async (...args: unknown[]) => {
          if (paused) return real(...args);
          paused = true;
          if (method === 'open') {
            try {
              return await real(...args);
            } catch (err) {
              arrive();
              await released;
              throw err;
            }
          }
          arrive();
          await released;
          return real(...args);
        };
      }
      if (prop === 'stage' || prop === 'stageFile') {
        return async (...args: unknown[]) => {
          const result = await real(...args);
          stagedNow();
          return result;
        };
      }
      return (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
  return { store: proxy, arrived, staged, release };
}

/**
 * Waits until the competing ingest either finished (nothing held it back) or
 * has its file staged and is about to commit (it then queues behind the lock;
 * a few event-loop turns let it get there).
 */
async function settledOrStaged(ingestRun: Promise<unknown>, staged: Promise<void>): Promise<void> {
  await Promise.race([
    ingestRun.then(
      () => undefined,
      () => undefined,
    ),
    staged.then(async () => {
      for (let i = 0; i < 5; i++) await tick();
    }),
  ]);
}

let dir: string;
let runtime: Runtime;
beforeEach(async () => {
  dir = await makeTempDir('goldmirror-races-');
  runtime = await openRuntime(testConfig(dir), createLogger('silent'));
});
afterEach(async () => {
  await runtime.close();
  await fs.rm(dir, { recursive: true, force: true });
});

const depsWith = (store: BlobStore): IngestDeps => ({ db: runtime.db, store, clock: runtime.clock, minFreeBytes: 0 });

async function stored(data: Buffer, fileName = 'race.pvmp'): Promise<Sha256> {
  return (await ingest(depsWith(runtime.store), { source: [data], fileName })).blob.sha256 as Sha256;
}

/** A checker of its own on `store` (a paused wrapper), one check at a time. */
function checkerOn(store: BlobStore): IntegrityChecker {
  return new IntegrityChecker({
    db: runtime.db,
    clock: runtime.clock,
    store,
    log: createLogger('silent'),
    concurrency: 1,
    maxBytesPerSec: 0,
  });
}

describe('a check that found a corrupt or missing copy, racing a repair', () => {
  it('a repair landing between "corrupt" and the move to quarantine keeps the repaired copy in place', async () => {
    const data = testBytes(300_000, 'quarantine-vs-repair');
    const sha = await stored(data);
    await corruptStored(runtime, sha, 123_456);

    const paused = pausing(runtime.store, 'quarantine');
    const checker = checkerOn(paused.store);
    try {
      const check = checker.check(sha);
      await paused.arrived; // the check read the corrupt copy and is about to move it aside
      const repair = ingest(depsWith(paused.store), { source: [data], fileName: 'race.pvmp' });
      await settledOrStaged(repair, paused.staged);
      paused.release();
      const [verdict] = await Promise.all([check, repair]);

      expect(verdict).toBe('corrupt');
      // The repaired copy is in place and servable; only the corrupt one went to quarantine.
      expect(await storedDigest(runtime, sha)).toBe(sha);
      expect((await findBlob(runtime.db, sha))?.state).toBe('ok');
      const moved = await quarantined(runtime);
      expect(moved).toHaveLength(1);
      expect(sha256Hex(moved[0]!.bytes)).not.toBe(sha);
    } finally {
      paused.release();
      await checker.close();
    }
  });

  it('a repair landing between "missing" and recording it leaves the row ok', async () => {
    const data = testBytes(200_000, 'missing-vs-repair');
    const sha = await stored(data);
    await removeStored(runtime, sha);

    const paused = pausing(runtime.store, 'open');
    const checker = checkerOn(paused.store);
    try {
      const check = checker.check(sha);
      await paused.arrived; // the check found no file and is about to record 'missing'
      await ingest(depsWith(runtime.store), { source: [data], fileName: 'race.pvmp' });
      paused.release();

      expect(await check).toBe('replaced');
      const row = await findBlob(runtime.db, sha);
      expect({ state: row?.state, detail: row?.state_detail }).toEqual({ state: 'ok', detail: null });
      expect(await storedDigest(runtime, sha)).toBe(sha);
    } finally {
      paused.release();
      await checker.close();
    }
  });
});

describe('GC racing an ingest of the same content', () => {
  it("an ingest landing between GC's decision and its move aside keeps its file under its row", async () => {
    const data = testBytes(100_000, 'gc-vs-ingest');
    const sha = await stored(data);
    const paused = pausing(runtime.store, 'detach');
    try {
      // Unreferenced and past a zero grace period: GC removes it, and stops just before it moves the file aside.
      const gc = collectGarbage({ db: runtime.db, clock: runtime.clock, store: paused.store }, cliActor, {
        dryRun: false,
        graceMs: 0,
      });
      await paused.arrived;
      const again = ingest(depsWith(paused.store), { source: [data], fileName: 'again.pvmp' });
      await settledOrStaged(again, paused.staged);
      paused.release();
      const [report, result] = await Promise.all([gc, again]);

      expect(report.removed.map((r) => r.sha256)).toEqual([sha]);
      // GC removed the old copy; the ingest that reported success stored its own, row and file.
      expect(result.blob.sha256).toBe(sha);
      const row = await findBlob(runtime.db, sha);
      expect({ state: row?.state, name: row?.name }).toEqual({ state: 'ok', name: 'again.pvmp' });
      expect(await storedDigest(runtime, sha)).toBe(sha);
    } finally {
      paused.release();
    }
  });
});

describe('a failed bundle import rolling back, racing an ingest of the same content', () => {
  const X = testBytes(150_000, 'bundle-x');
  const Y = testBytes(90_000, 'bundle-y');
  const xSha = sha256Hex(X);
  const ySha = sha256Hex(Y);
  const manifest: Manifest = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    createdAt: new Date(0).toISOString(),
    includesBlobs: true,
    images: [
      {
        name: 'Race',
        description: '',
        arm64: { enabled: true, sha256: xSha },
        x86_64: { enabled: true, sha256: ySha },
      },
    ],
    groups: [],
    blobs: [
      { sha256: xSha, size: X.length, name: 'x.pvmp' },
      { sha256: ySha, size: Y.length, name: 'y.pvmp' },
    ],
  };
  /** The bundle with Y's bytes tampered: X is stored first, then Y fails and the import rolls back. */
  const tamperedBundle = async (): Promise<Buffer> => {
    const bad = Buffer.from(Y);
    bad[500] = bad[500]! ^ 0x01;
    return buildTar([manifestEntry(manifest), blobEntry(xSha, X), blobEntry(ySha, bad)]);
  };

  it('an ingest of X that completes while the import runs is not undone by the rollback', async () => {
    const archive = await tamperedBundle();
    const source = new PassThrough();
    const run = importBundle(depsWith(runtime.store), source, { dryRun: false, actor: cliActor });
    // Everything up to Y's entry: the import stores X, then waits for more.
    source.write(archive.subarray(0, headerOffset(archive, `blobs/sha256/${ySha}`)));
    await waitFor(async () => (await findBlob(runtime.db, xSha as Sha256)) !== undefined, { intervalMs: 10 }).catch(
      () => undefined,
    );
    expect(await findBlob(runtime.db, xSha as Sha256), 'the import stored X').toBeDefined();

    // Meanwhile an admin imports the same package; it reports success.
    const other = await ingest(depsWith(runtime.store), { source: [X], fileName: 'x-by-admin.pvmp' });
    expect(other.blob.sha256).toBe(xSha);

    source.end(archive.subarray(headerOffset(archive, `blobs/sha256/${ySha}`)));
    await expect(run).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });

    const row = await findBlob(runtime.db, xSha as Sha256);
    expect({ state: row?.state, name: row?.name }).toEqual({ state: 'ok', name: 'x-by-admin.pvmp' });
    expect(await storedDigest(runtime, xSha)).toBe(xSha);
    expect(await findBlob(runtime.db, ySha as Sha256)).toBeUndefined();
  });

  it("an ingest of X landing between the rollback's decision and its move aside keeps its file under its row", async () => {
    const paused = pausing(runtime.store, 'detach');
    try {
      const run = importBundle(depsWith(paused.store), new PassThrough().end(await tamperedBundle()), {
        dryRun: false,
        actor: cliActor,
      });
      const failed = run.then(
        () => null,
        (err: unknown) => err,
      );
      await paused.arrived; // the rollback decided X is its own to remove, and is about to move it aside
      const again = ingest(depsWith(paused.store), { source: [X], fileName: 'x-by-admin.pvmp' });
      await settledOrStaged(again, paused.staged);
      paused.release();
      const [err, result] = await Promise.all([failed, again]);

      expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
      expect(result.blob.sha256).toBe(xSha);
      const row = await findBlob(runtime.db, xSha as Sha256);
      expect({ state: row?.state, name: row?.name }).toEqual({ state: 'ok', name: 'x-by-admin.pvmp' });
      expect(await storedDigest(runtime, xSha)).toBe(xSha);
    } finally {
      paused.release();
    }
  });
});

describe('across processes', () => {
  it('a CLI import in another process cannot put its file in place while this process holds the blob lock', async () => {
    const data = testBytes(4 * 1024 * 1024 + 5, 'cross-process');
    const sha = await stored(data);
    await corruptStored(runtime, sha, 1_000_000);
    const corruptVersion = await runtime.store.version(sha);
    const source = path.join(dir, 'good.pvmp');
    await fs.writeFile(source, data);

    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    // What a check holds while it decides and quarantines; here it only looks at the file while the other process runs.
    const held = withBlobLock(runtime.db, async () => {
      entered();
      await released;
      return runtime.store.version(sha);
    });
    await inside;

    const child = spawnCli(['import', source], {
      MIRROR_DATA_DIR: dir,
      MIRROR_MIN_FREE_BYTES: '0',
      MIRROR_LOG_LEVEL: 'silent',
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', r));
    let exitedEarly = false;
    void exited.then(() => (exitedEarly = true));
    try {
      // Wait until the other process has staged the whole verified file (it then asks for the lock), or ended.
      const partPrefix = `ingest-${child.pid}@`;
      const stagedInTmp = async () => {
        for (const name of await fs.readdir(runtime.store.layout.tmpDir)) {
          if (!name.startsWith(partPrefix)) continue;
          const st = await fs.stat(path.join(runtime.store.layout.tmpDir, name)).catch(() => null);
          if (st?.size === data.length) return true;
        }
        return false;
      };
      // On S3 a package smaller than one part is staged in memory: it is staged once the child has read its file.
      const sourceReadInMemory = () =>
        readdirSync(`/proc/${child.pid}/fd`).some((fd) => {
          try {
            if (readlinkSync(`/proc/${child.pid}/fd/${fd}`) !== source) return false;
            return (
              /^pos:\s+(\d+)$/m.exec(readFileSync(`/proc/${child.pid}/fdinfo/${fd}`, 'utf8'))?.[1] === `${data.length}`
            );
          } catch {
            return false; // closed while we looked
          }
        });
      const staged = async () => (onS3 ? sourceReadInMemory() : stagedInTmp());
      await waitFor(async () => exitedEarly || (await staged()), { timeoutMs: 30_000, intervalMs: 10 }).catch(
        () => undefined,
      );
      // Give it ample time to finish its fsync and reach the lock: a process without the lock would have renamed by now.
      await new Promise((r) => setTimeout(r, 500));
      expect(exitedEarly, `the other process ended while the lock was held: ${stderr}`).toBe(false);
      expect(await runtime.store.version(sha), 'the blob file changed while the lock was held').toBe(corruptVersion);
    } finally {
      release();
    }
    expect(await held).toBe(corruptVersion);
    expect(await exited).toBe(0);
    expect(stdout).toContain(sha);
    expect(await storedDigest(runtime, sha)).toBe(sha);
  }, 60_000);
});
