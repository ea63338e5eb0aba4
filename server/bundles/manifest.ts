/**
 * The bundle manifest: what a goldmirror tar bundle holds besides its blobs.
 * Versioned; an importer refuses versions it does not know. Images and
 * groups are identified by name across mirrors (ids are local).
 * Version 1: images, groups and their packages. Version 2 adds Parallels
 * Desktop versions (`updates`) and a `kind` on each blob (absent: package).
 * An export writes version 1 when it carries no update, so an older
 * goldmirror still reads it (and still syncs from this one).
 */
import { z } from 'zod';
import { groupFields } from '../services/groups.js';
import { imageFields } from '../services/images.js';
import { carriedUpdateSchema } from '../services/pd-updates/carry.js';
import { sha256Field } from '../services/validation.js';

export const BUNDLE_FORMAT = 'goldmirror-bundle';
/** The newest manifest version, written whenever a bundle carries Parallels Desktop versions. */
export const BUNDLE_VERSION = 2;
/** Every manifest version an importer reads. */
export const READABLE_BUNDLE_VERSIONS: readonly number[] = [1, 2];
export const MANIFEST_ENTRY = 'manifest.json';
/** Manifests are small; anything larger is refused before it is parsed. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/**
 * Images and groups are held to exactly the rules the API applies (the same
 * zod fields, imported, never copied): a bundle cannot bring in a name, a
 * description or a license key that the API would refuse.
 */
const archSchema = imageFields.arm64.required();

export const manifestSchema = z
  .object({
    format: z.literal(BUNDLE_FORMAT),
    version: z.union([z.literal(1), z.literal(2)]),
    createdAt: z.string().max(100),
    includesBlobs: z.boolean(),
    images: z
      .array(
        z
          .object({
            name: imageFields.name,
            description: imageFields.description,
            arm64: archSchema,
            x86_64: archSchema,
          })
          .strict(),
      )
      .max(10_000),
    groups: z
      .array(
        z
          .object({
            name: groupFields.name,
            licenseKey: groupFields.licenseKey,
            primary: groupFields.primary,
            // Refers to an image by name, so it must be one.
            image: imageFields.name.nullable(),
          })
          .strict(),
      )
      .max(100_000),
    blobs: z
      .array(
        z
          .object({
            sha256: sha256Field,
            size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
            name: z.string().max(255),
            kind: z.enum(['package', 'update']).optional(),
          })
          .strict(),
      )
      .max(100_000),
    updates: z.array(carriedUpdateSchema).max(10_000).optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    // Version 1 stays exactly the format older goldmirrors write and read.
    if (m.version === 1 && (m.updates !== undefined || m.blobs.some((b) => b.kind !== undefined)))
      ctx.addIssue({ code: 'custom', message: 'a version 1 manifest carries no updates and no blob kinds' });
  });

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestBlob = Manifest['blobs'][number];

/** A blob without a kind is a package (every blob of a version 1 manifest). */
export const blobKindOf = (blob: ManifestBlob): 'package' | 'update' => blob.kind ?? 'package';

/** Tar entry name of a blob: the only names an importer accepts besides the manifest. */
export function blobEntryName(sha256: string): string {
  return `blobs/sha256/${sha256}`;
}

export const BLOB_ENTRY = /^blobs\/sha256\/([0-9a-f]{64})$/;
