/**
 * The meaning of a Parallels Desktop update feed: `ParallelsUpdates` → `Product` → product elements
 * (`ProductName`, `UpdateEnabled`…) and one `Version` per release, whose `Update` elements carry the `FilePath`
 * of the installer. Reading turns an upstream feed into versions; writing builds the feed this mirror serves from
 * the published versions, copying every element as it came except `FilePath`.
 */
import { AppError } from '../../errors.js';
import { child, children, leaf, parseXml, serializeXml, textOf, type XmlElement, type XmlNode } from './feed-xml.js';

/** `26.3.3-57507`: Major.Minor.SubMinor-SubSubMinor, how Parallels names a build. */
export const VERSION_PATTERN = /^(\d{1,4})\.(\d{1,4})\.(\d{1,4})-(\d{1,9})$/;

export interface VersionNumbers {
  major: number;
  minor: number;
  subMinor: number;
  build: number;
}

/** What a served feed needs besides the Version element: the root's and Product's attributes and the product elements. */
export interface ProductFrame {
  rootAttributes: Array<[string, string]>;
  productAttributes: Array<[string, string]>;
  /** Product children other than `Version`, in upstream order. */
  elements: XmlElement[];
}

export interface FeedVersion extends VersionNumbers {
  version: string;
  /** The `Version` element as upstream wrote it. */
  element: XmlElement;
  product: ProductFrame;
  /** The first `FilePath`, trimmed (what Homebrew, Installomator and AutoPkg take). */
  fileUrl: string;
  /** `FileSize` as written upstream (its unit is not documented), or null when absent. */
  fileSize: string | null;
}

export interface ReadFeed {
  versions: FeedVersion[];
  /** Versions left out, and why (a malformed entry never stops the others). */
  skipped: string[];
}

export function parseVersion(text: string): VersionNumbers | null {
  const m = VERSION_PATTERN.exec(text.trim());
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), subMinor: Number(m[3]), build: Number(m[4]) };
}

/** Why `text` is not a version, in the words every surface (CLI, API, pages) shows; null when it is one. */
export function versionProblem(text: string): string | null {
  return parseVersion(text)
    ? null
    : `${JSON.stringify(text)} is not a Parallels Desktop version; write it like 26.3.3-57507`;
}

export const versionString = (n: VersionNumbers): string => `${n.major}.${n.minor}.${n.subMinor}-${n.build}`;

/** Newest first. */
export function compareVersionsDescending(a: VersionNumbers, b: VersionNumbers): number {
  return b.major - a.major || b.minor - a.minor || b.subMinor - a.subMinor || b.build - a.build;
}

/** Reads an upstream feed's text; FEED_INVALID when it is not XML or not a Parallels update feed at all. */
export function readFeed(text: string, what: string): ReadFeed {
  const root = parseXml(text, what);
  if (root.name !== 'ParallelsUpdates')
    throw new AppError('FEED_INVALID', `${what} is not a Parallels update feed: its root is <${root.name}>`);
  const products = children(root, 'Product');
  if (products.length === 0)
    throw new AppError('FEED_INVALID', `${what} is not a Parallels update feed: it has no <Product>`);
  const versions: FeedVersion[] = [];
  const skipped: string[] = [];
  for (const product of products) {
    const frame: ProductFrame = {
      rootAttributes: root.attributes,
      productAttributes: product.attributes,
      elements: children(product).filter((e) => e.name !== 'Version'),
    };
    for (const element of children(product, 'Version')) {
      const read = readVersion(element, frame);
      if (typeof read === 'string') skipped.push(read);
      else if (versions.some((v) => v.version === read.version)) skipped.push(`${read.version}: listed twice`);
      else versions.push(read);
    }
  }
  return { versions, skipped };
}

/** What the database keeps of an entry's FilePath and FileSize (pd_updates.file_url, file_size_text). */
export const MAX_FILE_URL = 2000;
export const MAX_FILE_SIZE_TEXT = 64;

