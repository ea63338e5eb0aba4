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
import fs from 'node:fs/promises';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import { withBlobLock } from '../db/blob-lock.js';
import type { Db } from '../db/open.js';
import { activeBlobs } from './activity.js';
import { recordAudit, type Actor } from './audit.js';
import { loadRetirements, portalHeldDigests, retiredHold, syncBlobUsage } from './portal-changes.js';

export interface GcOptions {
  dryRun: boolean;
  graceMs: number;
  now?: number;
}

export interface GcReport {
  dryRun: boolean;
  removed: Array<{ sha256: string; size: number; name: string; orphanFile: boolean }>;
  freedBytes: number;
  /** portal: retired, and an image's portal values still point at it; downloaded: within the grace period. */
  kept: Array<{ sha256: string; reason: 'grace' | 'in-use' | 'portal' | 'downloaded' }>;
}

export async function collectGarbage(deps: { db: Db; store: BlobStore }, actor: Actor, options: GcOptions): Promise<GcReport> {
  const { db, store } = deps;
  const now = options.now ?? Date.now();
  const report: GcReport = { dryRun: options.dryRun, removed: [], freedBytes: 0, kept: [] };
  // Deletes that an earlier run (or a killed process) left half done: finish or undo them first.
  if (!options.dryRun) await recoverInterruptedDeletes(deps);
  // Records retirements a writer did not (e.g. a bundle import): their grace period starts now at the latest.
  await syncBlobUsage(db, now);
  const retirements = await loadRetirements(db);
  const referenced = await referencedDigests(db);
  // Whatever the retirement records say, a package the portal still sends Macs to is never removed.
  const portalHeld = await portalHeldDigests(db);
  const rows = await db.selectFrom('blobs').select(['sha256', 'size', 'name', 'created_at', 'ingested_at']).execute();
  const age = (r: { created_at: number; ingested_at: number | null }) => now - Math.max(r.created_at, r.ingested_at ?? 0);
  const active = await activeBlobs(db, now);

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
    if (active.has(row.sha256)) {
      report.kept.push({ sha256: row.sha256, reason: 'in-use' });
      continue;
    }
    if (!options.dryRun) {
      // Decision and unlink as one step: an ingest of the same content commits its row and file either before
      // (then the re-check sees its fresh ingested_at and keeps it) or after (then it lands on a clean slate).
      const removed = await withBlobLock(db, async (trx) => {
        // Re-check inside the lock: an image may have taken it, a download started, or it was just ingested again.
        if ((await referencedDigests(trx)).has(row.sha256) || (await activeBlobs(trx, now)).has(row.sha256)) return false;
        const current = await trx.selectFrom('blobs').select(['created_at', 'ingested_at']).where('sha256', '=', row.sha256).executeTakeFirst();
        if (!current || age(current) < options.graceMs) return false;
        // A writer that does not record retirements (a bundle import) may have moved an image off it since.
        await syncBlobUsage(trx, now);
        if (retiredHold((await loadRetirements(trx, row.sha256)).get(row.sha256), now, options.graceMs)) return false;
        await trx.deleteFrom('blobs').where('sha256', '=', row.sha256).execute();
        await trx.deleteFrom('download_stats').where('sha256', '=', row.sha256).execute();
        await recordAudit(trx, { actor, action: 'blob.gc', target: `blob:${row.sha256}`, at: now, details: { size: row.size, name: row.name } });
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
    const st = await fs.stat(store.layout.blobFile(blob.sha256)).catch(() => null);
    if (!st || now - st.mtimeMs < options.graceMs) continue;
    // A row may have appeared since we listed (an ingest finishing): look again, and unlink in the same step.
    const hasRow = async (q: Db) => (await q.selectFrom('blobs').select('sha256').where('sha256', '=', blob.sha256).executeTakeFirst()) !== undefined;
    const orphan = options.dryRun
      ? !(await hasRow(db))
      : await withBlobLock(db, async (trx) => (await hasRow(trx)) ? false : { detached: await store.detach(blob.sha256) });
    if (!orphan) continue;
    if (orphan !== true) await orphan.detached?.discard();
    report.removed.push({ sha256: blob.sha256, size: blob.size, name: '', orphanFile: true });
    report.freedBytes += blob.size;
  }
  return report;
}

async function referencedDigests(db: Db): Promise<Set<string>> {
  const rows = await db.selectFrom('images').select(['arm64_sha256', 'x86_64_sha256']).execute();
  return new Set(rows.flatMap((r) => [r.arm64_sha256, r.x86_64_sha256]).filter((d): d is string => d !== null));
}

/**
 * Puts back blob files whose delete never committed (the deleting process
 * died inside its transaction) and removes the ones whose row is gone.
 */
export async function recoverInterruptedDeletes(deps: { db: Db; store: BlobStore }): Promise<{ restored: Sha256[]; removed: Sha256[] }> {
  return deps.store.recoverDetached(async (sha256) => (await deps.db.selectFrom('blobs').select('sha256').where('sha256', '=', sha256).executeTakeFirst()) !== undefined);
}
