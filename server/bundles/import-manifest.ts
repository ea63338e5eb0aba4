/** Reading a bundle's manifest.json: JSON, the format and version, the schema, and the rules across its entries. */
import { AppError } from '../errors.js';
import { rereadCarriedUpdate } from '../services/pd-updates/carry.js';
import { updateFileName } from '../services/pd-updates/versions.js';
import { parseInput } from '../services/validation.js';
import {
  blobKindOf,
  BUNDLE_FORMAT,
  MANIFEST_ENTRY,
  manifestSchema,
  READABLE_BUNDLE_VERSIONS,
  type Manifest,
  type ManifestBlob,
} from './manifest.js';

export function bundleInvalid(message: string): AppError {
  return new AppError('BUNDLE_INVALID', message);
}

const invalid = bundleInvalid;

/** The manifest in `text`, or BUNDLE_INVALID / BUNDLE_VERSION_UNSUPPORTED naming the first problem. */
export function parseManifest(text: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(`${MANIFEST_ENTRY} is not valid JSON`);
  }
  return parseManifestValue(value);
}

/** A parsed manifest.json (a bundle's, or the one a sync reads from its upstream), checked the same way. */
export function parseManifestValue(value: unknown): Manifest {
  const head = value as { format?: unknown; version?: unknown } | null;
  if (head?.format !== BUNDLE_FORMAT) throw invalid(`${MANIFEST_ENTRY} is not a goldmirror bundle manifest`);
  if (typeof head.version !== 'number' || !READABLE_BUNDLE_VERSIONS.includes(head.version)) {
    throw new AppError(
      'BUNDLE_VERSION_UNSUPPORTED',
      `bundle version ${JSON.stringify(head.version)} is not supported; this goldmirror reads versions ${READABLE_BUNDLE_VERSIONS.join(' and ')}`,
    );
  }
  let manifest: Manifest;
  try {
    manifest = parseInput(manifestSchema, value, 'bundle manifest');
  } catch (err) {
    // The API's message and field list (VALIDATION_FAILED), under the bundle's code.
    throw new AppError('BUNDLE_INVALID', (err as Error).message, err instanceof AppError ? { ...err.details } : {});
  }
  const unique = (names: string[], what: string) => {
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw invalid(`the manifest lists ${what} ${JSON.stringify(dup)} twice`);
  };
  unique(
    manifest.images.map((i) => i.name),
    'image',
  );
  unique(
    manifest.groups.map((g) => g.name),
    'group',
  );
  unique(
    manifest.blobs.map((b) => b.sha256),
    'package',
  );
  // The API keeps license keys unique (LICENSE_KEY_TAKEN); within one manifest that is this check (the key itself is not echoed).
  const keyHolder = new Map<string, string>();
  for (const group of manifest.groups) {
    if (group.licenseKey === null) continue;
    const other = keyHolder.get(group.licenseKey);
    if (other !== undefined)
      throw invalid(
        `the manifest gives groups ${JSON.stringify(other)} and ${JSON.stringify(group.name)} the same license key`,
      );
    keyHolder.set(group.licenseKey, group.name);
  }
  if (manifest.groups.filter((g) => g.primary).length > 1)
    throw invalid('the manifest marks more than one group as primary');
  const listed = new Map(manifest.blobs.map((b) => [b.sha256, b]));
  for (const image of manifest.images) {
    for (const arch of ['arm64', 'x86_64'] as const) {
      const a = image[arch];
      if (a.enabled && a.sha256 === null)
        throw invalid(`image ${JSON.stringify(image.name)}: ${arch} is enabled without a package`);
      if (a.sha256 !== null && !listed.has(a.sha256))
        throw invalid(`image ${JSON.stringify(image.name)} uses package ${a.sha256}, which the manifest does not list`);
      if (a.sha256 !== null && blobKindOf(listed.get(a.sha256)!) !== 'package')
        throw invalid(
          `image ${JSON.stringify(image.name)} uses ${a.sha256}, which the manifest lists as an update file`,
        );
    }
  }
  return { ...manifest, ...(manifest.updates ? { updates: checkUpdates(manifest.updates, listed) } : {}) };
}

/**
 * Parallels Desktop versions: each once, each entry read back through the feed reader (rereadCarriedUpdate), each
 * file listed as an update blob of the same size, and every update blob the file of some version.
 */
function checkUpdates(
  updates: NonNullable<Manifest['updates']>,
  listed: Map<string, ManifestBlob>,
): NonNullable<Manifest['updates']> {
  const versions = updates.map((u) => u.version);
  const dup = versions.find((v, i) => versions.indexOf(v) !== i);
  if (dup !== undefined) throw invalid(`the manifest lists Parallels Desktop version ${dup} twice`);
  for (const u of updates) {
    const blob = listed.get(u.sha256);
    if (!blob || blobKindOf(blob) !== 'update')
      throw invalid(
        `Parallels Desktop ${u.version} uses file ${u.sha256}, which the manifest does not list as an update file`,
      );
    if (blob.size !== u.size)
      throw invalid(
        `Parallels Desktop ${u.version} says its file has ${u.size} bytes, the blob list says ${blob.size}`,
      );
  }
  const files = new Set(updates.map((u) => u.sha256));
  for (const blob of listed.values())
    if (blobKindOf(blob) === 'update' && !files.has(blob.sha256))
      throw invalid(`update file ${blob.sha256} is the file of no Parallels Desktop version in the manifest`);
  return updates.map(rereadCarriedUpdate);
}

/**
 * The name a blob of the manifest is stored and fetched under: an update file's comes from its version (the
 * manifest's name is not trusted for it), a package's is the manifest's (cleaned when stored).
 */
export function blobFileName(manifest: Manifest, blob: ManifestBlob): string {
  if (blobKindOf(blob) === 'update') {
    const version = manifest.updates?.find((u) => u.sha256 === blob.sha256)?.version;
    if (version) return updateFileName(version);
  }
  return blob.name || `${blob.sha256}.pvmp`;
}

/** Every update file some version of the manifest uses. */
export function updateDigests(manifest: Manifest): string[] {
  return [...new Set((manifest.updates ?? []).map((u) => u.sha256))];
}

/** Every package some image of the manifest points at. */
export function referencedDigests(manifest: Manifest): string[] {
  return [
    ...new Set(
      manifest.images.flatMap((i) => [i.arm64.sha256, i.x86_64.sha256]).filter((d): d is string => d !== null),
    ),
  ];
}