function readVersion(element: XmlElement, product: ProductFrame): FeedVersion | string {
  const numbers = ['Major', 'Minor', 'SubMinor', 'SubSubMinor'].map((n) => textOf(child(element, n)).trim());
  const label = numbers.every((n) => n !== '') ? `${numbers[0]}.${numbers[1]}.${numbers[2]}-${numbers[3]}` : '?';
  const parsed = parseVersion(label);
  if (!parsed) return `a <Version> without whole numbers in Major, Minor, SubMinor and SubSubMinor (${label})`;
  const version = versionString(parsed);
  const updates = children(element, 'Update');
  if (updates.length === 0) return `${version}: it has no <Update>`;
  const first = child(updates[0]!, 'FilePath');
  const fileUrl = textOf(first).trim();
  if (fileUrl.length > MAX_FILE_URL) return `${version}: its FilePath is longer than ${MAX_FILE_URL} characters`;
  let url: URL;
  try {
    url = new URL(fileUrl);
  } catch {
    return `${version}: its FilePath is not a URL (${JSON.stringify(fileUrl.slice(0, 200))})`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${version}: its FilePath is not http(s)`;
  const size = child(updates[0]!, 'FileSize');
  const fileSize = size ? textOf(size).trim() : null;
  if (fileSize !== null && fileSize.length > MAX_FILE_SIZE_TEXT)
    return `${version}: its FileSize is longer than ${MAX_FILE_SIZE_TEXT} characters`;
  return { ...parsed, version, element, product, fileUrl, fileSize };
}

/** One version as the served feed shows it. */
export interface ServedVersion extends VersionNumbers {
  element: XmlElement;
  product: ProductFrame;
  /** The upstream FilePath replaced by `link` (null: every FilePath is replaced, as in a generated entry). */
  fileUrl: string | null;
  link: string;
}

/**
 * The served feed: one Product with the newest version's product elements, then every version newest first. In
 * each, an Update whose (first) FilePath names the version's upstream file is kept with its FilePath replaced by
 * `link`; an Update pointing at any other file is left out (this mirror holds one file per version).
 */
export function buildFeed(published: ServedVersion[]): string {
  const sorted = [...published].sort(compareVersionsDescending);
  const frame = sorted[0]?.product ?? DEFAULT_PRODUCT;
  const product: XmlElement = {
    name: 'Product',
    attributes: frame.productAttributes,
    children: [...frame.elements, ...sorted.map(servedVersionElement)],
  };
  return serializeXml({ name: 'ParallelsUpdates', attributes: frame.rootAttributes, children: [product] });
}

function servedVersionElement(version: ServedVersion): XmlElement {
  const nodes: XmlNode[] = [];
  for (const node of version.element.children) {
    if (typeof node === 'string' || node.name !== 'Update') {
      nodes.push(node);
      continue;
    }
    const filePath = child(node, 'FilePath');
    const points = textOf(filePath).trim();
    if (version.fileUrl !== null && points !== version.fileUrl) continue;
    // Every FilePath of a kept Update, not only the first that consumers read: no upstream URL is ever served.
    nodes.push({
      ...node,
      children: node.children.map((c) =>
        typeof c !== 'string' && c.name === 'FilePath' ? leaf('FilePath', version.link, c.attributes) : c,
      ),
    });
  }
  return { ...version.element, children: nodes };
}

export interface GeneratedEntry {
  version: VersionNumbers;
  /** StringRepresentation: the release's code name; empty when not given. */
  codename: string;
  ancestors: string[];
  locale: string;
  /** FileSize of a generated entry: the file's length in bytes. */
  sizeBytes: number;
  /** When the file was added, written as DateTime (UTC). */
  at: number;
}

/** The update uuid Parallels uses: desktop.<major>.<minor>.<subminor>.<build>.<locale>.parallels.mac. */
export const updateUuid = (v: VersionNumbers, locale: string): string =>
  `desktop.${v.major}.${v.minor}.${v.subMinor}.${v.build}.${locale}.parallels.mac`;

/** `YYYY-MM-DD HH:MM:SS` in UTC, as the feed's DateTime. */
export function feedDateTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

/** A complete Version element for a file an admin added by hand (air-gapped mirrors); FilePath is filled when served. */
export function generateVersionElement(entry: GeneratedEntry): XmlElement {
  const v = entry.version;
  const name = `Parallels Desktop ${v.major}.${v.minor}.${v.subMinor} (${v.build})`;
  const update: XmlElement = {
    name: 'Update',
    attributes: [['uuid', updateUuid(v, entry.locale)]],
    children: [
      leaf('UpdateType', '0'),
      leaf('UpdateName', name),
      leaf('UpdateDescription', `${entry.locale}#${name}`),
      leaf('FilePath', ''),
      leaf('FileSize', String(entry.sizeBytes)),
      leaf('Status', '0'),
      leaf('DateTime', feedDateTime(entry.at)),
      leaf('Chargeable', '0'),
      leaf('LocaleName', entry.locale),
      leaf('DistributorName', 'Parallels'),
      leaf('OsType', 'mac'),
      { name: 'Ancestry', attributes: [], children: entry.ancestors.map((a) => leaf('Ancestor', a)) },
    ],
  };
  return {
    name: 'Version',
    attributes: [],
    children: [
      leaf('Major', String(v.major)),
      leaf('Minor', String(v.minor)),
      leaf('SubMinor', String(v.subMinor)),
      leaf('SubSubMinor', String(v.build)),
      leaf('StringRepresentation', entry.codename),
      update,
    ],
  };
}

/** The product frame of generated entries (when no upstream feed was ever read). */
export const DEFAULT_PRODUCT: ProductFrame = {
  rootAttributes: [['schemaVersion', '1.0']],
  productAttributes: [],
  elements: [leaf('ProductName', 'Parallels Desktop'), leaf('UpdateEnabled', '1')],
};
