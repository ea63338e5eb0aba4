/**
 * The answers of the API as zod schemas, for the OpenAPI document. Each one
 * mirrors a view type of the services; the typed handlers (`c.json(view, 200)`)
 * fail to compile when a view and its schema drift apart.
 */
import { z } from '@hono/zod-openapi';
import { ARCHES } from '../../services/images.js';
import { TOKEN_SCOPES } from '../../services/auth.js';

const when = z.string().openapi({ description: 'ISO 8601 time', example: '2026-05-01T12:00:00.000Z' });
const sha256 = z.string().openapi({ description: 'SHA-256 of the package, 64 lowercase hexadecimal digits' });
const arch = z.enum(ARCHES);
const blobArch = z.enum(['arm64', 'x86_64', 'unknown']);
const blobState = z.enum(['ok', 'corrupt', 'missing']);
const bothArches = <S extends z.ZodType>(schema: S) => z.object({ arm64: schema, x86_64: schema });
const nameRef = z.object({ id: z.number().int(), name: z.string() });

export const ErrorBody = z
  .object({
    error: z.looseObject({ code: z.string().openapi({ example: 'VALIDATION_FAILED' }), message: z.string() }),
  })
  .openapi('Error', {
    description: 'Every failure: a stable code, a sentence, and sometimes details (e.g. `fields`).',
  });

const PortalArchValues = z.object({
  enabled: z.boolean(),
  downloadUrl: z.string().nullable(),
  sha256: z.string().nullable(),
});

export const PortalChange = z
  .object({
    since: when.nullable(),
    confirmedAt: when,
    confirmedBy: z.string(),
    fingerprint: z.string().openapi({ description: 'Names the new values; pass it when marking the portal updated' }),
    previous: bothArches(PortalArchValues),
    current: bothArches(PortalArchValues),
    changes: z.array(
      z.object({
        arch,
        label: z.string(),
        field: z.enum(['enabled', 'downloadUrl', 'sha256']),
        from: z.union([z.boolean(), z.string(), z.null()]),
        to: z.union([z.boolean(), z.string(), z.null()]),
      }),
    ),
  })
  .openapi('PortalChange', {
    description: 'Set while the portal holds older values, until an admin marks it updated.',
  });

const ArchView = z.object({
  label: z.string(),
  enabled: z.boolean(),
  sha256: sha256.nullable(),
  size: z.number().int().nullable(),
  state: blobState.nullable(),
  packageArch: blobArch.nullable(),
  url: z.string().nullable().openapi({ description: "The portal's Download URL; null while no public address is set" }),
  downloads: z.number().int(),
  lastDownloadAt: when.nullable(),
});

export const ImageView = z
  .object({
    id: z.number().int(),
    name: z.string(),
    description: z.string(),
    arm64: ArchView,
    x86_64: ArchView,
    groups: z.array(z.object({ id: z.number().int(), name: z.string(), primary: z.boolean() })),
    warnings: z.array(z.string()),
    portalChange: PortalChange.nullable(),
    downloads: z.number().int(),
    lastDownloadAt: when.nullable(),
    createdAt: when,
    updatedAt: when,
  })
  .openapi('Image');

export const PublicAddress = z
  .object({
    url: z.string().nullable(),
    source: z.enum(['config', 'database', 'unset']),
    stored: z.string().nullable(),
    updatedAt: when.nullable(),
    updatedBy: z.string().nullable(),
    warnings: z.array(z.string()),
  })
  .openapi('PublicAddress', { description: 'What Download URLs start with, and where that is set.' });

export const PortalValues = z
  .object({
    name: z.string(),
    description: z.string(),
    architectures: bothArches(
      z.object({
        label: z.string(),
        enabled: z.boolean(),
        downloadUrl: z.string().nullable(),
        sha256: sha256.nullable(),
        size: z.number().int().nullable(),
      }),
    ),
    groups: z.array(z.string()),
    primaryLicenseKey: z.boolean(),
    ready: z.boolean(),
    problems: z.array(z.string()),
    warnings: z.array(z.string()),
    publicAddress: z.object({ url: z.string().nullable(), source: PublicAddress.shape.source }),
    pendingChange: PortalChange.nullable(),
  })
  .openapi('PortalValues', { description: 'The values to enter in the Parallels portal for one image.' });

