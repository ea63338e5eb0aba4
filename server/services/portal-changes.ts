/**
 * Portal values that went stale, and packages that are retired.
 *
 * Per golden image the database keeps the values last confirmed as entered
 * in the Management Portal. While the image's current values differ (a
 * package, an enable switch or the public address changed), the change is
 * pending: shown with old and new values until the admin marks the portal
 * updated. A package no image uses any more is "retired"; it is "released"
 * once no confirmed portal value points at it either, and only then can GC
 * count its grace period (see retiredHold).
 */
import { createHash } from 'node:crypto';
import type { Db } from '../db/open.js';
import type { Flag, ImageRow, PortalConfirmedRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { downloadUrl } from '../links.js';
import { actorLabel, recordAudit, type Actor } from './audit.js';

const ARCH_KEYS = ['arm64', 'x86_64'] as const;
type ArchKey = (typeof ARCH_KEYS)[number];
const LABELS: Record<ArchKey, string> = { arm64: 'Apple silicon', x86_64: 'Intel' };

/** One architecture's values as the portal form takes them. */
export interface PortalArchValues {
  enabled: boolean;
  /** null when the architecture is off, or (current values) while no public address is set. */
  downloadUrl: string | null;
  sha256: string | null;
}

export interface PortalFieldChange {
  arch: ArchKey;
  label: string;
  field: 'enabled' | 'downloadUrl' | 'sha256';
  from: boolean | string | null;
  to: boolean | string | null;
}

/** A pending portal update: what the portal holds (as last confirmed) and what it needs now. */
export interface PortalChange {
  /** When the values first differed; null if that was not recorded (e.g. a change made by a bundle import). */
  since: string | null;
  confirmedAt: string;
  confirmedBy: string;
  /** Names the new values; marking the portal updated with another fingerprint is refused (they changed again). */
  fingerprint: string;
  previous: Record<ArchKey, PortalArchValues>;
  current: Record<ArchKey, PortalArchValues>;
  changes: PortalFieldChange[];
}

interface ArchState {
  enabled: Flag;
  sha256: string | null;
}

type Values = Record<ArchKey, ArchState>;

const valuesOf = (row: Pick<ImageRow, 'arm64_enabled' | 'arm64_sha256' | 'x86_64_enabled' | 'x86_64_sha256'>): Values => ({
  arm64: { enabled: row.arm64_enabled, sha256: row.arm64_sha256 },
  x86_64: { enabled: row.x86_64_enabled, sha256: row.x86_64_sha256 },
});

/** The confirmed values keep their own address; an unknown one (null) counts as the current address. */
function effectiveUrl(confirmed: PortalConfirmedRow, baseUrl: string | null): string | null {
  return confirmed.public_url ?? baseUrl;
}

/** Whether the portal needs other values than the confirmed ones (no names needed: a digest's link only differs by its address). */
function differs(confirmed: PortalConfirmedRow, current: Values, baseUrl: string | null): boolean {
  const old = valuesOf(confirmed);
  const addressChanged = effectiveUrl(confirmed, baseUrl) !== baseUrl;
  return ARCH_KEYS.some((arch) => {
    const o = old[arch];
    const n = current[arch];
    if (o.enabled !== n.enabled) return true;
    return n.enabled === 1 && (o.sha256 !== n.sha256 || addressChanged);
  });
}

function archValues(state: ArchState, baseUrl: string | null, names: Map<string, string>): PortalArchValues {
  if (state.enabled !== 1 || state.sha256 === null) return { enabled: state.enabled === 1, downloadUrl: null, sha256: null };
  const url = baseUrl === null ? null : downloadUrl(baseUrl, state.sha256, names.get(state.sha256) ?? 'package.pvmp');
  return { enabled: true, downloadUrl: url, sha256: state.sha256 };
}

function describeChange(confirmed: PortalConfirmedRow, row: ImageRow, baseUrl: string | null, names: Map<string, string>): PortalChange | null {
  const current = valuesOf(row);
  if (!differs(confirmed, current, baseUrl)) return null;
  const oldValues = valuesOf(confirmed);
  const previous = {} as Record<ArchKey, PortalArchValues>;
  const now = {} as Record<ArchKey, PortalArchValues>;
  const changes: PortalFieldChange[] = [];
  for (const arch of ARCH_KEYS) {
    const o = archValues(oldValues[arch], effectiveUrl(confirmed, baseUrl), names);
    const n = archValues(current[arch], baseUrl, names);
    previous[arch] = o;
    now[arch] = n;
    const label = LABELS[arch];
    if (o.enabled !== n.enabled) changes.push({ arch, label, field: 'enabled', from: o.enabled, to: n.enabled });
    if (!n.enabled) continue;
    if (o.downloadUrl !== n.downloadUrl) changes.push({ arch, label, field: 'downloadUrl', from: o.downloadUrl, to: n.downloadUrl });
    if (o.sha256 !== n.sha256) changes.push({ arch, label, field: 'sha256', from: o.sha256, to: n.sha256 });
  }
  return {
    since: confirmed.changed_at === null ? null : new Date(confirmed.changed_at).toISOString(),
    confirmedAt: new Date(confirmed.confirmed_at).toISOString(),
    confirmedBy: confirmed.confirmed_by,
    fingerprint: fingerprintOf(now),
    previous,
    current: now,
    changes,
  };
}

function fingerprintOf(values: Record<ArchKey, PortalArchValues>): string {
  return createHash('sha256').update(JSON.stringify(ARCH_KEYS.map((a) => [a, values[a].enabled, values[a].sha256, values[a].downloadUrl]))).digest('hex').slice(0, 16);
}

/** The image's portal values as the ones the portal holds, confirmed by `by` at `now`. */
function confirmedValues(row: ImageRow, baseUrl: string | null, by: string, now: number) {
  return {
    public_url: baseUrl,
    arm64_enabled: row.arm64_enabled,
    arm64_sha256: row.arm64_sha256,
    x86_64_enabled: row.x86_64_enabled,
    x86_64_sha256: row.x86_64_sha256,
    confirmed_at: now,
    confirmed_by: by,
  };
}

/** Records the image's current values as what the portal holds (a new image, or one that had no record). */
export async function recordBaseline(db: Db, row: ImageRow, baseUrl: string | null, actor: string, now: number): Promise<void> {
  await db
    .insertInto('portal_confirmed')
    .values({ image_id: row.id, ...confirmedValues(row, baseUrl, actor, now) })
    .onConflict((oc) => oc.column('image_id').doNothing())
    .execute();
}

/**
 * The pending portal change of each image (null: the portal is up to date).
 * Images without a record (created by a bundle import) get their current
 * values as the baseline, and records whose address was not known yet adopt
 * the current one: the URLs an admin could copy are built from it.
 */
export async function loadPortalChanges(db: Db, rows: ImageRow[], baseUrl: string | null, now: number): Promise<Map<number, PortalChange | null>> {
  const result = new Map<number, PortalChange | null>();
  if (rows.length === 0) return result;
  const ids = rows.map((r) => r.id);
  let confirmed = await db.selectFrom('portal_confirmed').selectAll().where('image_id', 'in', ids).execute();
  const missing = rows.filter((r) => !confirmed.some((c) => c.image_id === r.id));
  const unknownAddress = baseUrl !== null && confirmed.some((c) => c.public_url === null);
  if (missing.length > 0 || unknownAddress) {
    for (const row of missing) await recordBaseline(db, row, baseUrl, 'system:goldmirror', now);
    if (unknownAddress) await db.updateTable('portal_confirmed').set({ public_url: baseUrl }).where('public_url', 'is', null).where('image_id', 'in', ids).execute();
    confirmed = await db.selectFrom('portal_confirmed').selectAll().where('image_id', 'in', ids).execute();
  }
  const byId = new Map(confirmed.map((c) => [c.image_id, c]));
  const digests = [...new Set(confirmed.flatMap((c) => [c.arm64_sha256, c.x86_64_sha256]).concat(rows.flatMap((r) => [r.arm64_sha256, r.x86_64_sha256])))].filter(
    (d): d is string => d !== null,
  );
  const names = new Map(
    digests.length ? (await db.selectFrom('blobs').select(['sha256', 'name']).where('sha256', 'in', digests).execute()).map((b) => [b.sha256, b.name]) : [],
  );
  for (const row of rows) {
    const c = byId.get(row.id);
    result.set(row.id, c ? describeChange(c, row, baseUrl, names) : null);
  }
  return result;
}

/**
 * Keeps `changed_at` true to the values after a write: set when an image's
 * values start to differ from the confirmed ones, cleared when they match again.
 */
export async function refreshChangedAt(db: Db, baseUrl: string | null, now: number, imageIds?: number[]): Promise<void> {
  let query = db.selectFrom('portal_confirmed').innerJoin('images', 'images.id', 'portal_confirmed.image_id').select([
    'portal_confirmed.image_id',
    'portal_confirmed.public_url',
    'portal_confirmed.arm64_enabled',
    'portal_confirmed.arm64_sha256',
    'portal_confirmed.x86_64_enabled',
    'portal_confirmed.x86_64_sha256',
    'portal_confirmed.changed_at',
    'portal_confirmed.confirmed_at',
    'portal_confirmed.confirmed_by',
    'images.arm64_enabled as cur_arm64_enabled',
    'images.arm64_sha256 as cur_arm64_sha256',
    'images.x86_64_enabled as cur_x86_64_enabled',
    'images.x86_64_sha256 as cur_x86_64_sha256',
  ]);
  if (imageIds) query = query.where('portal_confirmed.image_id', 'in', imageIds.length ? imageIds : [-1]);
  for (const r of await query.execute()) {
    const current: Values = {
      arm64: { enabled: r.cur_arm64_enabled, sha256: r.cur_arm64_sha256 },
      x86_64: { enabled: r.cur_x86_64_enabled, sha256: r.cur_x86_64_sha256 },
    };
    const pending = differs(r, current, baseUrl);
    if (pending && r.changed_at === null) await db.updateTable('portal_confirmed').set({ changed_at: now }).where('image_id', '=', r.image_id).execute();
    if (!pending && r.changed_at !== null) await db.updateTable('portal_confirmed').set({ changed_at: null }).where('image_id', '=', r.image_id).execute();
  }
}

/** Before the public address changes, records the old one where it was not known, so the change shows as pending. */
export async function adoptPublicAddress(db: Db, previousUrl: string | null): Promise<void> {
  if (previousUrl === null) return;
  await db.updateTable('portal_confirmed').set({ public_url: previousUrl }).where('public_url', 'is', null).execute();
}

/**
 * Marks the portal updated: the image's current values become the confirmed
 * ones (audited with old and new). `fingerprint`, when given, must name the
 * values the admin saw; a change made since is refused with CONFLICT.
 * Returns false when nothing was pending.
 */
export async function confirmPortalValues(
  deps: { db: Db; now?: () => number },
  actor: Actor,
  imageId: number,
  baseUrl: string | null,
  fingerprint: string | undefined,
): Promise<boolean> {
  const now = (deps.now ?? Date.now)();
  return deps.db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
    if (!row) throw new AppError('NOT_FOUND', `no golden image with id ${imageId}`);
    const change = (await loadPortalChanges(trx, [row], baseUrl, now)).get(imageId) ?? null;
    if (change === null) return false;
    if (fingerprint !== undefined && fingerprint !== change.fingerprint) {
      throw new AppError('CONFLICT', 'the portal values of this image changed again since they were shown; review the new values and mark the portal updated again');
    }
    await trx
      .updateTable('portal_confirmed')
      .set({ ...confirmedValues(row, baseUrl, actorLabel(actor), now), changed_at: null })
      .where('image_id', '=', imageId)
      .execute();
    await recordAudit(trx, {
      actor,
      action: 'image.portal-updated',
      target: `image:${imageId}`,
      at: now,
      details: { name: row.name, previous: change.previous, current: change.current },
    });
    await syncBlobUsage(trx, now);
    return true;
  });
}

