/**
 * The bundle manifest: what a goldmirror tar bundle holds besides its blobs.
 * Versioned; an importer refuses versions it does not know. Images and
 * groups are identified by name across mirrors (ids are local).
 */
import { z } from 'zod';
import { groupFields } from '../services/groups.js';
import { imageFields } from '../services/images.js';
import { sha256Field } from '../services/validation.js';

export const BUNDLE_FORMAT = 'goldmirror-bundle';
export const BUNDLE_VERSION = 1;
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
    version: z.literal(BUNDLE_VERSION),
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
          })
          .strict(),
      )
      .max(100_000),
  })
  .strict();

export type Manifest = z.output<typeof manifestSchema>;

/** Tar entry name of a blob: the only names an importer accepts besides the manifest. */
export function blobEntryName(sha256: string): string {
  return `blobs/sha256/${sha256}`;
}

export const BLOB_ENTRY = /^blobs\/sha256\/([0-9a-f]{64})$/;