const ArchCheck = z.object({
  label: z.string(),
  url: z.string().nullable(),
  ok: z.boolean(),
  steps: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
  curl: z.string().nullable(),
});

export const LinkCheckReport = z
  .object({
    ok: z.boolean(),
    checkedAt: when,
    checkedFrom: z.literal('server'),
    note: z.string(),
    publicUrl: z.string().nullable(),
    warnings: z.array(z.string()),
    architectures: z.object({ arm64: ArchCheck.optional(), x86_64: ArchCheck.optional() }),
  })
  .openapi('LinkCheckReport');

export const GroupView = z
  .object({
    id: z.number().int(),
    name: z.string(),
    licenseKey: z.string().nullable(),
    primary: z.boolean(),
    image: nameRef.nullable(),
    imageId: z.number().int().nullable(),
    createdAt: when,
    updatedAt: when,
  })
  .openapi('Group');

export const BlobView = z
  .object({
    sha256,
    size: z.number().int(),
    name: z.string(),
    state: blobState,
    arch: blobArch,
    kind: z.enum(['package', 'update']).openapi({
      description: 'package: a golden-image package (.pvmp link); update: a Parallels Desktop update file (.dmg link)',
    }),
    createdAt: when,
    verifiedAt: when.nullable(),
    url: z.string().nullable(),
    usedBy: z.array(z.object({ imageId: z.number().int(), imageName: z.string(), arch })),
    retired: z
      .object({
        since: when,
        portalUpdatedAt: when.nullable(),
        heldBy: z.array(z.object({ imageId: z.number().int(), imageName: z.string() })),
        lastDownloadAt: when.nullable(),
      })
      .nullable(),
  })
  .openapi('Package');

export const ApiTokenView = z
  .object({ name: z.string(), scope: z.enum(TOKEN_SCOPES), createdAt: when, lastUsedAt: when.nullable() })
  .openapi('ApiToken');

export const TransferJob = z
  .object({
    id: z.string(),
    url: z.string(),
    state: z.enum(['queued', 'running', 'done', 'failed', 'cancelled']),
    bytesDone: z.number().int(),
    totalBytes: z.number().int().nullable(),
    startedAt: when,
    finishedAt: when.nullable(),
    sha256: sha256.nullable(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
  })
  .openapi('FetchJob');

const downloadCommon = {
  startedAt: when,
  client: z.string(),
  userAgent: z.string(),
  sha256,
  image: z.object({ id: z.number().int().nullable(), name: z.string() }).nullable(),
  arch: arch.nullable(),
  archLabel: z.string().nullable(),
  firstByte: z.number().int().nullable(),
  bytesPlanned: z.number().int(),
  bytesSent: z.number().int(),
  size: z.number().int(),
  bytesPerSec: z.number(),
};

export const DownloadLogPage = z
  .object({
    inProgress: z.array(z.object({ ...downloadCommon, elapsedMs: z.number() })),
    downloads: z.array(
      z.object({
        ...downloadCommon,
        id: z.number().int(),
        finishedAt: when,
        durationMs: z.number(),
        status: z.number().int(),
        result: z.enum(['complete', 'resumed', 'aborted']),
        countsAsDownload: z.boolean(),
        site: z.string().nullable().openapi({ description: "The client's site; null outside every site" }),
        servedBy: z
          .string()
          .nullable()
          .openapi({ description: 'The replica the client was sent to (status 302); null: this mirror served it' }),
      }),
    ),
    nextBefore: z.number().int().nullable().openapi({ description: 'Pass as `before` for the next (older) page' }),
    notLogged: z.number().int(),
  })
  .openapi('DownloadLogPage');
