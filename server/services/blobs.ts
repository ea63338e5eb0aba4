/** Stored packages as the API and pages show them: with their links and the images that use them. */
import { parseSha256, type Sha256 } from '../../storage/digest.js';
import { withBlobLock } from '../db/blob-lock.js';
import type { Db } from '../db/open.js';
import { markUpdateFilesCollected, updatesWithFile } from '../db/repos/pd-updates.js';
import { constraintViolation } from '../db/errors.js';
import { countBlobsNotOk, deleteBlobRow, findBlob, listBlobs, setBlobArch, totalBlobBytes } from '../db/repos/blobs.js';
import { downloadStatsOf, recentlyDownloaded } from '../db/repos/download-stats.js';
import { imagesUsing } from '../db/repos/images.js';
import type { BlobArch, BlobKind, BlobRow, BlobState } from '../db/schema.js';
import { AppError } from '../errors.js';
import { downloadUrl } from '../links.js';
import type { Arch } from './arches.js';
import { recordAudit, type Actor } from './audit.js';
import { loadRetirements, type Retirement, portalHeldDigests } from './blob-usage.js';
import type { DbDeps, ServiceDeps } from './deps.js';

export const BLOB_ARCHES: readonly BlobArch[] = ['arm64', 'x86_64', 'unknown'];
export const BLOB_ARCH_LABELS: Record<BlobArch, string> = {
  arm64: 'Apple silicon',
  x86_64: 'Intel',
  unknown: 'architecture not recorded',
};

/** Reads an architecture given by an admin (form, API, CLI, tus metadata); empty means unknown. */
export function parseBlobArch(value: unknown, what = 'arch'): BlobArch {
  if (value === undefined || value === null || value === '') return 'unknown';
  if (typeof value === 'string' && (BLOB_ARCHES as readonly string[]).includes(value)) return value as BlobArch;
  throw new AppError(
    'VALIDATION_FAILED',
    `${what} must be arm64 (Apple silicon), x86_64 (Intel) or unknown, not ${JSON.stringify(value)}`,
    {
      fields: [{ field: 'arch', message: 'arm64, x86_64 or unknown' }],
    },
  );
}

/**
 * Packages are the .pvmp files "Prepare for Transfer" writes; anything else
 * (most often the .txt checksum file next to it) is refused by name.
 */
export function assertPackageFileName(fileName: string): void {
  const base = fileName.split(/[\\/]/).pop() ?? '';
  if (/\.pvmp$/i.test(base) && base.length > '.pvmp'.length) return;
  const shown = base || 'the file';
  const message = /\.txt$/i.test(base)
    ? `${shown} is a checksum file, not a package: pick the .pvmp that "Prepare for Transfer" wrote, and ${shown} as its checksum file`
    : `${shown} is not a package: only .pvmp files (what Control Center's "Prepare for Transfer" writes) can be stored`;
  throw new AppError('PACKAGE_NAME_INVALID', message, {
    fileName: base,
    fields: [{ field: 'package', message: 'must be a .pvmp file' }],
  });
}

export interface BlobView {
  sha256: string;
  size: number;
  name: string;
  state: BlobState;
  /** The architecture it was uploaded or imported for. */
  arch: BlobArch;
  /** A golden-image package, or a Parallels Desktop update file (listed on the updates page instead). */
  kind: BlobKind;
  createdAt: string;
  verifiedAt: string | null;
  /** null while no public address is set. */
  url: string | null;
  usedBy: Array<{ imageId: number; imageName: string; arch: Arch }>;
  /** Set when no image uses it any more but one did: GC keeps it while the portal may still send Macs here. */
  retired: RetiredView | null;
}

export interface RetiredView {
  since: string;
  /** When no confirmed portal value pointed here any more; null while the images in heldBy await a portal update. */
  portalUpdatedAt: string | null;
  heldBy: Retirement['heldBy'];
  lastDownloadAt: string | null;
}

export async function listBlobViews(deps: Pick<ServiceDeps, 'db'>, baseUrl: string | null): Promise<BlobView[]> {
  const { db } = deps;
  const rows = await listBlobs(db);
  const usage = await usageOf(db, null);
  const retired = await loadRetirements(db);
  return rows.map((r) => toView(r, baseUrl, usage.get(r.sha256) ?? [], retired.get(r.sha256)));
}

/** The golden-image packages only (what the Packages page, the dashboard and the image form offer). */
export async function listPackageViews(deps: Pick<ServiceDeps, 'db'>, baseUrl: string | null): Promise<BlobView[]> {
  return (await listBlobViews(deps, baseUrl)).filter((b) => b.kind === 'package');
}

