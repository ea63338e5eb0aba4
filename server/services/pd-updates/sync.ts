/**
 * Following the official Parallels Desktop update feeds: read each feed (through the outbound address guard),
 * record the versions it lists, download every file not stored yet into the blob store, and look again at the
 * stored files the feed still lists, raising an alert when the bytes behind a known URL change. A feed that
 * cannot be read or parsed changes nothing but its own status line: the last good state keeps being served.
 */
import cluster from 'node:cluster';
import os from 'node:os';
import type { Sha256 } from '../../../storage/digest.js';
import { acquireLease, getLease, releaseLease } from '../../db/repos/leases.js';
import { fetchIntoStore, outboundOf, parseUpstreamUrl, upstreamError, validatorOf } from '../../bundles/fetch.js';
import { findBlobsByDigests, setBlobKind } from '../../db/repos/blobs.js';
import {
  getUpdateRow,
  insertUpdateRow,
  listUpdateRows,
  recordFeedFailure,
  setListedVersions,
  unlistOtherFeeds,
  updateUpdateRow,
  upsertFeedRow,
} from '../../db/repos/pd-updates.js';
import type { PdUpdateRow } from '../../db/schema.js';
import { AppError, isError, toAppError } from '../../errors.js';
import { readCapped } from '../../links.js';
import type { Logger } from '../../log.js';
import { recordAudit, type Actor } from '../audit.js';
import { newHolderId } from '../holders.js';
import type { IngestDeps } from '../ingest.js';
import { readFeed, type FeedVersion } from './feed.js';
import { FEED_LIMITS } from './feed-xml.js';
import { isStoredPackage, requireDiskImage, samePackageBytes, sizeNotes, updateFileName } from './versions.js';

export interface UpdatesSyncOptions {
  feeds: readonly string[];
  autoPublish: boolean;
  actor: Actor;
  signal?: AbortSignal | undefined;
  log?: Logger | undefined;
  /** Retries of a dropped download (tests shorten the pause between them). */
  retryDelayMs?: number;
}

export interface FeedReport {
  url: string;
  ok: boolean;
  error: string | null;
  /** Versions the feed lists. */
  versions: string[];
  /** Versions seen for the first time. */
  added: string[];
  skipped: string[];
}

export interface UpdatesSyncReport {
  feeds: FeedReport[];
  /** Versions whose file this run downloaded and stored. */
  fetched: string[];
  failed: Array<{ version: string; error: string }>;
  /** Versions whose upstream bytes changed after they were stored. */
  alerts: Array<{ version: string; message: string }>;
  published: string[];
}

/** A feed is a few KiB: answer within this or count as down. */
const FEED_TIMEOUT_MS = 30_000;

/** One sync at a time across every process sharing the database (CLI, API, page, the leader's job). */
const SYNC_LEASE = 'pd-updates-sync';
/** Renewed every quarter of this while the sync runs; a process that dies frees it after this long. */
const SYNC_LEASE_MS = 2 * 60_000;

/**
 * Reads every feed and fetches what is missing. Refuses with UPDATE_SYNC_RUNNING while another process runs a
 * sync, so a file is never downloaded twice at once.
 */
export async function syncUpdates(deps: IngestDeps, options: UpdatesSyncOptions): Promise<UpdatesSyncReport> {
  const holder = newHolderId();
  const claim = () => {
    const now = deps.clock.now();
    return acquireLease(deps.db, {
      name: SYNC_LEASE,
      holder,
      host: os.hostname(),
      pid: process.pid,
      worker: cluster.worker?.id ?? null,
      listen: null,
      now,
      expiresAt: now + SYNC_LEASE_MS,
    });
  };
  if (!(await claim())) {
    const other = await getLease(deps.db, SYNC_LEASE);
    const since = other
      ? ` (on ${other.host}, pid ${other.pid}, since ${new Date(Number(other.acquired_at)).toISOString()})`
      : '';
    throw new AppError(
      'UPDATE_SYNC_RUNNING',
      `a Parallels Desktop update sync is already running${since}; try again when it ends`,
    );
  }
  const renew = setInterval(() => void claim().catch(() => undefined), SYNC_LEASE_MS / 4);
  renew.unref();
  try {
    return await runSync(deps, options);
  } finally {
    clearInterval(renew);
    await releaseLease(deps.db, SYNC_LEASE, holder).catch(() => undefined);
  }
}

