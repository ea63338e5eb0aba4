/**
 * Parallels Desktop versions carried between mirrors by bundles and sync: their manifest entries (the feed entry,
 * where it came from, the file's digest and whether it is published), the checks a hostile entry must pass, and
 * what an import changes. A carried Version element is never stored as it arrived: it is written out as XML with
 * the feed's own serializer and read back with the feed's reader, and only what that reader returns is kept.
 */
import { z } from 'zod';
import type { Sha256 } from '../../../storage/digest.js';
import { findBlobsByDigests, setBlobKind } from '../../db/repos/blobs.js';
import { imageDigests } from '../../db/repos/images.js';
import { insertUpdateRow, listUpdateRows, updateUpdateRow } from '../../db/repos/pd-updates.js';
import type { Db } from '../../db/open.js';
import type { BlobKind, PdUpdateRow } from '../../db/schema.js';
import { AppError, isError } from '../../errors.js';
import { recordAudit, type Actor } from '../audit.js';
import { sha256Field } from '../validation.js';
import { parseVersion, versionString, VERSION_PATTERN, type ProductFrame } from './feed.js';
import { child, children, FEED_LIMITS, parseXml, serializeXml, textOf, type XmlElement } from './feed-xml.js';
import { elementOf, updateFileName } from './versions.js';

/** Which versions an export carries: the published ones (what Macs are offered), every stored one, or none. */
export const UPDATE_SCOPES = ['published', 'all', 'none'] as const;
export type UpdateScope = (typeof UPDATE_SCOPES)[number];

/** Element and attribute names of the feeds: plain XML names, no namespaces. */
const XML_NAME = /^[A-Za-z_][A-Za-z0-9._-]{0,99}$/;
/** Generous, so that whatever the feed reader took from upstream travels; the manifest's own cap bounds the total. */
const MAX_ATTRIBUTES = 256;
const MAX_TEXT = FEED_LIMITS.maxBytes;

/**
 * Checks that `value` (parsed JSON) has exactly the shape of an XmlElement, within the feed reader's depth and
 * element caps; an explicit walk that refuses depth before it recurses, so no nesting can exhaust the stack.
 */
function readTree(value: unknown, depth: number, budget: { elements: number }): XmlElement | string {
  if (depth > FEED_LIMITS.maxDepth) return `elements nest deeper than ${FEED_LIMITS.maxDepth}`;
  budget.elements -= 1;
  if (budget.elements < 0) return `more than ${FEED_LIMITS.maxElements} elements`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'an element must be an object';
  const keys = Object.keys(value);
  if (keys.length !== 3 || !['name', 'attributes', 'children'].every((k) => keys.includes(k)))
    return 'an element has exactly the keys name, attributes and children';
  const { name, attributes, children: nodes } = value as Record<string, unknown>;
  if (typeof name !== 'string' || !XML_NAME.test(name))
    return `${JSON.stringify(String(name).slice(0, 50))} is not an element name`;
  if (!Array.isArray(attributes) || attributes.length > MAX_ATTRIBUTES)
    return `<${name}>: attributes must be a list of at most ${MAX_ATTRIBUTES} [name, value] pairs`;
  const pairs: Array<[string, string]> = [];
  for (const pair of attributes as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string')
      return `<${name}>: an attribute must be a [name, value] pair of strings`;
    if (!XML_NAME.test(pair[0]) || pair[1].length > MAX_TEXT) return `<${name}>: a bad attribute name or value`;
    pairs.push([pair[0], pair[1]]);
  }
  if (!Array.isArray(nodes)) return `<${name}>: children must be a list`;
  const read: Array<XmlElement | string> = [];
  for (const node of nodes as unknown[]) {
    if (typeof node === 'string') {
      if (node.length > MAX_TEXT) return `<${name}>: a text longer than ${MAX_TEXT} characters`;
      read.push(node);
      continue;
    }
    const element = readTree(node, depth + 1, budget);
    if (typeof element === 'string') return element;
    read.push(element);
  }
  return { name, attributes: pairs, children: read };
}

