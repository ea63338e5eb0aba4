/**
 * Packages an image has used. A package no image uses any more is
 * "retired"; it is "released" once no confirmed portal value points at it
 * either (portal-changes.ts), and only then can GC count its grace period
 * (see retiredHold). These steps run inside the caller's transaction.
 */
import type { Db } from '../db/open.js';
import { storedDigests } from '../db/repos/blobs.js';
import { insertBlobUsageIfMissing, listBlobUsage, listRetiredBlobs, setBlobUsage } from '../db/repos/blob-usage.js';
import { imageDigests } from '../db/repos/images.js';
import { listConfirmedSlots } from '../db/repos/portal-confirmed.js';

/**
 * Brings blob_usage up to date with the images and the confirmed portal
 * values: a package in use has no retirement; one no image uses gets its
 * retirement time (now, if not recorded yet), and its release time once no
 * confirmed portal value points at it. Called after every image change and
 * by GC, so a writer that forgot only makes the grace period start later.
 */
export async function syncBlobUsage(db: Db, now: number): Promise<void> {
  const used = await imageDigests(db);
  const held = await portalHeldDigests(db);
  let rows = await listBlobUsage(db);
  const known = new Set(rows.map((r) => r.sha256));
  // Every stored package an image or the portal points at gets a row, even one that a writer which
  // does not call this (a bundle import or sync) brought in and replaced before anything else ran.
  const missing = [...new Set([...used, ...held])].filter((sha256) => !known.has(sha256));
  if (missing.length > 0) {
    const stored = await storedDigests(db, missing);
    for (const sha256 of stored) await insertBlobUsageIfMissing(db, sha256);
    if (stored.length > 0) rows = await listBlobUsage(db);
  }
  for (const row of rows) {
    let retired: number | null = null;
    let released: number | null = null;
    if (!used.has(row.sha256)) {
      retired = row.retired_at ?? now;
      released = held.has(row.sha256) ? null : (row.released_at ?? Math.max(now, retired));
    }
    if (retired !== row.retired_at || released !== row.released_at) {
      await setBlobUsage(db, row.sha256, { retiredAt: retired, releasedAt: released });
    }
  }
}

/** Digests that some image's confirmed portal values still send Macs to. */
export async function portalHeldDigests(db: Db): Promise<Set<string>> {
  const rows = await listConfirmedSlots(db);
  const held = new Set<string>();
  for (const r of rows) {
    if (r.arm64_enabled === 1 && r.arm64_sha256) held.add(r.arm64_sha256);
    if (r.x86_64_enabled === 1 && r.x86_64_sha256) held.add(r.x86_64_sha256);
  }
  return held;
}

/** A package no image uses any more, and what still keeps it. */
export interface Retirement {
  /** When the last image stopped using it. */
  retiredAt: number;
  /** When no confirmed portal value pointed at it any more; null while one does. */
  releasedAt: number | null;
  /** Images whose portal still holds it (their portal update is pending). */
  heldBy: Array<{ imageId: number; imageName: string }>;
  /** Last download activity (a finished download or a running transfer). */
  lastDownloadAt: number | null;
}

/** Retired packages (all, or only `sha256`), as recorded by the last syncBlobUsage. */
export async function loadRetirements(db: Db, sha256?: string): Promise<Map<string, Retirement>> {
  const rows = await listRetiredBlobs(db, sha256);
  const result = new Map<string, Retirement>();
  if (rows.length === 0) return result;
  const holders = await listConfirmedSlots(db);
  for (const r of rows) {
    const heldBy = holders
      .filter(
        (h) =>
          (h.arm64_enabled === 1 && h.arm64_sha256 === r.sha256) ||
          (h.x86_64_enabled === 1 && h.x86_64_sha256 === r.sha256),
      )
      .map((h) => ({ imageId: h.imageId, imageName: h.imageName }));
    const downloads = [r.lastDownloadAt, r.lastActiveAt].filter((t): t is number => t !== null);
    result.set(r.sha256, {
      retiredAt: r.retiredAt,
      releasedAt: r.releasedAt,
      heldBy,
      lastDownloadAt: downloads.length ? Math.max(...downloads) : null,
    });
  }
  return result;
}

/**
 * Why GC must keep a retired package, or null when it may go: the portal
 * still points at it, the grace period since its release has not passed,
 * or it was downloaded within the grace period.
 */
export function retiredHold(
  retirement: Retirement | undefined,
  now: number,
  graceMs: number,
): 'portal' | 'grace' | 'downloaded' | null {
  if (!retirement) return null;
  if (retirement.releasedAt === null) return 'portal';
  if (now - retirement.releasedAt < graceMs) return 'grace';
  if (retirement.lastDownloadAt !== null && now - retirement.lastDownloadAt < graceMs) return 'downloaded';
  return null;
}