async function runSync(deps: IngestDeps, options: UpdatesSyncOptions): Promise<UpdatesSyncReport> {
  const report: UpdatesSyncReport = { feeds: [], fetched: [], failed: [], alerts: [], published: [] };
  // A feed taken out of the configuration no longer holds its files (GC may collect the unpublished ones).
  await unlistOtherFeeds(deps.db, options.feeds, deps.clock.now());
  const moved = new Map<string, FeedVersion>();
  for (const url of options.feeds) {
    const read = await readUpstream(deps, url, options);
    report.feeds.push(read.report);
    for (const v of read.moved) moved.set(v.version, v);
  }
  const listedByAGoodRead = new Set(report.feeds.filter((f) => f.ok).flatMap((f) => f.versions));
  const rows = await listUpdateRows(deps.db);
  const digests = rows.flatMap((r) => (r.sha256 ? [r.sha256] : []));
  const blobStates = new Map((await findBlobsByDigests(deps.db, digests)).map((b) => [b.sha256, b.state]));
  for (const row of rows) {
    options.signal?.throwIfAborted();
    if (row.origin !== 'upstream' || !row.file_url || !listedByAGoodRead.has(row.version)) continue;
    // An open alert waits for an admin: nothing about that version is fetched or changed until then.
    if (row.alert) continue;
    if (row.fetch_state === 'stored') {
      const movedTo = moved.get(row.version);
      const alert = movedTo
        ? await followMovedFile(deps, row, movedTo, options)
        : blobStates.get(row.sha256!) !== 'ok'
          ? await repairStored(deps, row, options)
          : await recheckStored(deps, row, options);
      if (alert) report.alerts.push({ version: row.version, message: alert });
      continue;
    }
    const outcome = await fetchVersion(deps, row, options);
    if (typeof outcome === 'string') {
      report.failed.push({ version: row.version, error: outcome });
      continue;
    }
    if ('alert' in outcome) {
      report.alerts.push({ version: row.version, message: outcome.alert });
      continue;
    }
    report.fetched.push(row.version);
    // Auto-publish only what was never published by hand nor taken back: an admin's unpublish stands.
    if (options.autoPublish && row.published === 0 && row.unpublished_at === null) {
      const now = deps.clock.now();
      await deps.db.transaction().execute(async (trx) => {
        await updateUpdateRow(trx, row.version, { published: 1, published_at: now, updated_at: now });
        await recordAudit(trx, {
          actor: options.actor,
          action: 'update.publish',
          target: `update:${row.version}`,
          at: now,
          details: { auto: true },
        });
      });
      report.published.push(row.version);
    }
  }
  deps.metrics?.updateSyncs.inc({
    result: report.feeds.every((f) => f.ok) && report.failed.length === 0 ? 'ok' : 'error',
  });
  return report;
}

/**
 * Reads one feed and records its versions; on any failure only the feed's status changes. A stored version whose
 * FilePath moved keeps its entry and file here: `moved` lists them for a download that decides (same bytes: the
 * entry follows upstream; other bytes: an alert).
 */
async function readUpstream(
  deps: IngestDeps,
  url: string,
  options: UpdatesSyncOptions,
): Promise<{ report: FeedReport; moved: FeedVersion[] }> {
  const now = deps.clock.now();
  const report: FeedReport = { url, ok: false, error: null, versions: [], added: [], skipped: [] };
  const moved: FeedVersion[] = [];
  const failed = async (err: unknown): Promise<{ report: FeedReport; moved: FeedVersion[] }> => {
    report.error = toAppError(err).message;
    report.versions = [];
    report.added = [];
    options.log?.warn({ url, err: report.error }, 'Parallels Desktop update feed unusable; what is served stays');
    await recordFeedFailure(deps.db, url, now, report.error);
    return { report, moved: [] };
  };
  let versions: FeedVersion[];
  try {
    const text = await fetchFeedText(deps, url, options.signal);
    const read = readFeed(text, url);
    versions = read.versions;
    report.skipped = read.skipped;
  } catch (err) {
    if (options.signal?.aborted) throw err;
    return failed(err);
  }
  try {
    await recordFeed(deps, url, versions, report, moved, now);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    return failed(err);
  }
  report.ok = true;
  return { report, moved };
}