/** A feed element tree as JSON (feed-xml.ts XmlElement). */
export const xmlElementSchema = z.unknown().transform((value, ctx): XmlElement => {
  const read = readTree(value, 0, { elements: FEED_LIMITS.maxElements });
  if (typeof read === 'string') {
    ctx.addIssue({ code: 'custom', message: `not a feed element: ${read}` });
    return z.NEVER;
  }
  return read;
});

const attributesSchema = z
  .array(z.tuple([z.string().regex(XML_NAME, 'must be an XML name'), z.string().max(MAX_TEXT)]))
  .max(MAX_ATTRIBUTES);

/** What a served feed needs around the Version element (feed.ts ProductFrame). */
export const productFrameSchema = z
  .object({
    rootAttributes: attributesSchema,
    productAttributes: attributesSchema,
    elements: z.array(xmlElementSchema).max(1000),
  })
  .strict();

// eslint-disable-next-line no-control-regex -- control characters are what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;
const oneLine = (max: number) =>
  z
    .string()
    .max(max)
    .refine((text) => !CONTROL.test(text), 'must be one line of text');

/** As the feed wrote it (not normalised), so it still matches the FilePath it came from. */
const httpUrl = oneLine(2000).refine((text) => {
  if (text.trim() !== text) return false;
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}, 'must be an http(s) URL');

/** One Parallels Desktop version in a manifest: its feed entry, its file's digest, and whether it is published. */
export const carriedUpdateSchema = z
  .object({
    version: z
      .string()
      .regex(VERSION_PATTERN, 'must be a Parallels Desktop version like 26.3.3-57507')
      .refine((v) => {
        const numbers = parseVersion(v);
        return numbers === null || versionString(numbers) === v;
      }, 'must be written without leading zeros'),
    origin: z.enum(['upstream', 'manual']),
    feedUrl: httpUrl.nullable(),
    fileUrl: httpUrl.nullable(),
    fileSize: oneLine(64).nullable(),
    notes: z.array(oneLine(1000)).max(20),
    published: z.boolean(),
    sha256: sha256Field,
    size: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    element: xmlElementSchema,
    product: productFrameSchema,
  })
  .strict();

export type CarriedUpdate = z.output<typeof carriedUpdateSchema>;

function invalid(version: string, detail: string): AppError {
  return new AppError('BUNDLE_INVALID', `Parallels Desktop version ${version} in the manifest: ${detail}`);
}

/**
 * The entry as this mirror will keep it, or BUNDLE_INVALID: the Version element is written inside its product
 * frame as a feed, read back with the feed reader (no DTD, capped), and must be a `Version` whose numbers are the
 * entry's version, with an Update holding a FilePath (the upstream file's URL, for an upstream entry).
 */
export function rereadCarriedUpdate(entry: CarriedUpdate): CarriedUpdate {
  const { version } = entry;
  if (entry.origin === 'upstream' && entry.fileUrl === null)
    throw invalid(version, 'an upstream entry needs the URL of its upstream file (fileUrl)');
  if (entry.origin === 'manual' && entry.fileUrl !== null)
    throw invalid(version, 'an entry added by hand has no upstream file (fileUrl must be null)');
  if (entry.element.name !== 'Version') throw invalid(version, `its element is <${entry.element.name}>, not <Version>`);
  if (entry.product.elements.some((e) => e.name === 'Version' || e.name === 'Product'))
    throw invalid(version, 'its product elements hold a <Version> or <Product>');
  const frame = entry.product;
  const document: XmlElement = {
    name: 'ParallelsUpdates',
    attributes: frame.rootAttributes,
    children: [{ name: 'Product', attributes: frame.productAttributes, children: [...frame.elements, entry.element] }],
  };
  let root: XmlElement;
  try {
    root = parseXml(serializeXml(document), `the entry of ${version}`);
  } catch (err) {
    if (isError(err, 'FEED_INVALID')) throw invalid(version, err.message);
    throw err;
  }
  const products = children(root, 'Product');
  const element = products.length === 1 ? children(products[0]!, 'Version') : [];
  if (element.length !== 1) throw invalid(version, 'its entry does not read back as one <Version>');
  const read = element[0]!;
  const numbers = ['Major', 'Minor', 'SubMinor', 'SubSubMinor'].map((n) => textOf(child(read, n)).trim());
  const parsed = parseVersion(`${numbers[0]}.${numbers[1]}.${numbers[2]}-${numbers[3]}`);
  if (!parsed || versionString(parsed) !== version)
    throw invalid(version, `its <Version> element says ${numbers.join('.')}`);
  const update = child(read, 'Update');
  if (!update || !child(update, 'FilePath')) throw invalid(version, 'its <Version> has no <Update> with a <FilePath>');
  const filePath = textOf(child(update, 'FilePath')).trim();
  if (entry.origin === 'upstream' && filePath !== entry.fileUrl)
    throw invalid(version, `its first FilePath is not its upstream file ${entry.fileUrl}`);
  const product: ProductFrame = {
    rootAttributes: root.attributes,
    productAttributes: products[0]!.attributes,
    elements: children(products[0]!).filter((e) => e.name !== 'Version'),
  };
  return { ...entry, element: read, product };
}

