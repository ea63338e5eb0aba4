/**
 * Parallels Desktop versions as admins see and steer them: list, publish, unpublish, roll back, add a file by
 * hand (air-gapped mirrors), and the feed Macs read, built from the published versions.
 */
import type { ByteSource } from '../../../storage/blob-store.js';
import type { Sha256 } from '../../../storage/digest.js';
import { findBlobsByDigests, setBlobKind } from '../../db/repos/blobs.js';
import { downloadStatsOf } from '../../db/repos/download-stats.js';
import {
  getUpdateRow,
  insertUpdateRow,
  listFeedRows,
  listUpdateRows,
  updateUpdateRow,
} from '../../db/repos/pd-updates.js';
import type { Db } from '../../db/open.js';
import type { BlobState, PdUpdateRow } from '../../db/schema.js';
import { AppError } from '../../errors.js';
import { downloadUrl } from '../../links.js';
import { recordAudit, type Actor } from '../audit.js';
import type { ServiceDeps } from '../deps.js';
import { ingest, type IngestDeps, type IngestResult } from '../ingest.js';
import { resolvePublicAddress, PUBLIC_ADDRESS_MISSING, type SettingsDeps } from '../settings.js';
import {
  buildFeed,
  compareVersionsDescending,
  DEFAULT_PRODUCT,
  generateVersionElement,
  parseVersion,
  versionProblem,
  versionString,
  type ProductFrame,
  type ServedVersion,
  type VersionNumbers,
} from './feed.js';
import { child, textOf, type XmlElement } from './feed-xml.js';

/** The name every update file is served under. */
export const updateFileName = (version: string): string => `ParallelsDesktop-${version}.dmg`;

export interface UpdateView {
  version: string;
  major: number;
  /** StringRepresentation (the code name), as the feed gives it. */
  codename: string;
  origin: 'upstream' | 'manual';
  feedUrl: string | null;
  /** The upstream FilePath (null for a file added by hand). */
  upstreamUrl: string | null;
  /** FileSize as the feed writes it (bytes in entries generated here). */
  fileSize: string | null;
  /** waiting: not downloaded yet; stored; failed (see fetchError); collected: removed by GC. */
  state: PdUpdateRow['fetch_state'];
  fetchError: string | null;
  sha256: string | null;
  size: number | null;
  /** What the integrity checks say of the stored file; null when none is stored. */
  blobState: BlobState | null;
  fetchedAt: string | null;
  published: boolean;
  publishedAt: string | null;
  unpublishedAt: string | null;
  /** Listed by the last good read of its upstream feed. */
  listed: boolean;
  notes: string[];
  /** Set when the bytes behind the upstream URL changed after this mirror stored them. */
  alert: string | null;
  alertAt: string | null;
  /** The other bytes found behind the URL, stored so the admin can take them (null: none were stored). */
  alertSha256: string | null;
  downloads: number;
  /** The .dmg link Macs get in the feed; null while not stored or while no public address is set. */
  link: string | null;
  firstSeenAt: string;
}

export interface FeedStatus {
  url: string;
  checkedAt: string | null;
  okAt: string | null;
  error: string | null;
  skipped: string[];
}

