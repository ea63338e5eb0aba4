/**
 * The download log: who downloaded what, when, how much and how it ended;
 * this node's downloads in progress; the dashboard's hourly and daily
 * figures; and pruning past the retention period. Rows are written in
 * batches by the activity tracker, never on the download's own path.
 */
import { z } from 'zod';
import {
  bucketTotals,
  deleteDownloadLogBefore,
  listDownloadLogRows,
  loggedClients,
  loggedImages,
  originTotals,
} from '../db/repos/download-log.js';
import { listImageNames } from '../db/repos/images.js';
import type { DownloadLogRow } from '../db/schema.js';
import { listReplicaRows, listSiteRows } from '../db/repos/sites.js';
import type { LiveDownload } from './activity.js';
import { ARCH_LABELS, ARCHES, type Arch } from './arches.js';
import type { DbDeps, ServiceDeps } from './deps.js';
import { parseInput } from './validation.js';

export const DOWNLOAD_RESULTS = ['complete', 'resumed', 'aborted'] as const;
export type DownloadResult = (typeof DOWNLOAD_RESULTS)[number];
export const RESULT_LABELS: Record<DownloadResult, string> = {
  complete: 'complete',
  resumed: 'resumed piece',
  aborted: 'aborted',
};

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const PRUNE_BATCH_ROWS = 5_000;

/** Query-string filters of the page and the API; empty strings mean "any". */
const filterSchema = z
  .object({
    image: z
      .string()
      .regex(/^\d{1,15}$/, 'must be an image id')
      .transform(Number)
      .optional(),
    arch: z.enum(ARCHES, { error: `must be ${ARCHES.join(' or ')}` }).optional(),
    client: z.string().trim().max(64, 'must be at most 64 characters').optional(),
    result: z.enum(DOWNLOAD_RESULTS, { error: `must be ${DOWNLOAD_RESULTS.join(', ')}` }).optional(),
    before: z
      .string()
      .regex(/^\d{1,15}$/, 'must be a download id')
      .transform(Number)
      .optional(),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, 'must be a number from 1 to 500')
      .transform(Number)
      .refine((n) => n >= 1 && n <= 500, 'must be a number from 1 to 500')
      .optional(),
  })
  .strict();

export type DownloadFilter = z.output<typeof filterSchema>;

/** Reads filters from query parameters (unknown ones are refused by name; empty ones ignored). */
export function parseDownloadFilter(query: Record<string, string>): DownloadFilter {
  const present = Object.fromEntries(Object.entries(query).filter(([, v]) => v.trim() !== ''));
  return parseInput(filterSchema, present, 'filter');
}

/** What a logged download and one in progress both show: who fetched which package, and how much of it. */
interface DownloadFacts {
  startedAt: string;
  client: string;
  userAgent: string;
  sha256: string;
  image: { id: number | null; name: string } | null;
  arch: Arch | null;
  archLabel: string | null;
  firstByte: number | null;
  bytesPlanned: number;
  bytesSent: number;
  size: number;
  bytesPerSec: number;
}

export interface DownloadEntry extends DownloadFacts {
  id: number;
  finishedAt: string;
  durationMs: number;
  status: number;
  result: DownloadResult;
  /** The body carried the file's last byte in full: counted as a finished download (as in the per-package counters). */
  countsAsDownload: boolean;
  /** The client's site when it was logged; null outside every site. */
  site: string | null;
  /** The replica's URL the client was sent to (status 302); null when this mirror served it. */
  servedBy: string | null;
}

export interface DownloadInProgress extends DownloadFacts {
  elapsedMs: number;
}

export interface DownloadLogPage {
  inProgress: DownloadInProgress[];
  downloads: DownloadEntry[];
  /** Pass as `before` for the next (older) page; null on the last one. */
  nextBefore: number | null;
  /** Download bodies this server did not log since it started (over the rate cap, or a stuck database). */
  notLogged: number;
}

/** The database, the time, and this node's downloads in progress (absent: only what is written shows). */
export type DownloadLogDeps = DbDeps & Pick<ServiceDeps, 'activity'>;