/**
 * Brings blob_usage up to date with the images and the confirmed portal
 * values: a package in use has no retirement; one no image uses gets its
 * retirement time (now, if not recorded yet), and its release time once no
 * confirmed portal value points at it. Called after every image change and
 * by GC, so a writer that forgot only makes the grace period start later.
 */
export async function syncBlobUsage(db: Db, now: number): Promise<void> {
  const images = await db.selectFrom('images').select(['arm64_sha256', 'x86_64_sha256']).execute();
  const used = new Set(images.flatMap((r) => [r.arm64_sha256, r.x86_64_sha256]).filter((d): d is string => d !== null));
  const held = await portalHeldDigests(db);
  let rows = await db.selectFrom('blob_usage').selectAll().execute();
  const known = new Set(rows.map((r) => r.sha256));
  // Every stored package an image or the portal points at gets a row, even one that a writer which
  // does not call this (a bundle import or sync) brought in and replaced before anything else ran.
  const missing = [...new Set([...used, ...held])].filter((sha256) => !known.has(sha256));
  if (missing.length > 0) {
    const stored = await db.selectFrom('blobs').select('sha256').where('sha256', 'in', missing).execute();
    for (const { sha256 } of stored) await db.insertInto('blob_usage').values({ sha256 }).onConflict((oc) => oc.column('sha256').doNothing()).execute();
    if (stored.length > 0) rows = await db.selectFrom('blob_usage').selectAll().execute();
  }
  for (const row of rows) {
    let retired: number | null = null;
    let released: number | null = null;
    if (!used.has(row.sha256)) {
      retired = row.retired_at ?? now;
      released = held.has(row.sha256) ? null : (row.released_at ?? Math.max(now, retired));
    }
    if (retired !== row.retired_at || released !== row.released_at) {
      await db.updateTable('blob_usage').set({ retired_at: retired, released_at: released }).where('sha256', '=', row.sha256).execute();
    }
  }
}