export interface UpdatesOverview {
  /** The feed URL to give the Macs (null while no public address is set). */
  feedUrl: string | null;
  upstream: FeedStatus[];
  versions: UpdateView[];
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const parseJson = <T>(text: string | null, fallback: T): T => (text ? (JSON.parse(text) as T) : fallback);

export function elementOf(row: PdUpdateRow): XmlElement {
  return JSON.parse(row.element) as XmlElement;
}

async function toViews(db: Db, rows: PdUpdateRow[], base: string | null): Promise<UpdateView[]> {
  const digests = rows.flatMap((r) => (r.sha256 ? [r.sha256] : []));
  const blobs = new Map((await findBlobsByDigests(db, digests)).map((b) => [b.sha256, b]));
  const stats = new Map((await downloadStatsOf(db, digests)).map((s) => [s.sha256, Number(s.downloads)]));
  return rows.map((r) => {
    const stored = r.fetch_state === 'stored' && r.sha256 !== null;
    const blob = stored ? blobs.get(r.sha256!) : undefined;
    return {
      version: r.version,
      major: r.major,
      codename: textOf(child(elementOf(r), 'StringRepresentation')).trim(),
      origin: r.origin,
      feedUrl: r.feed_url,
      upstreamUrl: r.file_url,
      fileSize: r.file_size_text,
      state: r.fetch_state,
      fetchError: r.fetch_error,
      sha256: r.sha256,
      size: r.size,
      blobState: blob?.state ?? null,
      fetchedAt: iso(r.fetched_at),
      published: r.published === 1,
      publishedAt: iso(r.published_at),
      unpublishedAt: iso(r.unpublished_at),
      listed: r.listed === 1,
      notes: parseJson<string[]>(r.notes, []),
      alert: r.alert,
      alertAt: iso(r.alert_at),
      alertSha256: r.alert_sha256,
      downloads: r.sha256 ? (stats.get(r.sha256) ?? 0) : 0,
      link: stored && base ? downloadUrl(base, r.sha256!, updateFileName(r.version)) : null,
      firstSeenAt: new Date(r.created_at).toISOString(),
    };
  });
}

/** Where Macs read the feed: the public address, then /updates/parallels_updates.xml. */
export const FEED_PATH = '/updates/parallels_updates.xml';
export const majorFeedPath = (major: number): string => `/updates/desktop/v${major}/parallels/parallels_updates.xml`;

export async function listUpdates(deps: Pick<ServiceDeps, 'db'> & SettingsDeps): Promise<UpdatesOverview> {
  const base = (await resolvePublicAddress(deps)).url;
  const feeds = await listFeedRows(deps.db);
  return {
    feedUrl: base ? `${base}${FEED_PATH}` : null,
    upstream: feeds.map((f) => ({
      url: f.url,
      checkedAt: iso(f.checked_at),
      okAt: iso(f.ok_at),
      error: f.error,
      skipped: parseJson<string[]>(f.skipped, []),
    })),
    versions: await toViews(deps.db, await listUpdateRows(deps.db), base),
  };
}

export async function getUpdate(deps: Pick<ServiceDeps, 'db'> & SettingsDeps, version: string): Promise<UpdateView> {
  const row = await requireVersion(deps.db, version);
  const base = (await resolvePublicAddress(deps)).url;
  return (await toViews(deps.db, [row], base))[0]!;
}

async function requireVersion(db: Db, version: string): Promise<PdUpdateRow> {
  const numbers = parseVersion(version);
  if (!numbers) throw new AppError('VALIDATION_FAILED', versionProblem(version)!);
  const row = await getUpdateRow(db, versionString(numbers));
  if (!row) throw new AppError('NOT_FOUND', `no Parallels Desktop version ${versionString(numbers)} is known here`);
  return row;
}

type ChangeDeps = Pick<ServiceDeps, 'db' | 'clock'> & SettingsDeps;

/** Puts `version` into the served feed; its file must be stored. */
export async function publishUpdate(deps: ChangeDeps, actor: Actor, version: string): Promise<UpdateView> {
  const row = await requireVersion(deps.db, version);
  if (row.fetch_state !== 'stored')
    throw new AppError(
      'UPDATE_NOT_STORED',
      `${row.version} cannot be published: its file is ${describeState(row)}` +
        (row.origin === 'upstream' ? '; run `goldmirror updates sync` (or Sync now) to fetch it' : ''),
    );
  if (row.published !== 1) {
    const now = deps.clock.now();
    await deps.db.transaction().execute(async (trx) => {
      await updateUpdateRow(trx, row.version, { published: 1, published_at: now, updated_at: now });
      await recordAudit(trx, { actor, action: 'update.publish', target: `update:${row.version}`, at: now });
    });
  }
  return getUpdate(deps, row.version);
}

/** Takes `version` out of the served feed (its file stays until GC may collect it). */
export async function unpublishUpdate(deps: ChangeDeps, actor: Actor, version: string): Promise<UpdateView> {
  const row = await requireVersion(deps.db, version);
  if (row.published === 1) {
    const now = deps.clock.now();
    await deps.db.transaction().execute(async (trx) => {
      await updateUpdateRow(trx, row.version, { published: 0, unpublished_at: now, updated_at: now });
      await recordAudit(trx, { actor, action: 'update.unpublish', target: `update:${row.version}`, at: now });
    });
  }
  return getUpdate(deps, row.version);
}

/**
 * Makes `version` the newest published one of its major version: publishes it (its file must be stored) and
 * unpublishes every published version of that major newer than it, in one transaction.
 */
export async function rollbackUpdate(
  deps: ChangeDeps,
  actor: Actor,
  version: string,
): Promise<{ version: UpdateView; unpublished: string[] }> {
  const row = await requireVersion(deps.db, version);
  if (row.fetch_state !== 'stored')
    throw new AppError('UPDATE_NOT_STORED', `cannot roll back to ${row.version}: its file is ${describeState(row)}`);
  const now = deps.clock.now();
  const unpublished: string[] = [];
  await deps.db.transaction().execute(async (trx) => {
    for (const other of await listUpdateRows(trx)) {
      // Each major version has its own feed: rolling back 25 leaves 26 alone.
      if (other.published !== 1 || other.major !== row.major || !isNewer(other, row)) continue;
      await updateUpdateRow(trx, other.version, { published: 0, unpublished_at: now, updated_at: now });
      unpublished.push(other.version);
    }
    if (row.published !== 1)
      await updateUpdateRow(trx, row.version, { published: 1, published_at: now, updated_at: now });
    await recordAudit(trx, {
      actor,
      action: 'update.rollback',
      target: `update:${row.version}`,
      at: now,
      details: { unpublished },
    });
  });
  return { version: await getUpdate(deps, row.version), unpublished };
}

/** Whether `a` is a newer version than `b`. */
const isNewer = (a: PdUpdateRow, b: PdUpdateRow): boolean => compareVersionsDescending(numbersOf(a), numbersOf(b)) < 0;

const numbersOf = (row: PdUpdateRow): VersionNumbers => ({
  major: row.major,
  minor: row.minor,
  subMinor: row.sub_minor,
  build: row.build,
});

function describeState(row: PdUpdateRow): string {
  switch (row.fetch_state) {
    case 'waiting':
      return 'not downloaded yet';
    case 'failed':
      return `not stored (the last download failed: ${row.fetch_error ?? 'unknown error'})`;
    case 'collected':
      return 'no longer stored (garbage collection removed it)';
    default:
      return 'stored';
  }
}

/**
 * Closes a version's alert. `take`: the other bytes found behind its URL become the version's file (they must
 * be stored and intact), and the feed offers them from now on; otherwise the stored file stays and the other
 * bytes are left to GC. Either way the alert, dashboard banner and metric clear.
 */
export async function resolveUpdateAlert(
  deps: ChangeDeps,
  actor: Actor,
  version: string,
  options: { take: boolean },
): Promise<UpdateView> {
  const row = await requireVersion(deps.db, version);
  if (!row.alert) throw new AppError('CONFLICT', `${row.version} has no open alert`);
  const now = deps.clock.now();
  let taken: { sha256: string; size: number } | null = null;
  if (options.take) {
    const other = row.alert_sha256 ? (await findBlobsByDigests(deps.db, [row.alert_sha256]))[0] : undefined;
    if (!other || other.kind !== 'update' || other.state !== 'ok')
      throw new AppError(
        'UPDATE_NOT_STORED',
        `the other bytes of ${row.version} are not stored${other ? ' intact' : ''}, so there is nothing to take; dismiss the alert instead`,
      );
    taken = { sha256: other.sha256, size: Number(other.size) };
  }
  await deps.db.transaction().execute(async (trx) => {
    if (taken) await setBlobKind(trx, taken.sha256 as Sha256, 'update', updateFileName(row.version));
    await updateUpdateRow(trx, row.version, {
      alert: null,
      alert_at: null,
      alert_sha256: null,
      updated_at: now,
      ...(taken
        ? {
            sha256: taken.sha256,
            size: taken.size,
            fetch_state: 'stored' as const,
            fetch_error: null,
            fetched_at: now,
            notes: JSON.stringify([]),
          }
        : {}),
    });
    await recordAudit(trx, {
      actor,
      action: taken ? 'update.alert-take' : 'update.alert-dismiss',
      target: `update:${row.version}`,
      at: now,
      details: taken ? { from: row.sha256, to: taken.sha256 } : { kept: row.sha256 },
    });
  });
  return getUpdate(deps, row.version);
}

/** FileSize's unit is not documented: it is never changed, only compared with the length when it is a byte count. */
export function sizeNotes(fileSize: string | null, size: number): string[] {
  if (fileSize === null || !/^\d+$/.test(fileSize) || Number(fileSize) === size) return [];
  return [
    `the feed's FileSize (${fileSize}) differs from the file's length (${size} bytes); it is served as upstream wrote it`,
  ];
}

/** UDIF disk images (every .dmg Parallels ships) end in a 512-byte trailer that starts with "koly". */
const TRAILER_BYTES = 512;

/**
 * Passes `source` through and fails at its end (so the store keeps nothing) unless it ends like a disk image:
 * an HTML error page or a truncated file served as a .dmg is refused here, not found by a Mac.
 */
export async function* requireDiskImage(source: ByteSource, what: string): AsyncGenerator<Uint8Array> {
  let tail = Buffer.alloc(0);
  for await (const chunk of source) {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    tail =
      bytes.length >= TRAILER_BYTES
        ? Buffer.from(bytes.subarray(bytes.length - TRAILER_BYTES))
        : Buffer.concat([tail, bytes]).subarray(-TRAILER_BYTES);
    yield chunk;
  }
  if (tail.length < TRAILER_BYTES || tail.toString('latin1', 0, 4) !== 'koly')
    throw new AppError(
      'UPDATE_FILE_INVALID',
      `${what} is not a disk image (.dmg): it does not end in a UDIF trailer ("koly"); nothing was stored`,
    );
}

export interface AddUpdateRequest {
  source: ByteSource;
  /** For messages: the file or upload it came from. */
  what: string;
  version: string;
  codename?: string | undefined;
  ancestors?: string[] | undefined;
  locale?: string | undefined;
  publish?: boolean | undefined;
  signal?: AbortSignal | undefined;
}

const UUID_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;
const LOCALE_PATTERN = /^[a-z]{2,3}(_[A-Z]{2})?$/;

/**
 * Stores a .dmg an admin downloaded elsewhere as `version`, with a complete generated feed entry (FileSize in
 * bytes). A version the feed already lists but whose file is not stored takes the file and keeps its upstream
 * entry; a version whose file is stored is refused (UPDATE_EXISTS), unless the integrity checks found that file
 * corrupt or missing: then the same bytes repair it in place (other bytes are a DIGEST_MISMATCH).
 */
export async function addUpdateFile(
  deps: IngestDeps & SettingsDeps,
  actor: Actor,
  request: AddUpdateRequest,
): Promise<UpdateView> {
  const numbers = parseVersion(request.version);
  if (!numbers) throw new AppError('VALIDATION_FAILED', `version ${versionProblem(request.version)!}`);
  const version = versionString(numbers);
  const locale = request.locale ?? 'en_US';
  if (!LOCALE_PATTERN.test(locale))
    throw new AppError('VALIDATION_FAILED', `locale ${JSON.stringify(locale)} must look like en_US`);
  const ancestors = request.ancestors ?? [];
  for (const a of ancestors)
    if (!UUID_PATTERN.test(a))
      throw new AppError(
        'VALIDATION_FAILED',
        `ancestor ${JSON.stringify(a)} must be an update uuid like desktop.26.3.2.57480.en_US.parallels.mac`,
      );
  const codename = (request.codename ?? '').trim();
  // What XML may carry (no control characters, no U+FFFE/U+FFFF): the served feed must stay well-formed.
  if (codename.length > 200 || !/^[\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u.test(codename))
    throw new AppError(
      'VALIDATION_FAILED',
      'the code name must be one line of at most 200 characters that XML allows (no control characters)',
    );
  const existing = await getUpdateRow(deps.db, version);
  const repairs =
    existing?.fetch_state === 'stored' && existing.sha256 !== null
      ? (await findBlobsByDigests(deps.db, [existing.sha256]))[0]?.state !== 'ok'
      : false;
  if (existing?.fetch_state === 'stored' && !repairs)
    throw new AppError(
      'UPDATE_EXISTS',
      `version ${version} is already stored (sha256 ${existing.sha256}); nothing was changed`,
    );
  const result = await ingest(deps, {
    source: requireDiskImage(request.source, request.what),
    fileName: updateFileName(version),
    kind: 'update',
    ...(repairs ? { expectedSha256: existing!.sha256 as Sha256 } : {}),
    signal: request.signal,
  });
  const sha256 = result.blob.sha256 as Sha256;
  if (isStoredPackage(result)) throw samePackageBytes(request.what, sha256);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    const stored = {
      sha256,
      size: result.blob.size,
      fetch_state: 'stored' as const,
      fetch_error: null,
      fetched_at: now,
      updated_at: now,
      ...(request.publish ? { published: 1 as const, published_at: now } : {}),
    };
    if (existing) {
      await updateUpdateRow(trx, version, {
        ...stored,
        notes: JSON.stringify(sizeNotes(existing.file_size_text, result.blob.size)),
      });
    } else {
      const element = generateVersionElement({
        version: numbers,
        codename,
        ancestors,
        locale,
        sizeBytes: result.blob.size,
        at: now,
      });
      await insertUpdateRow(trx, {
        version,
        major: numbers.major,
        minor: numbers.minor,
        sub_minor: numbers.subMinor,
        build: numbers.build,
        origin: 'manual',
        feed_url: null,
        file_url: null,
        file_size_text: String(result.blob.size),
        element: JSON.stringify(element),
        product: JSON.stringify(await newestProduct(trx)),
        notes: null,
        alert: null,
        alert_at: null,
        validator: null,
        unpublished_at: null,
        created_at: now,
        published_at: null,
        ...stored,
      });
    }
    await recordAudit(trx, {
      actor,
      action: 'update.add',
      target: `update:${version}`,
      at: now,
      details: {
        sha256,
        size: result.blob.size,
        published: request.publish === true,
        ...(repairs ? { repaired: true } : {}),
      },
    });
  });
  return getUpdate(deps, version);
}