/** The newest log rows matching the filter, and this node's downloads in progress (filtered alike). */
export async function listDownloads(deps: DownloadLogDeps, filter: DownloadFilter): Promise<DownloadLogPage> {
  const { activity } = deps;
  // Rows of downloads that ended a moment ago may still wait in the batch: write them first.
  await activity?.flush();
  const nowMs = deps.clock.now();
  const limit = filter.limit ?? 100;
  const rows = await listDownloadLogRows(deps.db, {
    limit: limit + 1,
    imageId: filter.image,
    arch: filter.arch,
    client: filter.client,
    result: filter.result,
    beforeId: filter.before,
  });
  const page = rows.slice(0, limit);
  const live = (activity?.liveDownloads() ?? []).filter(
    (d) =>
      (filter.image === undefined || d.imageId === filter.image) &&
      (filter.arch === undefined || d.arch === filter.arch) &&
      (!filter.client || d.client === filter.client) &&
      filter.result === undefined,
  );
  return {
    inProgress: live.map((d) => toInProgress(d, nowMs)),
    downloads: page.map(toEntry),
    nextBefore: rows.length > limit ? (page.at(-1)?.id ?? null) : null,
    notLogged: activity?.unloggedDownloads() ?? 0,
  };
}

/** The page's filter choices: today's images plus deleted ones still in the log, and the clients seen. */
export async function downloadFilterChoices(
  deps: Pick<ServiceDeps, 'db'>,
): Promise<{ images: Array<{ id: number; name: string }>; clients: string[] }> {
  const current = await listImageNames(deps.db);
  const logged = await loggedImages(deps.db);
  const byId = new Map(logged.map((i) => [i.id, `${i.name} (deleted)`]));
  for (const image of current) byId.set(image.id, image.name);
  const clients = await loggedClients(deps.db, 500);
  return {
    images: [...byId].map(([id, name]) => ({ id, name })).sort((a, b) => a.name.localeCompare(b.name)),
    clients,
  };
}

export interface DownloadCharts {
  /** 168 hours ending with the current one (UTC): bytes sent by bodies that ended in that hour. */
  hourlyBytes: Array<{ start: string; bytes: number }>;
  /** 7 days ending today (UTC): finished downloads (bodies that delivered the file's last byte). */
  dailyDownloads: Array<{ day: string; downloads: number }>;
}

export async function downloadCharts(deps: DownloadLogDeps): Promise<DownloadCharts> {
  await deps.activity?.flush();
  const nowMs = deps.clock.now();
  const firstHour = Math.floor(nowMs / HOUR_MS) - 167;
  const firstDay = Math.floor(nowMs / DAY_MS) - 6;
  const from = Math.min(firstHour * HOUR_MS, firstDay * DAY_MS);
  const bytesByHour = await bucketTotals(deps.db, HOUR_MS, from, 'bytes');
  const downloadsByDay = await bucketTotals(deps.db, DAY_MS, from, 'finishedDownloads');
  return {
    hourlyBytes: Array.from({ length: 168 }, (_, i) => ({
      start: new Date((firstHour + i) * HOUR_MS).toISOString(),
      bytes: bytesByHour.get(firstHour + i) ?? 0,
    })),
    dailyDownloads: Array.from({ length: 7 }, (_, i) => ({
      day: new Date((firstDay + i) * DAY_MS).toISOString().slice(0, 10),
      downloads: downloadsByDay.get(firstDay + i) ?? 0,
    })),
  };
}

/** Finished downloads and the bytes delivered to clients, over the days of DownloadOrigins. */
export interface OriginFigures {
  downloads: number;
  bytes: number;
}

export interface DownloadOrigins {
  days: number;
  /** Every site defined now, then sites only the log still names, then the clients outside every site (site null). */
  bySite: Array<OriginFigures & { site: string | null; defined: boolean }>;
  /** This mirror (replica null), then every replica known now, then replicas only the log still names. */
  byServer: Array<OriginFigures & { replica: string | null; site: string | null; known: boolean }>;
}

export const ORIGIN_DAYS = 7;

/**
 * Where the last week's downloads came from, per client site and per server
 * (this mirror or the replica it sent the Mac to); null while no site and no
 * replica exists, when every download is this mirror's own.
 */