export async function getBlobView(
  deps: Pick<ServiceDeps, 'db'>,
  sha256Text: string,
  baseUrl: string | null,
): Promise<BlobView> {
  const { db } = deps;
  const sha256 = toDigest(sha256Text);
  const row = await findBlob(db, sha256);
  if (!row) throw new AppError('BLOB_UNKNOWN', `no package with sha256 ${sha256} is stored`);
  return toView(
    row,
    baseUrl,
    (await usageOf(db, sha256)).get(sha256) ?? [],
    (await loadRetirements(db, sha256)).get(sha256),
  );
}

/**
 * Deletes a package no image uses: the row first (so links stop at once and
 * the schema's foreign keys get the last word), then the file.
 */
export async function deleteBlob(
  deps: Pick<ServiceDeps, 'db' | 'store' | 'clock'>,
  actor: Actor,
  sha256Text: string,
  baseUrl: string | null,
): Promise<BlobView> {
  const view = await getBlobView(deps, sha256Text, baseUrl);
  if (view.usedBy.length > 0) {
    const names = [...new Set(view.usedBy.map((u) => u.imageName))].map((n) => JSON.stringify(n)).join(', ');
    throw new AppError(
      'BLOB_IN_USE',
      `the package is used by golden image ${names}; change or delete the image first`,
      {
        usedBy: view.usedBy,
      },
    );
  }
  const sha256 = view.sha256 as Sha256;
  const portalHeld = () =>
    new AppError(
      'BLOB_IN_USE',
      `the portal still sends Macs to this package for golden image ${(view.retired?.heldBy ?? []).map((h) => JSON.stringify(h.imageName)).join(', ') || '(see its page)'}; ` +
        'copy the new values into the portal and mark it updated first',
      { heldBy: view.retired?.heldBy ?? [] },
    );
  if (view.retired && view.retired.heldBy.length > 0) throw portalHeld();
  const publishedWith = async (db: Db) =>
    (await updatesWithFile(db, sha256)).filter((u) => u.published === 1).map((u) => u.version);
  const published = (versions: string[]) =>
    new AppError(
      'BLOB_IN_USE',
      `the update feed offers this file as Parallels Desktop ${versions.join(', ')}; unpublish that version first`,
      { versions },
    );
  const offered = await publishedWith(deps.db);
  if (offered.length > 0) throw published(offered);
  const now = deps.clock.now();
  const detached = await withBlobLock(deps.db, async (trx) => {
    if ((await portalHeldDigests(trx)).has(sha256)) throw portalHeld();
    const offeredNow = await publishedWith(trx);
    if (offeredNow.length > 0) throw published(offeredNow);
    // The foreign keys get the last word: an image that took the package since the check above.
    try {
      await deleteBlobRow(trx, sha256);
    } catch (err) {
      if (constraintViolation(err)?.kind === 'foreign_key') {
        throw new AppError(
          'BLOB_IN_USE',
          'the package was just put to use by a golden image; change or delete the image first',
        );
      }
      throw err;
    }
    // The versions whose file it was say so, as after garbage collection.
    await markUpdateFilesCollected(trx, sha256, now);
    await recordAudit(trx, {
      actor,
      action: 'blob.delete',
      target: `blob:${sha256}`,
      at: now,
      details: { size: view.size, name: view.name },
    });
    // In the same step as the row: a re-upload of the same content commits wholly before (and is deleted with
    // the row the admin chose to delete) or after (and stays, with its own row).
    return deps.store.detach(sha256);
  });
  await detached?.discard();
  return view;
}

/** Records (or corrects) the architecture of a stored package; audited. */
export async function updateBlobArch(
  deps: DbDeps,
  actor: Actor,
  sha256Text: string,
  archValue: unknown,
  baseUrl: string | null,
): Promise<BlobView> {
  const before = await getBlobView(deps, sha256Text, baseUrl);
  const arch = parseBlobArch(archValue);
  if (arch !== before.arch) {
    await deps.db.transaction().execute(async (trx) => {
      await setBlobArch(trx, before.sha256 as Sha256, arch);
      await recordAudit(trx, {
        actor,
        action: 'blob.arch',
        target: `blob:${before.sha256}`,
        at: deps.clock.now(),
        details: { from: before.arch, to: arch, name: before.name },
      });
    });
  }
  return getBlobView(deps, before.sha256, baseUrl);
}