/** The stored versions an export carries (`scope`), newest first, as manifest entries. */
export async function updatesToCarry(db: Db, scope: UpdateScope): Promise<CarriedUpdate[]> {
  if (scope === 'none') return [];
  const rows = (await listUpdateRows(db)).filter(
    (r) => r.fetch_state === 'stored' && r.sha256 !== null && r.size !== null && (scope === 'all' || r.published === 1),
  );
  return rows.map((r) => ({
    version: r.version,
    origin: r.origin,
    feedUrl: r.feed_url,
    fileUrl: r.file_url,
    fileSize: r.file_size_text,
    notes: r.notes ? (JSON.parse(r.notes) as string[]) : [],
    published: r.published === 1,
    sha256: r.sha256!,
    size: r.size!,
    element: elementOf(r),
    product: JSON.parse(r.product) as ProductFrame,
  }));
}

export interface UpdatesReport {
  /** Versions new here, versions whose entry or file changed, and versions already the same. */
  created: string[];
  updated: string[];
  unchanged: string[];
  /** Versions the import publishes here, and versions it takes out of the served feed. */
  published: string[];
  unpublished: string[];
}

export interface CarryOptions {
  /**
   * Sync from a primary: the primary decides what is published, so a version published here that the manifest
   * does not carry as published is unpublished.
   */
  followPublished?: boolean | undefined;
}

export interface CarriedBlob {
  sha256: string;
  kind: BlobKind;
}

/** The row columns a carried entry sets (the file's state aside). */
function entryColumns(u: CarriedUpdate) {
  return {
    origin: u.origin,
    feed_url: u.feedUrl,
    file_url: u.fileUrl,
    file_size_text: u.fileSize,
    element: JSON.stringify(u.element),
    product: JSON.stringify(u.product),
    notes: u.notes.length > 0 ? JSON.stringify(u.notes) : null,
  };
}

function sameEntry(row: PdUpdateRow, u: CarriedUpdate): boolean {
  const want = entryColumns(u);
  return (
    row.fetch_state === 'stored' &&
    row.sha256 === u.sha256 &&
    row.origin === want.origin &&
    row.feed_url === want.feed_url &&
    row.file_url === want.file_url &&
    row.file_size_text === want.file_size_text &&
    row.element === want.element &&
    row.product === want.product &&
    (row.notes ?? null) === want.notes
  );
}

/**
 * What importing `updates` (with the manifest's `blobs`) would change here, and every conflict: a version stored
 * here with other bytes, an update file that a golden image here uses as its package, or a package of the
 * manifest that is an update file here.
 */