export async function downloadOrigins(deps: DownloadLogDeps): Promise<DownloadOrigins | null> {
  const [sites, replicas] = await Promise.all([listSiteRows(deps.db), listReplicaRows(deps.db)]);
  if (sites.length === 0 && replicas.length === 0) return null;
  await deps.activity?.flush();
  const totals = await originTotals(deps.db, deps.clock.now() - ORIGIN_DAYS * DAY_MS);
  const add = (into: Map<string | null, OriginFigures>, key: string | null, t: OriginFigures) => {
    const figures = into.get(key) ?? { downloads: 0, bytes: 0 };
    into.set(key, { downloads: figures.downloads + t.downloads, bytes: figures.bytes + t.bytes });
  };
  const perSite = new Map<string | null, OriginFigures>();
  const perServer = new Map<string | null, OriginFigures>();
  const loggedSite = new Map<string, string | null>();
  for (const t of totals) {
    add(perSite, t.site, t);
    add(perServer, t.servedBy, t);
    if (t.servedBy !== null) loggedSite.set(t.servedBy, t.site);
  }
  const zero: OriginFigures = { downloads: 0, bytes: 0 };
  const siteNames = sites.map((s) => s.name);
  const goneSites = [...perSite.keys()].filter((k): k is string => k !== null && !siteNames.includes(k)).sort();
  const replicaSite = new Map(replicas.map((r) => [r.public_url, r.site]));
  const goneReplicas = [...perServer.keys()].filter((k): k is string => k !== null && !replicaSite.has(k)).sort();
  return {
    days: ORIGIN_DAYS,
    bySite: [
      ...siteNames.map((site) => ({ site, defined: true, ...(perSite.get(site) ?? zero) })),
      ...goneSites.map((site) => ({ site, defined: false, ...perSite.get(site)! })),
      { site: null, defined: false, ...(perSite.get(null) ?? zero) },
    ],
    byServer: [
      { replica: null, site: null, known: true, ...(perServer.get(null) ?? zero) },
      ...replicas.map((r) => ({
        replica: r.public_url,
        site: r.site,
        known: true,
        ...(perServer.get(r.public_url) ?? zero),
      })),
      ...goneReplicas.map((replica) => ({
        replica,
        site: loggedSite.get(replica) ?? null,
        known: false,
        ...perServer.get(replica)!,
      })),
    ],
  };
}

/** Deletes rows that ended before now minus `retentionMs`, in small batches so downloads and the API never wait long; 0 keeps everything. */
export async function pruneDownloadLog(deps: DbDeps, retentionMs: number): Promise<number> {
  if (retentionMs <= 0) return 0;
  const cutoff = deps.clock.now() - retentionMs;
  let removed = 0;
  for (;;) {
    const n = await deleteDownloadLogBefore(deps.db, cutoff, PRUNE_BATCH_ROWS);
    removed += n;
    if (n < PRUNE_BATCH_ROWS) return removed;
  }
}

function archOf(value: string | null): Arch | null {
  return value === 'arm64' || value === 'x86_64' ? value : null;
}

function rate(bytes: number, ms: number): number {
  return ms > 0 ? Math.round((bytes * 1000) / ms) : bytes;
}

/** Who downloaded what: the part a logged download and one in progress show alike. */
function clientAndPackage(d: {
  client: string;
  userAgent: string;
  sha256: string;
  imageId: number | null;
  imageName: string | null;
  arch: string | null;
}) {
  const arch = archOf(d.arch);
  return {
    client: d.client,
    userAgent: d.userAgent,
    sha256: d.sha256,
    image: d.imageName !== null ? { id: d.imageId, name: d.imageName } : null,
    arch,
    archLabel: arch ? ARCH_LABELS[arch] : null,
  };
}

function toEntry(row: DownloadLogRow): DownloadEntry {
  const { user_agent: userAgent, image_id: imageId, image_name: imageName } = row;
  return {
    id: row.id,
    startedAt: new Date(row.started_at).toISOString(),
    finishedAt: new Date(row.finished_at).toISOString(),
    durationMs: Number(row.duration_ms),
    ...clientAndPackage({ ...row, userAgent, imageId, imageName }),
    status: row.status,
    firstByte: row.first_byte === null ? null : Number(row.first_byte),
    bytesPlanned: Number(row.bytes_planned),
    bytesSent: Number(row.bytes_sent),
    size: Number(row.size),
    result: row.result,
    countsAsDownload: row.covers_end === 1,
    site: row.site,
    servedBy: row.served_by,
    bytesPerSec: rate(Number(row.bytes_sent), Number(row.duration_ms)),
  };
}

function toInProgress(d: LiveDownload, nowMs: number): DownloadInProgress {
  const elapsedMs = Math.max(0, nowMs - d.startedAt);
  return {
    startedAt: new Date(d.startedAt).toISOString(),
    elapsedMs,
    ...clientAndPackage(d),
    firstByte: d.firstByte,
    bytesPlanned: d.bytesPlanned,
    bytesSent: d.bytesSent,
    size: d.size,
    bytesPerSec: rate(d.bytesSent, elapsedMs),
  };
}