/** The architecture of a form upload whose field came after the package part (a known one only; part of the ingest, not audited). */
export async function recordUploadArch(
  deps: Pick<ServiceDeps, 'db'>,
  sha256: string,
  arch: BlobArch | undefined,
  error?: AppError,
): Promise<void> {
  if (error) throw error;
  if (arch !== undefined && arch !== 'unknown') await setBlobArch(deps.db, toDigest(sha256), arch);
}

/** One sentence per image slot holding a package marked for the other architecture. */
export function archMismatchWarnings(
  slots: Array<{ arch: Arch; label: string; packageName: string | null; packageArch: BlobArch | null }>,
): string[] {
  const warnings: string[] = [];
  for (const slot of slots) {
    if (slot.packageArch === null || slot.packageArch === 'unknown' || slot.packageArch === slot.arch) continue;
    warnings.push(
      `${slot.label}: the package ${slot.packageName ?? ''} is marked for ${BLOB_ARCH_LABELS[slot.packageArch]}, not ${slot.label}`,
    );
  }
  return warnings;
}

function toDigest(text: string): Sha256 {
  try {
    return parseSha256(text);
  } catch {
    throw new AppError('DIGEST_INVALID', 'a package is addressed by its 64-digit sha256');
  }
}

async function usageOf(db: Db, only: Sha256 | null): Promise<Map<string, BlobView['usedBy']>> {
  const usage = new Map<string, BlobView['usedBy']>();
  for (const image of await imagesUsing(db, only === null ? null : [only])) {
    for (const [arch, sha] of [
      ['arm64', image.arm64_sha256],
      ['x86_64', image.x86_64_sha256],
    ] as const) {
      if (!sha) continue;
      const list = usage.get(sha) ?? [];
      list.push({ imageId: image.id, imageName: image.name, arch });
      usage.set(sha, list);
    }
  }
  return usage;
}

function toView(
  row: BlobRow,
  baseUrl: string | null,
  usedBy: BlobView['usedBy'],
  retirement: Retirement | undefined,
): BlobView {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    sha256: row.sha256,
    size: row.size,
    name: row.name,
    state: row.state,
    arch: row.arch,
    kind: row.kind,
    createdAt: new Date(row.created_at).toISOString(),
    verifiedAt: row.verified_at === null ? null : new Date(row.verified_at).toISOString(),
    url: baseUrl === null ? null : downloadUrl(baseUrl, row.sha256, row.name),
    usedBy,
    retired:
      usedBy.length === 0 && retirement
        ? {
            since: iso(retirement.retiredAt)!,
            portalUpdatedAt: iso(retirement.releasedAt),
            heldBy: retirement.heldBy,
            lastDownloadAt: iso(retirement.lastDownloadAt),
          }
        : null,
  };
}

/** Finished downloads of one package (all nodes). */
export async function downloadCountOf(deps: Pick<ServiceDeps, 'db'>, sha256: string): Promise<number> {
  const [stats] = await downloadStatsOf(deps.db, [sha256]);
  return Number(stats?.downloads ?? 0);
}

export interface RecentDownload {
  sha256: string;
  downloads: number;
  lastDownloadAt: string | null;
}

/** The packages downloaded last (all nodes), newest first. */
export async function recentDownloads(deps: Pick<ServiceDeps, 'db'>, limit: number): Promise<RecentDownload[]> {
  return (await recentlyDownloaded(deps.db, limit)).map((s) => ({
    sha256: s.sha256,
    downloads: Number(s.downloads),
    lastDownloadAt: s.last_download_at ? new Date(s.last_download_at).toISOString() : null,
  }));
}

/** A blob's row as stored (state, size, times), or undefined when it is not stored. */
export function findBlobRecord(deps: Pick<ServiceDeps, 'db'>, sha256: Sha256): Promise<BlobRow | undefined> {
  return findBlob(deps.db, sha256);
}

/** Every blob's row, for listings that need no views (the CLI's table). */
export function listBlobRecords(deps: Pick<ServiceDeps, 'db'>): Promise<BlobRow[]> {
  return listBlobs(deps.db);
}

/** How many packages are withheld (corrupt or missing), for the metrics. */
export function countWithheldBlobs(deps: Pick<ServiceDeps, 'db'>): Promise<number> {
  return countBlobsNotOk(deps.db);
}

/** Bytes of all stored packages, for the metrics. */
export function storedBlobBytes(deps: Pick<ServiceDeps, 'db'>): Promise<number> {
  return totalBlobBytes(deps.db);
}
