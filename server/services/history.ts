/**
 * The audit log as people read it: one sentence per entry with names instead
 * of ids ("admin assigned Sales → Windows 11"), links to what still exists,
 * sign-ins hidden unless asked for, and filters by actor, kind of action and
 * text. Names come from the entry itself where it recorded them, else from
 * today's rows; an id nobody can name any more stays an id.
 */
import type { Db } from '../db/open.js';
import { humanBytes } from '../format.js';
import { ARCH_LABELS, ARCHES } from './images.js';
import { toAuditEntry, type AuditEntry } from './audit.js';

/** A piece of a sentence: plain text, or text linking to the thing it names. */
export interface SentencePart {
  text: string;
  href?: string;
}

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

export async function listHistory(db: Db, query: HistoryQuery = {}): Promise<{ entries: HistoryEntry[]; nextBefore: number | null }> {
  const limit = Math.min(Math.max(query.limit ?? 50, 1), 500);
  const words = (query.text ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const kind = query.action && query.action in ACTION_KINDS ? ACTION_KINDS[query.action as ActionKind] : null;
  const showSignIns = query.signIns === true || kind?.prefix === 'session.' || query.action?.startsWith('session.') === true;
  const found: HistoryEntry[] = [];
  let before = query.beforeId;
  let scanned = 0;
  for (;;) {
    let q = db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(words.length ? SCAN_BATCH : limit + 1);
    if (before !== undefined) q = q.where('id', '<', before);
    if (query.actor) q = q.where('actor', '=', query.actor);
    if (kind) q = q.where('action', 'like', `${kind.prefix}%`);
    else if (query.action) q = q.where('action', '=', query.action);
    if (!showSignIns) q = q.where('action', 'not like', 'session.%');
    const rows = await q.execute();
    if (!words.length) {
      const page = rows.slice(0, limit);
      return { entries: await describeAudit(db, page.map(toAuditEntry)), nextBefore: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
    }
    const described = await describeAudit(db, rows.map(toAuditEntry));
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
export async function historyActors(db: Db): Promise<string[]> {
  return (await db.selectFrom('audit_log').select('actor').distinct().orderBy('actor').limit(200).execute()).map((r) => r.actor);
}

/** Sentences for entries, looking up the names the entries did not record in three queries. */
export async function describeAudit(db: Db, entries: AuditEntry[]): Promise<HistoryEntry[]> {
  const names = await lookUpNames(db, entries);
  return entries.map((entry) => {
    const parts = sentence(entry, names);
    return { ...entry, parts, sentence: parts.map((p) => p.text).join('') };
  });
}

/** A stored actor ("user:admin") as people say it. */
export function actorName(actor: string): string {
  const [kind, ...rest] = actor.split(':');
  const name = rest.join(':');
  switch (kind) {
    case 'user':
      return name;
    case 'token':
      return `API token “${name}”`;
    case 'cli':
      return `${name} (command line)`;
    case 'system':
      if (name === 'goldmirror') return 'goldmirror';
      if (name === 'first-start') return 'goldmirror (first start)';
      if (name.startsWith('migration-')) return 'goldmirror (upgrade)';
      return name;
    default:
      return actor;
  }
}

interface Names {
  images: Map<number, string>;
  groups: Map<number, string>;
  blobs: Map<string, string>;
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
  const [images, groups, blobRows] = await Promise.all([
    imageIds.size ? db.selectFrom('images').select(['id', 'name']).where('id', 'in', [...imageIds]).execute() : [],
    groupIds.size ? db.selectFrom('groups').select(['id', 'name']).where('id', 'in', [...groupIds]).execute() : [],
    blobs.size ? db.selectFrom('blobs').select(['sha256', 'name']).where('sha256', 'in', [...blobs]).execute() : [],
  ]);
  return {
    images: new Map(images.map((i) => [i.id, i.name])),
    groups: new Map(groups.map((g) => [g.id, g.name])),
    blobs: new Map(blobRows.map((b) => [b.sha256, b.name])),
  };
}

function splitTarget(target: string): [string, string] {
  const i = target.indexOf(':');
  return i < 0 ? [target, ''] : [target.slice(0, i), target.slice(i + 1)];
}

function details(entry: AuditEntry): Record<string, unknown> {
  return typeof entry.details === 'object' && entry.details !== null ? (entry.details as Record<string, unknown>) : {};
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const quote = (s: string): string => `“${s}”`;

function sentence(entry: AuditEntry, names: Names): SentencePart[] {
  const d = details(entry);
  const [, targetId] = splitTarget(entry.target);
  const who: SentencePart = { text: actorName(entry.actor) };
  const t = (text: string): SentencePart => ({ text });
  /** The thing as it is named now (linked) or, when gone, as the entry recorded it. */
  const image = (id: number | null, recorded: string | null): SentencePart => {
    const now = id !== null ? names.images.get(id) : undefined;
    if (now !== undefined) return { text: now, href: `/admin/images/${id}` };
    return { text: recorded ?? (id !== null ? `golden image #${id}` : 'a golden image') };
  };
  const group = (id: number, recorded: string | null): SentencePart => {
    const now = names.groups.get(id);
    if (now !== undefined) return { text: now, href: `/admin/groups/${id}` };
    return { text: recorded ?? `group #${id}` };
  };
  const blob = (sha256: string, recorded: string | null): SentencePart => {
    const now = names.blobs.get(sha256);
    if (now !== undefined) return { text: now, href: `/admin/blobs/${sha256}` };
    return { text: recorded ?? `package ${sha256.slice(0, 12)}…` };
  };
  const fromCsv = d.source === 'csv' ? [t(' (CSV import)')] : [];

  switch (entry.action) {
    case 'image.create':
      return [who, t(' created golden image '), image(Number(targetId), str(d.name))];
    case 'image.update': {
      const changes = imageChanges(d, (sha) => blob(sha, null));
      return [who, t(' changed golden image '), image(Number(targetId), str(d.name)), ...(changes.length ? [t(': '), ...changes] : [])];
    }
    case 'image.delete': {
      const left = Array.isArray(d.groups) ? (d.groups as unknown[]).filter((g): g is string => typeof g === 'string') : [];
      return [who, t(' deleted golden image '), t(str(d.name) ?? `#${targetId}`), ...(left.length ? [t(`; groups left without an image: ${left.join(', ')}`)] : [])];
    }
    case 'group.create': {
      const g = group(Number(targetId), str(d.name));
      const imageId = typeof d.imageId === 'number' ? d.imageId : null;
      return [
        who,
        t(' created group '),
        g,
        ...(imageId !== null ? [t(' → '), image(imageId, str(d.imageName))] : []),
        ...(d.primary === true ? [t(', with the primary license key')] : []),
        ...fromCsv,
      ];
    }
    case 'group.update':
      return [who, ...groupChanges(d, group(Number(targetId), str(d.groupName)), image), ...fromCsv];
    case 'group.delete':
      return [who, t(' deleted group '), t(str(d.name) ?? `#${targetId}`)];
    case 'group.rename':
      return [who, t(` renamed group ${quote(str(d.from) ?? '?')} to `), group(Number(targetId), str(d.to)), ...(str(d.reason) ? [t(`, because ${str(d.reason)}`)] : [])];
    case 'blob.delete':
      return [who, t(' deleted package '), t(str(d.name) ?? targetId.slice(0, 12)), ...(typeof d.size === 'number' ? [t(` (${humanBytes(d.size)})`)] : [])];
    case 'blob.gc':
      return [who, t(' removed the unused package '), t(str(d.name) ?? targetId.slice(0, 12)), ...(typeof d.size === 'number' ? [t(` (${humanBytes(d.size)})`)] : []), t(' (garbage collection)')];
    case 'blob.corrupt':
      return [who, t(' found package '), blob(targetId, null), t(' corrupt'), ...(str(d.detail) ? [t(`: ${str(d.detail)}`)] : []), ...(d.quarantined ? [t('; it was moved to quarantine')] : [])];
    case 'blob.missing':
      return [who, t(' found package '), blob(targetId, null), t(' missing from the data directory')];
    case 'token.create':
      return [who, t(` created API token ${quote(targetId)}`)];
    case 'token.revoke':
      return [who, t(` revoked API token ${quote(targetId)}`)];
    case 'user.create':
      return [who, t(` created user ${targetId}`)];
    case 'user.password_change':
      return [who, t(' changed their password')];
    case 'user.password_reset':
      return [who, t(` reset the password of user ${targetId}`)];
    case 'session.login':
      return [who, t(' signed in'), ...(str(d.from) ? [t(` from ${str(d.from)}`)] : [])];
    case 'bundle.import':
      return [who, t(` imported a bundle: ${bundleCounts(d)}`)];
    default:
      return [who, t(` did ${entry.action} on ${entry.target}`)];
  }
}

/** "assigned Sales → Windows 11", "removed Windows 11 from Sales", "renamed group “x” to Sales", … joined with commas and "and". */
function groupChanges(d: Record<string, unknown>, g: SentencePart, image: (id: number | null, recorded: string | null) => SentencePart): SentencePart[] {
  const clauses: SentencePart[][] = [];
  const t = (text: string): SentencePart => ({ text });
  const previous = str(d.previousName);
  if (typeof d.name === 'string' && previous !== null && previous !== d.name) clauses.push([t(`renamed group ${quote(previous)} to `), g]);
  if ('imageId' in d) {
    if (typeof d.imageId === 'number') clauses.push([t('assigned '), g, t(' → '), image(d.imageId, str(d.imageName))]);
    else {
      const previousId = typeof d.previousImageId === 'number' ? d.previousImageId : null;
      const previous = str(d.previousImageName) ?? (previousId !== null ? image(previousId, null).text : null);
      clauses.push(previous !== null ? [t('removed '), image(previousId, previous), t(' from '), g] : [t('removed the golden image from '), g]);
    }
  }
  if ('licenseKey' in d) clauses.push(d.licenseKey === null ? [t('removed the license key of '), g] : [t('set the license key of '), g]);
  if (d.primary === true) clauses.push([t('made '), g, t(' the primary license key group')]);
  if (d.primary === false) clauses.push([t('took the primary license key from '), g]);
  if (clauses.length === 0) return [t(' saved group '), g, t(' unchanged')];
  const out: SentencePart[] = [t(' ')];
  clauses.forEach((clause, i) => {
    if (i > 0) out.push(t(i === clauses.length - 1 ? ' and ' : ', '));
    out.push(...clause);
  });
  return out;
}

/** What an image.update changed, from its patch: "Apple silicon package → Win11-arm.pvmp, description". */
function imageChanges(d: Record<string, unknown>, blob: (sha256: string) => SentencePart): SentencePart[] {
  const items: SentencePart[][] = [];
  const t = (text: string): SentencePart => ({ text });
  if (typeof d.name === 'string') items.push([t(`name → ${quote(d.name)}`)]);
  if ('description' in d) items.push([t('description')]);
  for (const arch of ARCHES) {
    const a = d[arch] as { enabled?: unknown; sha256?: unknown } | undefined;
    if (!a) continue;
    if (a.enabled === true) items.push([t(`${ARCH_LABELS[arch]} enabled`)]);
    if (a.enabled === false) items.push([t(`${ARCH_LABELS[arch]} disabled`)]);
    if (typeof a.sha256 === 'string') items.push([t(`${ARCH_LABELS[arch]} package → `), blob(a.sha256)]);
    if (a.sha256 === null) items.push([t(`${ARCH_LABELS[arch]} package removed`)]);
  }
  return items.flatMap((item, i) => (i === 0 ? item : [t(', '), ...item]));
}

function bundleCounts(d: Record<string, unknown>): string {
  const part = (what: string, r: unknown): string | null => {
    const report = r as { created?: unknown[]; updated?: unknown[] } | undefined;
    const created = report?.created?.length ?? 0;
    const updated = report?.updated?.length ?? 0;
    if (!created && !updated) return null;
    return `${what} ${[created ? `${created} created` : '', updated ? `${updated} updated` : ''].filter(Boolean).join(', ')}`;
  };
  return [part('golden images', d.images), part('groups', d.groups)].filter(Boolean).join('; ') || 'nothing changed';
}
