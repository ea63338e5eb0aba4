/**
 * Garbage collection: removes packages no golden image references, never
 * one younger than the grace period and never one with a transfer running
 * (heartbeats in the database, so this holds across processes and nodes).
 * A retired package (one an image used) is kept until the portal was marked
 * updated, the grace period has passed since, and nobody downloaded it
 * within the grace period (portal-changes.ts, retiredHold).
 * Files with no database row (an ingest that crashed between rename and
 * insert) are removed after the same grace period.
 */
import type { Sha256 } from '../../storage/digest.js';
import { withBlobLock } from '../db/blob-lock.js';
import { blobExists, deleteBlobRow, findBlob, listBlobsByDigest } from '../db/repos/blobs.js';
import { deleteDownloadStats } from '../db/repos/download-stats.js';
import { markUpdateFilesCollected } from '../db/repos/pd-updates.js';
import { imageDigests } from '../db/repos/images.js';
import { activeBlobs } from './activity.js';
import { recordAudit, type Actor } from './audit.js';
import { loadRetirements, portalHeldDigests, retiredHold, syncBlobUsage } from './blob-usage.js';
import type { ServiceDeps } from './deps.js';
import { updateFileHolds } from './pd-updates/retention.js';

export interface GcOptions {
  dryRun: boolean;
  graceMs: number;
  /** Stored Parallels Desktop update files kept whatever else holds them: the newest N versions (default 3). */
  keepUpdates?: number;
}

/** update: a Parallels Desktop update file that is published, still listed upstream, or among the newest kept. */
export type GcKeptReason = 'grace' | 'in-use' | 'portal' | 'downloaded' | 'update';

export interface GcReport {
  dryRun: boolean;
  removed: Array<{ sha256: string; size: number; name: string; orphanFile: boolean }>;
  freedBytes: number;
  /** portal: retired, and an image's portal values still point at it; downloaded: within the grace period. */
  kept: Array<{ sha256: string; reason: GcKeptReason }>;
  /** Temp files, temp objects and abandoned uploads of dead writers that this run removed. */
  tempRemoved: string[];
}

export async function collectGarbage(
  deps: Pick<ServiceDeps, 'db' | 'store' | 'clock'>,
  actor: Actor,
  options: GcOptions,
): Promise<GcReport> {
  const { db, store } = deps;
  const now = deps.clock.now();
  const report: GcReport = { dryRun: options.dryRun, removed: [], freedBytes: 0, kept: [], tempRemoved: [] };
  // Deletes that an earlier run (or a killed process) left half done: finish or undo them first.
  if (!options.dryRun) await recoverInterruptedDeletes(deps);
  // What dead writers left in tmp/ (on S3 also their open multipart uploads); this process's own ingests are kept.
  if (!options.dryRun) report.tempRemoved = await store.removeStaleTmpFiles({ whileRunning: true });
  // Records retirements a writer did not (e.g. a bundle import): their grace period starts now at the latest.
  await syncBlobUsage(db, now);
  const retirements = await loadRetirements(db);
  const referenced = await imageDigests(db);
  // Whatever the retirement records say, a package the portal still sends Macs to is never removed.
  const portalHeld = await portalHeldDigests(db);
  const rows = await listBlobsByDigest(db);
  const age = (r: { created_at: number; ingested_at: number | null }) =>
    now - Math.max(r.created_at, r.ingested_at ?? 0);
  const active = await activeBlobs(db, now);
  const updateOptions = { graceMs: options.graceMs, keep: options.keepUpdates ?? 3 };
  const updateHolds = await updateFileHolds(db, now, updateOptions);

  for (const row of rows) {
    if (referenced.has(row.sha256)) continue;
    if (age(row) < options.graceMs) {
      report.kept.push({ sha256: row.sha256, reason: 'grace' });
      continue;
    }
    const hold = portalHeld.has(row.sha256) ? 'portal' : retiredHold(retirements.get(row.sha256), now, options.graceMs);
    if (hold) {
      report.kept.push({ sha256: row.sha256, reason: hold });
      continue;
    }
    if (updateHolds.has(row.sha256)) {
      report.kept.push({ sha256: row.sha256, reason: 'update' });
      continue;
    }
    if (active.has(row.sha256)) {
      report.kept.push({ sha256: row.sha256, reason: 'in-use' });
      continue;
    }
    if (!options.dryRun) {
      // Decision and unlink as one step: an ingest of the same content commits its row and file either before
      // (then the re-check sees its fresh ingested_at and keeps it) or after (then it lands on a clean slate).
      const removed = await withBlobLock(db, async (trx) => {
        // Re-check inside the lock: an image may have taken it, a download started, or it was just ingested again.
        if ((await imageDigests(trx)).has(row.sha256) || (await activeBlobs(trx, now)).has(row.sha256)) return false;
        const current = await findBlob(trx, row.sha256 as Sha256);
        if (!current || age(current) < options.graceMs) return false;
        // A writer that does not record retirements (a bundle import) may have moved an image off it since.
        await syncBlobUsage(trx, now);
        if (retiredHold((await loadRetirements(trx, row.sha256)).get(row.sha256), now, options.graceMs)) return false;
        if ((await updateFileHolds(trx, now, updateOptions)).has(row.sha256)) return false;
        await deleteBlobRow(trx, row.sha256 as Sha256);
        // The versions that used it say so (their entry and digest stay, for the record).
        await markUpdateFilesCollected(trx, row.sha256, now);
        await deleteDownloadStats(trx, row.sha256);
        await recordAudit(trx, {
          actor,
          action: 'blob.gc',
          target: `blob:${row.sha256}`,
          at: now,
          details: { size: row.size, name: row.name },
        });
        return { detached: await store.detach(row.sha256 as Sha256) };
      });
      if (!removed) continue;
      await removed.detached?.discard();
    }
    report.removed.push({ sha256: row.sha256, size: row.size, name: row.name, orphanFile: false });
    report.freedBytes += row.size;
  }

  const known = new Set(rows.map((r) => r.sha256));
  for await (const blob of store.list()) {
    if (known.has(blob.sha256)) continue;
    if (now - blob.modifiedMs < options.graceMs) continue;
    // A row may have appeared since we listed (an ingest finishing): look again, and unlink in the same step.
    const orphan = options.dryRun
      ? !(await blobExists(db, blob.sha256))
      : await withBlobLock(db, async (trx) =>
          (await blobExists(trx, blob.sha256)) ? false : { detached: await store.detach(blob.sha256) },
        );
    if (!orphan) continue;
    if (orphan !== true) await orphan.detached?.discard();
    report.removed.push({ sha256: blob.sha256, size: blob.size, name: '', orphanFile: true });
    report.freedBytes += blob.size;
  }
  return report;
}

/**
 * Puts back blob files whose delete never committed (the deleting process
 * died inside its transaction) and removes the ones whose row is gone. Each
 * is decided inside the blob lock, so a delete or an ingest of the same
 * digest in flight commits wholly before or after.
 */
export async function recoverInterruptedDeletes(
  deps: Pick<ServiceDeps, 'db' | 'store'>,
): Promise<{ restored: Sha256[]; removed: Sha256[] }> {
  const result = { restored: [] as Sha256[], removed: [] as Sha256[] };
  for (const left of await deps.store.leftDetached()) {
    const restored = await withBlobLock(deps.db, async (trx) => {
      if ((await blobExists(trx, left.sha256)) && (await left.restore())) return true;
      await left.discard();
      return false;
    });
    (restored ? result.restored : result.removed).push(left.sha256);
  }
  return result;
}