/** Digests that some image's confirmed portal values still send Macs to. */
export async function portalHeldDigests(db: Db): Promise<Set<string>> {
  const rows = await db.selectFrom('portal_confirmed').select(['arm64_enabled', 'arm64_sha256', 'x86_64_enabled', 'x86_64_sha256']).execute();
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
  let query = db
    .selectFrom('blob_usage')
    .leftJoin('download_stats', 'download_stats.sha256', 'blob_usage.sha256')
    .leftJoin('blob_activity', 'blob_activity.sha256', 'blob_usage.sha256')
    .select(['blob_usage.sha256', 'blob_usage.retired_at', 'blob_usage.released_at', 'download_stats.last_download_at', 'blob_activity.last_active_at'])
    .where('blob_usage.retired_at', 'is not', null);
  if (sha256 !== undefined) query = query.where('blob_usage.sha256', '=', sha256);
  const rows = await query.execute();
  const result = new Map<string, Retirement>();
  if (rows.length === 0) return result;
  const holders = await db
    .selectFrom('portal_confirmed')
    .innerJoin('images', 'images.id', 'portal_confirmed.image_id')
    .select(['images.id', 'images.name', 'portal_confirmed.arm64_enabled', 'portal_confirmed.arm64_sha256', 'portal_confirmed.x86_64_enabled', 'portal_confirmed.x86_64_sha256'])
    .orderBy('images.name')
    .execute();
  for (const r of rows) {
    const heldBy = holders
      .filter((h) => (h.arm64_enabled === 1 && h.arm64_sha256 === r.sha256) || (h.x86_64_enabled === 1 && h.x86_64_sha256 === r.sha256))
      .map((h) => ({ imageId: h.id, imageName: h.name }));
    const downloads = [r.last_download_at, r.last_active_at].filter((t): t is number => t !== null && t !== undefined).map(Number);
    result.set(r.sha256, {
      retiredAt: Number(r.retired_at),
      releasedAt: r.released_at === null ? null : Number(r.released_at),
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
export function retiredHold(retirement: Retirement | undefined, now: number, graceMs: number): 'portal' | 'grace' | 'downloaded' | null {
  if (!retirement) return null;
  if (retirement.releasedAt === null) return 'portal';
  if (now - retirement.releasedAt < graceMs) return 'grace';
  if (retirement.lastDownloadAt !== null && now - retirement.lastDownloadAt < graceMs) return 'downloaded';
  return null;
}
