/** Reading a bundle's manifest.json: JSON, the format and version, the schema, and the rules across its entries. */
import { AppError } from '../errors.js';
import { parseInput } from '../services/validation.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, MANIFEST_ENTRY, manifestSchema, type Manifest } from './manifest.js';

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
  const head = value as { format?: unknown; version?: unknown } | null;
  if (head?.format !== BUNDLE_FORMAT) throw invalid(`${MANIFEST_ENTRY} is not a goldmirror bundle manifest`);
  if (head.version !== BUNDLE_VERSION) {
    throw new AppError(
      'BUNDLE_VERSION_UNSUPPORTED',
      `bundle version ${JSON.stringify(head.version)} is not supported; this goldmirror reads version ${BUNDLE_VERSION}`,
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
  const listed = new Set(manifest.blobs.map((b) => b.sha256));
  for (const image of manifest.images) {
    for (const arch of ['arm64', 'x86_64'] as const) {
      const a = image[arch];
      if (a.enabled && a.sha256 === null)
        throw invalid(`image ${JSON.stringify(image.name)}: ${arch} is enabled without a package`);
      if (a.sha256 !== null && !listed.has(a.sha256))
        throw invalid(`image ${JSON.stringify(image.name)} uses package ${a.sha256}, which the manifest does not list`);
    }
  }
  return manifest;
}

/** Every package some image of the manifest points at. */
export function referencedDigests(manifest: Manifest): string[] {
  return [
    ...new Set(
      manifest.images.flatMap((i) => [i.arm64.sha256, i.x86_64.sha256]).filter((d): d is string => d !== null),
    ),
  ];
}