/** Writes what a good read of `url` found, in one transaction. */
async function recordFeed(
  deps: IngestDeps,
  url: string,
  versions: FeedVersion[],
  report: FeedReport,
  moved: FeedVersion[],
  now: number,
): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    for (const v of versions) {
      const existing = await getUpdateRow(trx, v.version);
      const entry = { element: JSON.stringify(v.element), product: JSON.stringify(v.product), updated_at: now };
      if (!existing) {
        await insertUpdateRow(trx, {
          version: v.version,
          major: v.major,
          minor: v.minor,
          sub_minor: v.subMinor,
          build: v.build,
          origin: 'upstream',
          feed_url: url,
          file_url: v.fileUrl,
          file_size_text: v.fileSize,
          ...entry,
          sha256: null,
          size: null,
          validator: null,
          fetch_error: null,
          fetched_at: null,
          published_at: null,
          unpublished_at: null,
          notes: null,
          alert: null,
          alert_at: null,
          created_at: now,
        });
        report.added.push(v.version);
      } else if (existing.origin === 'upstream') {
        const movedFile = existing.file_url !== v.fileUrl;
        if (movedFile && existing.fetch_state === 'stored') {
          moved.push(v);
        } else if (
          movedFile ||
          existing.element !== entry.element ||
          existing.product !== entry.product ||
          existing.feed_url !== url ||
          existing.file_size_text !== v.fileSize
        ) {
          // The entry follows upstream (descriptions, Ancestry…); a new FilePath of a file not stored is fetched anew.
          await updateUpdateRow(trx, v.version, {
            ...entry,
            feed_url: url,
            file_size_text: v.fileSize,
            ...(movedFile ? { file_url: v.fileUrl, fetch_state: 'waiting' as const } : {}),
          });
        }
      }
      report.versions.push(v.version);
    }
    await setListedVersions(trx, url, report.versions, now);
    await upsertFeedRow(trx, {
      url,
      checked_at: now,
      ok_at: now,
      error: null,
      skipped: JSON.stringify(report.skipped),
    });
  });
}

async function fetchFeedText(deps: IngestDeps, url: string, signal: AbortSignal | undefined): Promise<string> {
  const target = parseUpstreamUrl(url, 'the update feed URL');
  const timeout = AbortSignal.timeout(FEED_TIMEOUT_MS);
  const res = await outboundOf(deps)(target, {
    headers: { Accept: 'application/xml, text/xml' },
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  }).catch((err: unknown) => {
    throw err instanceof AppError ? err : upstreamError(target, err);
  });
  if (!res.ok) {
    await res.body?.cancel();
    throw new AppError('SOURCE_FAILED', `${target.href} answered HTTP ${res.status}`);
  }
  const { bytes, truncated } = await readCapped(res, FEED_LIMITS.maxBytes);
  if (truncated) throw new AppError('FEED_INVALID', `${target.href} is larger than ${FEED_LIMITS.maxBytes} bytes`);
  return bytes.toString('utf8');
}

/**
 * Downloads a version's file into the store; the error's message when it fails. A version that had a file
 * before (collected since) must get the same bytes again: other bytes raise the alert instead.
 */
