/** The sentence an audit entry reads as, with links to the things it names that still exist. */
import { humanBytes } from '../format.js';
import { ARCH_LABELS, ARCHES } from './arches.js';
import type { AuditEntry } from './audit.js';

/** A piece of a sentence: plain text, or text linking to the thing it names. */
export interface SentencePart {
  text: string;
  href?: string;
}

/** Today's names of the images, groups and packages entries refer to. */
export interface Names {
  images: Map<number, string>;
  groups: Map<number, string>;
  blobs: Map<string, string>;
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

export function splitTarget(target: string): [string, string] {
  const i = target.indexOf(':');
  return i < 0 ? [target, ''] : [target.slice(0, i), target.slice(i + 1)];
}

export function details(entry: AuditEntry): Record<string, unknown> {
  return typeof entry.details === 'object' && entry.details !== null ? (entry.details as Record<string, unknown>) : {};
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const quote = (s: string): string => `“${s}”`;
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? (v as unknown[]).filter((x): x is string => typeof x === 'string') : [];

export function sentence(entry: AuditEntry, names: Names): SentencePart[] {
  const d = details(entry);
  const [, targetId] = splitTarget(entry.target);
  const who: SentencePart = { text: actorName(entry.actor) };
  const t = (text: string): SentencePart => ({ text });
  // A removed package has no page left: its recorded name (or short digest) and size.
  const removedBlob = [
    t(str(d.name) ?? targetId.slice(0, 12)),
    ...(typeof d.size === 'number' ? [t(` (${humanBytes(d.size)})`)] : []),
  ];
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
      return [
        who,
        t(' changed golden image '),
        image(Number(targetId), str(d.name)),
        ...(changes.length ? [t(': '), ...changes] : []),
      ];
    }
    case 'image.delete': {
      const left = Array.isArray(d.groups)
        ? (d.groups as unknown[]).filter((g): g is string => typeof g === 'string')
        : [];
      return [
        who,
        t(' deleted golden image '),
        t(str(d.name) ?? `#${targetId}`),
        ...(left.length ? [t(`; groups left without an image: ${left.join(', ')}`)] : []),
      ];
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
      return [
        who,
        t(` renamed group ${quote(str(d.from) ?? '?')} to `),
        group(Number(targetId), str(d.to)),
        ...(str(d.reason) ? [t(`, because ${str(d.reason)}`)] : []),
      ];
    case 'blob.delete':
      return [who, t(' deleted package '), ...removedBlob];
    case 'blob.gc':
      return [who, t(' removed the unused package '), ...removedBlob, t(' (garbage collection)')];
    case 'blob.corrupt':
      return [
        who,
        t(' found package '),
        blob(targetId, null),
        t(' corrupt'),
        ...(str(d.detail) ? [t(`: ${str(d.detail)}`)] : []),
        ...(d.quarantined ? [t('; it was moved to quarantine')] : []),
      ];
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
    case 'site.create':
      return [
        who,
        t(` created site ${quote(targetId)}`),
        ...(networkList(d) ? [t(` for ${networkList(d)}`)] : []),
        ...(d.redirects === false ? [t(', with redirects switched off')] : []),
      ];
    case 'site.update':
      return [who, t(siteChanges(d, targetId))];
    case 'site.delete':
      return [who, t(` deleted site ${quote(targetId)}`)];
    case 'replica.update':
      return [who, t(replicaChanges(d, targetId))];
    case 'replica.delete':
      return [who, t(` forgot replica ${targetId}`)];
    case 'update.publish':
      return [
        who,
        t(` published Parallels Desktop ${targetId}`),
        ...(d.auto === true ? [t(' automatically (MIRROR_PD_UPDATES_AUTO_PUBLISH)')] : []),
      ];
    case 'update.unpublish':
      return [who, t(` took Parallels Desktop ${targetId} out of the update feed`)];
    case 'update.rollback': {
      const newer = strings(d.unpublished);
      return [
        who,
        t(` rolled Parallels Desktop back to ${targetId}`),
        t(newer.length ? `, taking ${newer.join(', ')} out of the update feed` : ' (no newer version was published)'),
      ];
    }
    case 'update.add':
      return [
        who,
        t(` added Parallels Desktop ${targetId} from a file`),
        ...(typeof d.size === 'number' ? [t(` (${humanBytes(d.size)})`)] : []),
        ...(d.published === true ? [t(' and published it')] : []),
      ];
    case 'update.fetch':
      return [
        who,
        t(` downloaded Parallels Desktop ${targetId}`),
        ...(typeof d.size === 'number' ? [t(` (${humanBytes(d.size)})`)] : []),
        ...(str(d.url) ? [t(` from ${str(d.url)}`)] : []),
      ];
    case 'update.alert':
      return [
        who,
        t(` found that the file of Parallels Desktop ${targetId} changed upstream`),
        ...(str(d.url) ? [t(` (${str(d.url)})`)] : []),
        ...(str(d.stored) && str(d.upstream)
          ? [t(`: stored sha256 ${str(d.stored)!.slice(0, 12)}…, upstream now ${str(d.upstream)!.slice(0, 12)}…`)]
          : []),
        t('; the stored file is still the one served'),
      ];
    case 'update.alert-dismiss':
      return [who, t(` closed the alert of Parallels Desktop ${targetId}, keeping the stored file`)];
    case 'update.alert-take':
      return [
        who,
        t(` closed the alert of Parallels Desktop ${targetId} by taking the new bytes`),
        ...(str(d.to) ? [t(` (sha256 ${str(d.to)!.slice(0, 12)}…)`)] : []),
      ];
    default:
      return [who, t(` did ${entry.action} on ${entry.target}`)];
  }
}

/** "assigned Sales → Windows 11", "removed Windows 11 from Sales", "renamed group “x” to Sales", … joined with commas and "and". */
function groupChanges(
  d: Record<string, unknown>,
  g: SentencePart,
  image: (id: number | null, recorded: string | null) => SentencePart,
): SentencePart[] {
  const clauses: SentencePart[][] = [];
  const t = (text: string): SentencePart => ({ text });
  const previous = str(d.previousName);
  if (typeof d.name === 'string' && previous !== null && previous !== d.name)
    clauses.push([t(`renamed group ${quote(previous)} to `), g]);
  if ('imageId' in d) {
    if (typeof d.imageId === 'number') clauses.push([t('assigned '), g, t(' → '), image(d.imageId, str(d.imageName))]);
    else {
      const previousId = typeof d.previousImageId === 'number' ? d.previousImageId : null;
      const previous = str(d.previousImageName) ?? (previousId !== null ? image(previousId, null).text : null);
      clauses.push(
        previous !== null
          ? [t('removed '), image(previousId, previous), t(' from '), g]
          : [t('removed the golden image from '), g],
      );
    }
  }
  if ('licenseKey' in d)
    clauses.push(d.licenseKey === null ? [t('removed the license key of '), g] : [t('set the license key of '), g]);
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

/** A site's networks as recorded ("10.1.0.0/16, fd00:1::/64"), or null when the entry has none. */
function networkList(d: Record<string, unknown>): string | null {
  if (!Array.isArray(d.networks)) return null;
  const networks = (d.networks as unknown[]).filter((n): n is string => typeof n === 'string');
  return networks.length ? networks.join(', ') : null;
}

/** " changed site “hq”: networks → 10.1.0.0/16 and redirects switched off". */
function siteChanges(d: Record<string, unknown>, name: string): string {
  const clauses: string[] = [];
  const networks = networkList(d);
  if (networks) clauses.push(`networks → ${networks}`);
  if (d.redirects === true) clauses.push('redirects switched on');
  if (d.redirects === false) clauses.push('redirects switched off');
  if (clauses.length === 0) return ` saved site ${quote(name)} unchanged`;
  return ` changed site ${quote(name)}: ${clauses.join(' and ')}`;
}

/** " disabled replica http://branch:8080 and set its weight to 300". */
function replicaChanges(d: Record<string, unknown>, url: string): string {
  const weight = typeof d.weight === 'number' ? d.weight : null;
  const switched = d.enabled === true ? 'enabled' : d.enabled === false ? 'disabled' : null;
  if (switched && weight !== null) return ` ${switched} replica ${url} and set its weight to ${weight}`;
  if (switched) return ` ${switched} replica ${url}`;
  if (weight !== null) return ` set the weight of replica ${url} to ${weight}`;
  return ` saved replica ${url} unchanged`;
}

function bundleCounts(d: Record<string, unknown>): string {
  const part = (what: string, r: unknown): string | null => {
    const report = r as { created?: unknown[]; updated?: unknown[] } | undefined;
    const created = report?.created?.length ?? 0;
    const updated = report?.updated?.length ?? 0;
    if (!created && !updated) return null;
    return `${what} ${[created ? `${created} created` : '', updated ? `${updated} updated` : ''].filter(Boolean).join(', ')}`;
  };
  const updates = d.updates as { published?: unknown[]; unpublished?: unknown[] } | undefined;
  const publishing = [
    updates?.published?.length ? `${updates.published.length} published` : '',
    updates?.unpublished?.length ? `${updates.unpublished.length} unpublished` : '',
  ].filter(Boolean);
  return (
    [
      part('golden images', d.images),
      part('groups', d.groups),
      part('Parallels Desktop versions', d.updates),
      publishing.length > 0 ? `Parallels Desktop versions ${publishing.join(', ')}` : null,
    ]
      .filter(Boolean)
      .join('; ') || 'nothing changed'
  );
}