export async function planUpdates(
  db: Db,
  updates: readonly CarriedUpdate[],
  blobs: readonly CarriedBlob[],
  options: CarryOptions = {},
): Promise<{ report: UpdatesReport; conflicts: string[] }> {
  const report: UpdatesReport = { created: [], updated: [], unchanged: [], published: [], unpublished: [] };
  const conflicts: string[] = [];
  const rows = new Map((await listUpdateRows(db)).map((r) => [r.version, r]));
  const local = new Map(
    (await findBlobsByDigests(db, [...new Set(blobs.map((b) => b.sha256))])).map((b) => [b.sha256, b]),
  );
  const usedByImages = await imageDigests(db);
  for (const blob of blobs) {
    const here = local.get(blob.sha256);
    if (blob.kind === 'update' && usedByImages.has(blob.sha256))
      conflicts.push(`update file ${blob.sha256} is the package of a golden image here`);
    else if (blob.kind === 'package' && here?.kind === 'update')
      conflicts.push(`package ${blob.sha256} is a Parallels Desktop update file here, not a golden-image package`);
  }
  const publishedThere = new Set<string>();
  for (const u of updates) {
    const row = rows.get(u.version);
    if (row?.fetch_state === 'stored' && row.sha256 !== u.sha256) {
      conflicts.push(
        `Parallels Desktop ${u.version} is stored here with sha256 ${row.sha256}; the bundle carries ${u.sha256}`,
      );
      continue;
    }
    if (!row) report.created.push(u.version);
    else if (sameEntry(row, u)) report.unchanged.push(u.version);
    else report.updated.push(u.version);
    if (u.published) publishedThere.add(u.version);
    if (u.published && row?.published !== 1) report.published.push(u.version);
    if (!u.published && row?.published === 1) report.unpublished.push(u.version);
  }
  if (options.followPublished) {
    const carried = new Set(updates.map((u) => u.version));
    for (const row of rows.values())
      if (row.published === 1 && !carried.has(row.version) && !publishedThere.has(row.version))
        report.unpublished.push(row.version);
  }
  return { report, conflicts };
}

/**
 * Applies a plan (planUpdates, checked for conflicts by the caller) inside the caller's transaction: each version's
 * row and its file's kind and name, then the publish state, each change of it audited.
 */
export async function applyUpdates(
  trx: Db,
  updates: readonly CarriedUpdate[],
  report: UpdatesReport,
  actor: Actor,
  now: number,
): Promise<void> {
  const changed = new Set([...report.created, ...report.updated]);
  const publish = new Set(report.published);
  const rows = new Map((await listUpdateRows(trx)).map((r) => [r.version, r]));
  for (const u of updates) {
    await setBlobKind(trx, u.sha256 as Sha256, 'update', updateFileName(u.version));
    if (!changed.has(u.version)) continue;
    const row = rows.get(u.version);
    const file =
      row?.fetch_state === 'stored' && row.sha256 === u.sha256
        ? {}
        : { sha256: u.sha256, size: u.size, validator: null, fetch_state: 'stored' as const, fetched_at: now };
    if (row) {
      await updateUpdateRow(trx, u.version, { ...entryColumns(u), ...file, fetch_error: null, updated_at: now });
      continue;
    }
    const numbers = parseVersion(u.version)!;
    await insertUpdateRow(trx, {
      version: u.version,
      major: numbers.major,
      minor: numbers.minor,
      sub_minor: numbers.subMinor,
      build: numbers.build,
      ...entryColumns(u),
      sha256: u.sha256,
      size: u.size,
      validator: null,
      fetch_state: 'stored',
      fetch_error: null,
      fetched_at: now,
      published: 0,
      published_at: null,
      unpublished_at: null,
      alert: null,
      alert_at: null,
      created_at: now,
      updated_at: now,
    });
  }
  for (const version of publish) {
    await updateUpdateRow(trx, version, { published: 1, published_at: now, updated_at: now });
    await recordAudit(trx, {
      actor,
      action: 'update.publish',
      target: `update:${version}`,
      at: now,
      details: { bundle: true },
    });
  }
  for (const version of report.unpublished) {
    await updateUpdateRow(trx, version, { published: 0, unpublished_at: now, updated_at: now });
    await recordAudit(trx, {
      actor,
      action: 'update.unpublish',
      target: `update:${version}`,
      at: now,
      details: { bundle: true },
    });
  }
}
