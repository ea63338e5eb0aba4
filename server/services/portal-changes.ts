/**
 * Portal values that went stale.
 *
 * Per golden image the database keeps the values last confirmed as entered
 * in the Management Portal. While the image's current values differ (a
 * package, an enable switch or the public address changed), the change is
 * pending: shown with old and new values until the admin marks the portal
 * updated. What this means for packages no image uses any more is in
 * blob-usage.ts (retired and released packages). The steps that take a
 * `db` and a `now` run inside the caller's transaction, at the caller's time.
 */
import { createHash } from 'node:crypto';
import type { Db } from '../db/open.js';
import { blobNames } from '../db/repos/blobs.js';
import { getImageById } from '../db/repos/images.js';
import {
  fillUnknownAddress,
  insertBaselineIfMissing,
  listConfirmed,
  listConfirmedWithCurrent,
  replaceConfirmed,
  setChangedAt,
  type ConfirmedValues,
} from '../db/repos/portal-confirmed.js';
import type { Flag, ImageRow, PortalConfirmedRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { downloadUrl } from '../links.js';
import { actorLabel, recordAudit, type Actor } from './audit.js';
import { syncBlobUsage } from './blob-usage.js';
import type { DbDeps } from './deps.js';

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

const valuesOf = (
  row: Pick<ImageRow, 'arm64_enabled' | 'arm64_sha256' | 'x86_64_enabled' | 'x86_64_sha256'>,
): Values => ({
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
  if (state.enabled !== 1 || state.sha256 === null)
    return { enabled: state.enabled === 1, downloadUrl: null, sha256: null };
  const url = baseUrl === null ? null : downloadUrl(baseUrl, state.sha256, names.get(state.sha256) ?? 'package.pvmp');
  return { enabled: true, downloadUrl: url, sha256: state.sha256 };
}

function describeChange(
  confirmed: PortalConfirmedRow,
  row: ImageRow,
  baseUrl: string | null,
  names: Map<string, string>,
): PortalChange | null {
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
    if (o.downloadUrl !== n.downloadUrl)
      changes.push({ arch, label, field: 'downloadUrl', from: o.downloadUrl, to: n.downloadUrl });
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
  return createHash('sha256')
    .update(JSON.stringify(ARCH_KEYS.map((a) => [a, values[a].enabled, values[a].sha256, values[a].downloadUrl])))
    .digest('hex')
    .slice(0, 16);
}

/** The image's portal values as the ones the portal holds, confirmed by `by` at `now`. */
function confirmedValues(row: ImageRow, baseUrl: string | null, by: string, now: number): ConfirmedValues {
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
export async function recordBaseline(
  db: Db,
  row: ImageRow,
  baseUrl: string | null,
  actor: string,
  now: number,
): Promise<void> {
  await insertBaselineIfMissing(db, row.id, confirmedValues(row, baseUrl, actor, now));
}

/**
 * The pending portal change of each image (null: the portal is up to date).
 * Images without a record (created by a bundle import) get their current
 * values as the baseline, and records whose address was not known yet adopt
 * the current one: the URLs an admin could copy are built from it.
 */
export async function loadPortalChanges(
  db: Db,
  rows: ImageRow[],
  baseUrl: string | null,
  now: number,
): Promise<Map<number, PortalChange | null>> {
  const result = new Map<number, PortalChange | null>();
  if (rows.length === 0) return result;
  const ids = rows.map((r) => r.id);
  let confirmed = await listConfirmed(db, ids);
  const missing = rows.filter((r) => !confirmed.some((c) => c.image_id === r.id));
  const unknownAddress = baseUrl !== null && confirmed.some((c) => c.public_url === null);
  if (missing.length > 0 || unknownAddress) {
    for (const row of missing) await recordBaseline(db, row, baseUrl, 'system:goldmirror', now);
    if (unknownAddress) await fillUnknownAddress(db, baseUrl, ids);
    confirmed = await listConfirmed(db, ids);
  }
  const byId = new Map(confirmed.map((c) => [c.image_id, c]));
  const digests = [
    ...new Set(
      confirmed
        .flatMap((c) => [c.arm64_sha256, c.x86_64_sha256])
        .concat(rows.flatMap((r) => [r.arm64_sha256, r.x86_64_sha256])),
    ),
  ].filter((d): d is string => d !== null);
  const names = await blobNames(db, digests);
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
export async function refreshChangedAt(
  db: Db,
  baseUrl: string | null,
  now: number,
  imageIds?: number[],
): Promise<void> {
  for (const r of await listConfirmedWithCurrent(db, imageIds)) {
    const current: Values = {
      arm64: { enabled: r.cur_arm64_enabled, sha256: r.cur_arm64_sha256 },
      x86_64: { enabled: r.cur_x86_64_enabled, sha256: r.cur_x86_64_sha256 },
    };
    const pending = differs(r, current, baseUrl);
    if (pending && r.changed_at === null) await setChangedAt(db, r.image_id, now);
    if (!pending && r.changed_at !== null) await setChangedAt(db, r.image_id, null);
  }
}

/** Before the public address changes, records the old one where it was not known, so the change shows as pending. */
export async function adoptPublicAddress(db: Db, previousUrl: string | null): Promise<void> {
  if (previousUrl === null) return;
  await fillUnknownAddress(db, previousUrl);
}

/**
 * Marks the portal updated: the image's current values become the confirmed
 * ones (audited with old and new). `fingerprint`, when given, must name the
 * values the admin saw; a change made since is refused with CONFLICT.
 * Returns false when nothing was pending.
 */
export async function confirmPortalValues(
  deps: DbDeps,
  actor: Actor,
  imageId: number,
  baseUrl: string | null,
  fingerprint: string | undefined,
): Promise<boolean> {
  const now = deps.clock.now();
  return deps.db.transaction().execute(async (trx) => {
    const row = await getImageById(trx, imageId);
    if (!row) throw new AppError('NOT_FOUND', `no golden image with id ${imageId}`);
    const change = (await loadPortalChanges(trx, [row], baseUrl, now)).get(imageId) ?? null;
    if (change === null) return false;
    if (fingerprint !== undefined && fingerprint !== change.fingerprint) {
      throw new AppError(
        'CONFLICT',
        'the portal values of this image changed again since they were shown; review the new values and mark the portal updated again',
      );
    }
    await replaceConfirmed(trx, imageId, confirmedValues(row, baseUrl, actorLabel(actor), now));
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
