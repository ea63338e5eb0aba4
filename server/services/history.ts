/**
 * The audit log as people read it: one sentence per entry with names instead
 * of ids ("admin assigned Sales → Windows 11"), links to what still exists,
 * sign-ins hidden unless asked for, and filters by actor, kind of action and
 * text. Names come from the entry itself where it recorded them, else from
 * today's rows; an id nobody can name any more stays an id.
 */
import type { Db } from '../db/open.js';
import { listAuditActors, listAuditRows } from '../db/repos/audit.js';
import { blobNames } from '../db/repos/blobs.js';
import { listGroupNames } from '../db/repos/groups.js';
import { listImageNames } from '../db/repos/images.js';
import { ARCHES } from './arches.js';
import { toAuditEntry, type AuditEntry } from './audit.js';
import type { ServiceDeps } from './deps.js';
import { details, sentence, splitTarget, type Names, type SentencePart } from './history-sentences.js';

export { actorName, type SentencePart } from './history-sentences.js';

export interface HistoryEntry extends AuditEntry {
  sentence: string;
  parts: SentencePart[];
}

/** Kinds of action for the filter, by the action's prefix. */
export const ACTION_KINDS = {
  images: { label: 'Golden images', prefix: 'image.' },
  groups: { label: 'Groups', prefix: 'group.' },
  packages: { label: 'Packages', prefix: 'blob.' },
  tokens: { label: 'API tokens', prefix: 'token.' },
  users: { label: 'Users and passwords', prefix: 'user.' },
  signins: { label: 'Sign-ins', prefix: 'session.' },
  bundles: { label: 'Bundles and sync', prefix: 'bundle.' },
  sites: { label: 'Sites', prefix: 'site.' },
  replicas: { label: 'Replicas', prefix: 'replica.' },
  updates: { label: 'Parallels Desktop updates', prefix: 'update.' },
} as const;
export type ActionKind = keyof typeof ACTION_KINDS;

export interface HistoryQuery {
  limit?: number;
  beforeId?: number | undefined;
  /** An actor exactly as stored ("user:admin", "token:ci"). */
  actor?: string | undefined;
  /** A kind of action (ACTION_KINDS) or one exact action ("group.update"). */
  action?: string | undefined;
  /** Words that must all appear in the sentence, the actor or the details (any case). */
  text?: string | undefined;
  /** Include sign-ins (hidden by default on the page; a sign-ins filter shows them anyway). */
  signIns?: boolean;
}

/** Rows looked at per request at most when a text filter skips many: bounded work, then "older" paging goes on. */
const MAX_SCANNED = 5_000;
const SCAN_BATCH = 200;

export async function listHistory(
  deps: Pick<ServiceDeps, 'db'>,
  query: HistoryQuery = {},
): Promise<{ entries: HistoryEntry[]; nextBefore: number | null }> {
  const { db } = deps;
  const limit = Math.min(Math.max(query.limit ?? 50, 1), 500);
  const words = (query.text ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const kind = query.action && query.action in ACTION_KINDS ? ACTION_KINDS[query.action as ActionKind] : null;
  const showSignIns =
    query.signIns === true || kind?.prefix === 'session.' || query.action?.startsWith('session.') === true;
  const found: HistoryEntry[] = [];
  let before = query.beforeId;
  let scanned = 0;
  for (;;) {
    const rows = await listAuditRows(db, {
      limit: words.length ? SCAN_BATCH : limit + 1,
      beforeId: before,
      actor: query.actor,
      actionPrefix: kind?.prefix,
      action: query.action,
      excludePrefix: showSignIns ? undefined : 'session.',
    });
    if (!words.length) {
      const page = rows.slice(0, limit);
      return {
        entries: await describeAudit(deps, page.map(toAuditEntry)),
        nextBefore: rows.length > limit ? (page.at(-1)?.id ?? null) : null,
      };
    }
    const described = await describeAudit(deps, rows.map(toAuditEntry));
    for (const entry of described) {
      before = entry.id;
      scanned += 1;
      const haystack = `${entry.sentence} ${entry.actor} ${JSON.stringify(entry.details)}`.toLowerCase();
      if (words.every((w) => haystack.includes(w))) found.push(entry);
      if (found.length === limit) return { entries: found, nextBefore: entry.id };
    }
    if (rows.length < SCAN_BATCH) return { entries: found, nextBefore: null };
    if (scanned >= MAX_SCANNED) return { entries: found, nextBefore: before ?? null };
  }
}

/** Actors that appear in the log, for the filter. */
export async function historyActors(deps: Pick<ServiceDeps, 'db'>): Promise<string[]> {
  return listAuditActors(deps.db, 200);
}

/** Sentences for entries, looking up the names the entries did not record in three queries. */
export async function describeAudit(deps: Pick<ServiceDeps, 'db'>, entries: AuditEntry[]): Promise<HistoryEntry[]> {
  const names = await lookUpNames(deps.db, entries);
  return entries.map((entry) => {
    const parts = sentence(entry, names);
    return { ...entry, parts, sentence: parts.map((p) => p.text).join('') };
  });
}

async function lookUpNames(db: Db, entries: AuditEntry[]): Promise<Names> {
  const imageIds = new Set<number>();
  const groupIds = new Set<number>();
  const blobs = new Set<string>();
  for (const e of entries) {
    const [kind, id] = splitTarget(e.target);
    if (kind === 'image') imageIds.add(Number(id));
    if (kind === 'group') groupIds.add(Number(id));
    if (kind === 'blob') blobs.add(id);
    const d = details(e);
    if (typeof d.imageId === 'number') imageIds.add(d.imageId);
    if (typeof d.previousImageId === 'number') imageIds.add(d.previousImageId);
    for (const arch of ARCHES) {
      const a = d[arch] as { sha256?: unknown } | undefined;
      if (a && typeof a.sha256 === 'string') blobs.add(a.sha256);
    }
  }
  const [images, groups, blobsByDigest] = await Promise.all([
    listImageNames(db, [...imageIds]),
    listGroupNames(db, [...groupIds]),
    blobNames(db, [...blobs]),
  ]);
  return {
    images: new Map(images.map((i) => [i.id, i.name])),
    groups: new Map(groups.map((g) => [g.id, g.name])),
    blobs: blobsByDigest,
  };
}