async function fetchVersion(
  deps: IngestDeps,
  row: PdUpdateRow,
  options: UpdatesSyncOptions,
): Promise<{ sha256: string } | { alert: string } | string> {
  try {
    const fetched = await downloadFile(deps, row, options);
    if (fetched.isPackage) throw samePackageBytes(row.file_url!, fetched.sha256);
    if (row.sha256 !== null && fetched.sha256 !== row.sha256)
      return {
        alert: await raiseAlert(deps, row, options, fetched, `upstream now ${fetched.sha256} (${fetched.size} bytes)`),
      };
    const now = deps.clock.now();
    await deps.db.transaction().execute(async (trx) => {
      await updateUpdateRow(trx, row.version, {
        sha256: fetched.sha256,
        size: fetched.size,
        validator: fetched.validator,
        fetch_state: 'stored',
        fetch_error: null,
        fetched_at: now,
        updated_at: now,
        notes: JSON.stringify(sizeNotes(row.file_size_text, fetched.size)),
      });
      await recordAudit(trx, {
        actor: options.actor,
        action: 'update.fetch',
        target: `update:${row.version}`,
        at: now,
        details: { url: row.file_url, sha256: fetched.sha256, size: fetched.size },
      });
    });
    options.log?.info({ version: row.version, sha256: fetched.sha256 }, 'stored a Parallels Desktop update file');
    return { sha256: fetched.sha256 };
  } catch (err) {
    if (options.signal?.aborted) throw err;
    const message = toAppError(err).message;
    await updateUpdateRow(deps.db, row.version, {
      fetch_state: row.fetch_state === 'collected' ? 'collected' : 'failed',
      fetch_error: message,
      updated_at: deps.clock.now(),
    });
    options.log?.warn({ version: row.version, url: row.file_url, err: message }, 'could not fetch an update file');
    return message;
  }
}

/** The longest validator pd_updates.validator keeps; a longer one is not kept (the length still tells changes). */
const MAX_VALIDATOR = 500;
const keptValidator = (v: string | null): string | null => (v !== null && v.length <= MAX_VALIDATOR ? v : null);

type Downloaded = Awaited<ReturnType<typeof downloadFile>>;

/**
 * A stored version whose FilePath moved: the new URL is read, and only when it gives the stored bytes does the
 * entry follow upstream; other bytes raise the alert and the stored entry and file stay.
 */
async function followMovedFile(
  deps: IngestDeps,
  row: PdUpdateRow,
  to: FeedVersion,
  options: UpdatesSyncOptions,
): Promise<string | null> {
  let fetched: Downloaded;
  try {
    fetched = await downloadFile(deps, { ...row, file_url: to.fileUrl }, options);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    options.log?.warn(
      { version: row.version, url: to.fileUrl, err: toAppError(err).message },
      'could not read a moved update file',
    );
    return null;
  }
  if (fetched.sha256 !== row.sha256)
    return raiseAlert(
      deps,
      row,
      options,
      fetched,
      `its FilePath moved to ${to.fileUrl}, which serves ${fetched.sha256} (${fetched.size} bytes)`,
    );
  await updateUpdateRow(deps.db, row.version, {
    element: JSON.stringify(to.element),
    product: JSON.stringify(to.product),
    file_url: to.fileUrl,
    file_size_text: to.fileSize,
    validator: fetched.validator,
    notes: JSON.stringify(sizeNotes(to.fileSize, fetched.size)),
    updated_at: deps.clock.now(),
  });
  return null;
}

/**
 * A stored file the integrity checks found corrupt or missing is fetched again from its URL: the same bytes
 * repair it in place (the ingest marks it ok); other bytes raise the alert.
 */
async function repairStored(deps: IngestDeps, row: PdUpdateRow, options: UpdatesSyncOptions): Promise<string | null> {
  let fetched: Downloaded;
  try {
    fetched = await downloadFile(deps, row, options);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    options.log?.warn({ version: row.version, err: toAppError(err).message }, 'could not repair an update file');
    return null;
  }
  if (fetched.sha256 === row.sha256) {
    options.log?.info({ version: row.version }, 'repaired a Parallels Desktop update file from upstream');
    return null;
  }
  return raiseAlert(deps, row, options, fetched, `upstream now ${fetched.sha256} (${fetched.size} bytes)`);
}