/** Whether an update file's ingest found its bytes already stored as a golden-image package (a blob is never both). */
export const isStoredPackage = (result: IngestResult): boolean => result.blob.kind === 'package';

export function samePackageBytes(what: string, sha256: string): AppError {
  return new AppError(
    'UPDATE_FILE_INVALID',
    `${what} has the same bytes as a stored golden-image package (sha256 ${sha256}); a file is either a package or an update, so it was not taken as an update`,
  );
}

/** The product frame of the newest version known, or the default one. */
async function newestProduct(db: Db): Promise<ProductFrame> {
  const newest = (await listUpdateRows(db)).find((r) => r.origin === 'upstream');
  return newest ? (JSON.parse(newest.product) as ProductFrame) : DEFAULT_PRODUCT;
}

/** The feed Macs read: every published version (of `major` only, when given), newest first. */
export async function servedFeed(deps: Pick<ServiceDeps, 'db'> & SettingsDeps, major?: number): Promise<string> {
  const base = (await resolvePublicAddress(deps)).url;
  if (base === null) throw new AppError('PUBLIC_ADDRESS_MISSING', PUBLIC_ADDRESS_MISSING);
  const rows = (await listUpdateRows(deps.db)).filter(
    (r) => r.published === 1 && r.fetch_state === 'stored' && r.sha256 && (major === undefined || r.major === major),
  );
  const published: ServedVersion[] = rows.map((r) => ({
    major: r.major,
    minor: r.minor,
    subMinor: r.sub_minor,
    build: r.build,
    element: elementOf(r),
    product: JSON.parse(r.product) as ProductFrame,
    fileUrl: r.origin === 'upstream' ? r.file_url : null,
    link: downloadUrl(base, r.sha256!, updateFileName(r.version)),
  }));
  return buildFeed(published);
}