async function downloadFile(
  deps: IngestDeps,
  row: PdUpdateRow,
  options: UpdatesSyncOptions,
): Promise<{ sha256: Sha256; size: number; validator: string | null; isPackage: boolean }> {
  let validator: string | null = null;
  const result = await fetchIntoStore(deps, row.file_url!, {
    wrapSource: (source) => requireDiskImage(source, row.file_url!),
    fileName: updateFileName(row.version),
    kind: 'update',
    signal: options.signal,
    onResponse: (headers) => (validator = keptValidator(validatorOf(headers))),
    ...(options.retryDelayMs === undefined ? {} : { retryDelayMs: options.retryDelayMs }),
  });
  return {
    sha256: result.blob.sha256 as Sha256,
    size: result.blob.size,
    validator,
    isPackage: isStoredPackage(result),
  };
}

/**
 * Asks upstream (HEAD) whether a stored file still looks the same. A different length or validator means a
 * download and a digest: other bytes, or a body that is not a disk image at all (an error page where the
 * installer was), raise the alert (the stored file is still what is served); the same bytes only refresh the
 * validator. Returns the alert, if one was raised now.
 */
async function recheckStored(deps: IngestDeps, row: PdUpdateRow, options: UpdatesSyncOptions): Promise<string | null> {
  if (row.alert) return null;
  let res: Response;
  const timeout = AbortSignal.timeout(FEED_TIMEOUT_MS);
  try {
    res = await outboundOf(deps)(row.file_url!, {
      method: 'HEAD',
      signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
    });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    return null;
  }
  await res.body?.cancel();
  if (!res.ok) return null;
  const length = res.headers.get('content-length');
  const validator = keptValidator(validatorOf(res.headers));
  // A validator is what upstream says of its bytes (the one last seen, also after a dismissed alert); without one,
  // the length is all there is to go by.
  const unchanged =
    validator !== null && row.validator !== null
      ? validator === row.validator
      : (length === null || Number(length) === row.size) && (validator === null || validator === row.validator);
  if (unchanged) return null;
  let fetched: Downloaded;
  try {
    fetched = await downloadFile(deps, row, options);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    // A whole answer that is not a disk image is a change of content; anything else may pass (a dropped transfer).
    if (isError(err, 'UPDATE_FILE_INVALID'))
      return raiseAlert(
        deps,
        row,
        options,
        { sha256: null, validator },
        'upstream now serves something that is not a disk image (no UDIF trailer)',
      );
    options.log?.warn(
      { version: row.version, err: toAppError(err).message },
      'could not re-read a changed update file',
    );
    return null;
  }
  const now = deps.clock.now();
  if (fetched.sha256 === row.sha256) {
    await updateUpdateRow(deps.db, row.version, { validator: fetched.validator, updated_at: now });
    return null;
  }
  return raiseAlert(deps, row, options, fetched, `upstream now ${fetched.sha256} (${fetched.size} bytes)`);
}

/**
 * Records that the bytes behind a version's URL are not the ones it had, described by `change`, and returns the
 * alert. The other bytes stay stored for the admin to take or dismiss (unless they are a package's, or were
 * refused); the upstream validator is remembered, so dismissing the alert does not raise it again.
 */
async function raiseAlert(
  deps: IngestDeps,
  row: PdUpdateRow,
  options: UpdatesSyncOptions,
  found: { sha256: Sha256 | null; validator: string | null; isPackage?: boolean },
  change: string,
): Promise<string> {
  const message =
    `the bytes behind ${row.file_url} changed after this mirror stored them: stored sha256 ${row.sha256} ` +
    `(${row.size} bytes), ${change}. The stored file is still the one served; check with Parallels, then ` +
    `dismiss the alert or take the new file`;
  const other = found.isPackage ? null : found.sha256;
  const at = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    if (other) await setBlobKind(trx, other, 'update', `changed-${updateFileName(row.version)}`);
    await updateUpdateRow(trx, row.version, {
      alert: message,
      alert_at: at,
      alert_sha256: other,
      validator: found.validator ?? row.validator,
      updated_at: at,
    });
    await recordAudit(trx, {
      actor: options.actor,
      action: 'update.alert',
      target: `update:${row.version}`,
      at,
      details: { url: row.file_url, stored: row.sha256, upstream: found.sha256 },
    });
  });
  options.log?.error({ version: row.version, url: row.file_url }, message);
  return message;
}
