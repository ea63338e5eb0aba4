/**
 * Import of a tar bundle, read as a stream:
 * 1. the first entry must be manifest.json (size-capped, schema-checked,
 *    version known); its plan is checked against this mirror for conflicts
 *    before a single blob byte is copied;
 * 2. every further entry must be a regular file named blobs/sha256/<digest>
 *    that the manifest lists with the same size; its bytes are re-hashed and
 *    stored only under the digest they hash to (names are never trusted for
 *    placement); blobs already stored are skipped;
 * 3. the manifest is applied in one transaction (images and groups matched
 *    by name), re-checking conflicts inside it;
 * 4. on any failure, blobs this import added are removed again, so the mirror
 *    is left exactly as it was. Importing the same bundle twice changes nothing.
 */
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { newSha256, type Sha256 } from '../../storage/digest.js';
import { withBlobLock } from '../db/blob-lock.js';
import type { Db } from '../db/open.js';
import { AppError } from '../errors.js';
import { findBlob } from '../repos/blobs.js';
import { recordAudit, type Actor } from '../services/audit.js';
import { syncBlobUsage } from '../services/portal-changes.js';
import { ingest, type IngestDeps } from '../services/ingest.js';
import { parseInput } from '../services/validation.js';
import { BLOB_ENTRY, MANIFEST_ENTRY, MAX_MANIFEST_BYTES, BUNDLE_FORMAT, BUNDLE_VERSION, manifestSchema, type Manifest } from './manifest.js';

export interface ImportReport {
  dryRun: boolean;
  blobs: { stored: string[]; alreadyPresent: string[]; verified: string[] };
  images: { created: string[]; updated: string[]; unchanged: string[] };
  groups: { created: string[]; updated: string[]; unchanged: string[] };
}

export interface ImportOptions {
  dryRun: boolean;
  actor: Actor;
  /** Called as blob bytes arrive (progress for the CLI). */
  onProgress?: (bytes: number) => void;
}

type TarEntry = AsyncIterable<Uint8Array> & { header: tar.Header; resume(): void };

/** A package this import stored for the first time: what a rollback may remove if nobody touched it since. */
interface StoredHere {
  sha256: Sha256;
  ingestedAt: number | null;
  version: string;
}

export async function importBundle(deps: IngestDeps, source: Readable, options: ImportOptions): Promise<ImportReport> {
  const { db } = deps;
  const report: ImportReport = {
    dryRun: options.dryRun,
    blobs: { stored: [], alreadyPresent: [], verified: [] },
    images: { created: [], updated: [], unchanged: [] },
    groups: { created: [], updated: [], unchanged: [] },
  };
  const created: StoredHere[] = [];
  const extract = tar.extract();
  source.on('error', (err) => extract.destroy(err));
  source.pipe(extract);
  try {
    let manifest: Manifest | null = null;
    const listed = new Map<string, { size: number; name: string }>();
    const seen = new Set<string>();
    let transferred = 0;
    for await (const raw of extract) {
      const entry = raw as unknown as TarEntry;
      const { header } = entry;
      if (manifest === null) {
        if (header.name !== MANIFEST_ENTRY || header.type !== 'file') {
          throw invalid(`the first entry must be ${MANIFEST_ENTRY}, found ${JSON.stringify(header.name)}`);
        }
        manifest = parseManifest(await readCapped(entry, header.size ?? 0));
        for (const b of manifest.blobs) listed.set(b.sha256, { size: b.size, name: b.name });
        await planChanges(db, manifest); // conflicts stop the import before any blob is copied
        continue;
      }
      const match = BLOB_ENTRY.exec(header.name);
      if (header.type !== 'file' || !match) throw invalid(`unexpected entry ${JSON.stringify(header.name)} (${header.type ?? 'unknown type'})`);
      const sha256 = match[1] as Sha256;
      const expected = listed.get(sha256);
      if (!manifest.includesBlobs || !expected) throw invalid(`entry ${header.name} is not listed in the manifest`);
      if (seen.has(sha256)) throw invalid(`entry ${header.name} appears twice`);
      seen.add(sha256);
      if (header.size !== expected.size) throw invalid(`entry ${header.name} has ${header.size ?? '?'} bytes, the manifest says ${expected.size}`);
      const present = await findBlob(db, sha256);
      if (present && present.state === 'ok') {
        entry.resume();
        report.blobs.alreadyPresent.push(sha256);
        continue;
      }
      const counted = countBytes(entry, (n) => {
        transferred += n;
        options.onProgress?.(transferred);
      });
      if (options.dryRun) {
        await hashAndCheck(counted, sha256);
        report.blobs.verified.push(sha256);
        continue;
      }
      const result = await ingest(deps, { source: counted, fileName: expected.name || `${sha256}.pvmp`, expectedSha256: sha256, expectedSize: expected.size });
      if (result.created) created.push({ sha256, ingestedAt: result.blob.ingested_at, version: result.version });
      report.blobs.stored.push(sha256);
    }
    if (manifest === null) throw invalid('the archive is empty or not a tar file');

    const available = new Set([...report.blobs.stored, ...report.blobs.alreadyPresent, ...report.blobs.verified]);
    for (const digest of referenced(manifest)) {
      if (available.has(digest)) continue;
      const row = await findBlob(db, digest as Sha256);
      if (!row || row.state !== 'ok') throw new AppError('BUNDLE_INCOMPLETE', `the bundle needs package ${digest}, which is neither in it nor stored here`);
    }

    const plan = await planChanges(db, manifest);
    report.images = plan.imagesReport;
    report.groups = plan.groupsReport;
    if (!options.dryRun) await applyManifest(db, manifest, options.actor);
    return report;
  } catch (err) {
    extract.destroy();
    source.destroy();
    await rollbackBlobs(deps, created);
    if (err instanceof AppError) throw err;
    const message = (err as Error).message;
    throw invalid(`the archive is damaged or truncated (${message})`);
  }
}

function invalid(message: string): AppError {
  return new AppError('BUNDLE_INVALID', message);
}

async function readCapped(entry: TarEntry, size: number): Promise<string> {
  if (size > MAX_MANIFEST_BYTES) throw invalid(`${MANIFEST_ENTRY} is ${size} bytes; at most ${MAX_MANIFEST_BYTES} are accepted`);
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

function parseManifest(text: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(`${MANIFEST_ENTRY} is not valid JSON`);
  }
  const head = value as { format?: unknown; version?: unknown } | null;
  if (head?.format !== BUNDLE_FORMAT) throw invalid(`${MANIFEST_ENTRY} is not a goldmirror bundle manifest`);
  if (head.version !== BUNDLE_VERSION) {
    throw new AppError('BUNDLE_VERSION_UNSUPPORTED', `bundle version ${JSON.stringify(head.version)} is not supported; this goldmirror reads version ${BUNDLE_VERSION}`);
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
  unique(manifest.images.map((i) => i.name), 'image');
  unique(manifest.groups.map((g) => g.name), 'group');
  unique(manifest.blobs.map((b) => b.sha256), 'package');
  // The API keeps license keys unique (LICENSE_KEY_TAKEN); within one manifest that is this check (the key itself is not echoed).
  const keyHolder = new Map<string, string>();
  for (const group of manifest.groups) {
    if (group.licenseKey === null) continue;
    const other = keyHolder.get(group.licenseKey);
    if (other !== undefined) throw invalid(`the manifest gives groups ${JSON.stringify(other)} and ${JSON.stringify(group.name)} the same license key`);
    keyHolder.set(group.licenseKey, group.name);
  }
  if (manifest.groups.filter((g) => g.primary).length > 1) throw invalid('the manifest marks more than one group as primary');
  const listed = new Set(manifest.blobs.map((b) => b.sha256));
  for (const image of manifest.images) {
    for (const arch of ['arm64', 'x86_64'] as const) {
      const a = image[arch];
      if (a.enabled && a.sha256 === null) throw invalid(`image ${JSON.stringify(image.name)}: ${arch} is enabled without a package`);
      if (a.sha256 !== null && !listed.has(a.sha256)) throw invalid(`image ${JSON.stringify(image.name)} uses package ${a.sha256}, which the manifest does not list`);
    }
  }
  return manifest;
}

function referenced(manifest: Manifest): string[] {
  return [...new Set(manifest.images.flatMap((i) => [i.arm64.sha256, i.x86_64.sha256]).filter((d): d is string => d !== null))];
}

async function* countBytes(source: AsyncIterable<Uint8Array>, add: (n: number) => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    add(chunk.byteLength);
    yield chunk;
  }
}

async function hashAndCheck(source: AsyncIterable<Uint8Array>, sha256: Sha256): Promise<void> {
  const hash = newSha256();
  for await (const chunk of source) hash.update(chunk);
  const actual = hash.digest('hex');
  if (actual !== sha256) {
    throw new AppError('DIGEST_MISMATCH', `bundle entry blobs/sha256/${sha256} hashes to ${actual}; the archive was tampered with or damaged`, {
      expected: sha256,
      actual,
    });
  }
}

interface Plan {
  imagesReport: ImportReport['images'];
  groupsReport: ImportReport['groups'];
}

/** Compares the manifest with this mirror; throws BUNDLE_CONFLICT listing every conflict. */
async function planChanges(db: Db, manifest: Manifest): Promise<Plan> {
  const images = await db.selectFrom('images').selectAll().execute();
  const groups = await db.selectFrom('groups').selectAll().execute();
  const imageByName = new Map(images.map((i) => [i.name, i]));
  const imageNameById = new Map(images.map((i) => [i.id, i.name]));
  const groupByName = new Map(groups.map((g) => [g.name, g]));
  const known = new Set([...manifest.images.map((i) => i.name), ...images.map((i) => i.name)]);
  const conflicts: string[] = [];
  const imagesReport: Plan['imagesReport'] = { created: [], updated: [], unchanged: [] };
  const groupsReport: Plan['groupsReport'] = { created: [], updated: [], unchanged: [] };

  for (const image of manifest.images) {
    const local = imageByName.get(image.name);
    if (!local) imagesReport.created.push(image.name);
    else if (
      local.description !== image.description ||
      (local.arm64_enabled === 1) !== image.arm64.enabled ||
      local.arm64_sha256 !== image.arm64.sha256 ||
      (local.x86_64_enabled === 1) !== image.x86_64.enabled ||
      local.x86_64_sha256 !== image.x86_64.sha256
    ) {
      imagesReport.updated.push(image.name);
    } else imagesReport.unchanged.push(image.name);
  }
  for (const group of manifest.groups) {
    if (group.image !== null && !known.has(group.image)) conflicts.push(`group ${JSON.stringify(group.name)} uses image ${JSON.stringify(group.image)}, which is neither in the bundle nor here`);
    const local = groupByName.get(group.name);
    // Group names are unique regardless of (ASCII) case (migration 0007).
    const caseTwin = local ? undefined : groups.find((g) => g.name.replace(/[A-Z]/g, (ch) => ch.toLowerCase()) === group.name.replace(/[A-Z]/g, (ch) => ch.toLowerCase()));
    if (caseTwin) conflicts.push(`group ${JSON.stringify(group.name)} differs only in case from group ${JSON.stringify(caseTwin.name)} here, and group names are unique regardless of case; rename one of them`);
    const localImage = local?.image_id != null ? imageNameById.get(local.image_id) : null;
    if (local && localImage && group.image !== null && localImage !== group.image) {
      conflicts.push(`group ${JSON.stringify(group.name)} already has golden image ${JSON.stringify(localImage)} here; the bundle would give it a second one, ${JSON.stringify(group.image)}`);
    }
    if (group.primary) {
      const holder = groups.find((g) => g.is_primary === 1 && g.name !== group.name);
      if (holder) conflicts.push(`the primary license key belongs to group ${JSON.stringify(holder.name)} here; the bundle gives it to ${JSON.stringify(group.name)}`);
    }
    if (group.licenseKey !== null) {
      const holder = groups.find((g) => g.license_key === group.licenseKey && g.name !== group.name);
      if (holder) conflicts.push(`group ${JSON.stringify(holder.name)} already has the license key the bundle gives to ${JSON.stringify(group.name)}`);
    }
    const wantImage = group.image ?? localImage ?? null;
    if (!local) groupsReport.created.push(group.name);
    else if (local.license_key !== group.licenseKey || (local.is_primary === 1) !== group.primary || (localImage ?? null) !== wantImage) groupsReport.updated.push(group.name);
    else groupsReport.unchanged.push(group.name);
  }
  if (conflicts.length > 0) {
    throw new AppError('BUNDLE_CONFLICT', `the bundle conflicts with this mirror; nothing was changed: ${conflicts.join('; ')}`, { conflicts });
  }
  return { imagesReport, groupsReport };
}

async function applyManifest(db: Db, manifest: Manifest, actor: Actor): Promise<void> {
  const now = Date.now();
  await db.transaction().execute(async (trx) => {
    const plan = await planChanges(trx, manifest);
    const changedImages = new Set([...plan.imagesReport.created, ...plan.imagesReport.updated]);
    for (const image of manifest.images) {
      if (!changedImages.has(image.name)) continue;
      const values = {
        description: image.description,
        arm64_enabled: image.arm64.enabled ? (1 as const) : (0 as const),
        arm64_sha256: image.arm64.sha256,
        x86_64_enabled: image.x86_64.enabled ? (1 as const) : (0 as const),
        x86_64_sha256: image.x86_64.sha256,
        updated_at: now,
      };
      const existing = await trx.selectFrom('images').select('id').where('name', '=', image.name).executeTakeFirst();
      if (existing) await trx.updateTable('images').set(values).where('id', '=', existing.id).execute();
      else await trx.insertInto('images').values({ ...values, name: image.name, created_at: now }).execute();
    }
    const ids = new Map((await trx.selectFrom('images').select(['id', 'name']).execute()).map((i) => [i.name, i.id]));
    const changedGroups = new Set([...plan.groupsReport.created, ...plan.groupsReport.updated]);
    for (const group of manifest.groups) {
      if (!changedGroups.has(group.name)) continue;
      const existing = await trx.selectFrom('groups').select(['id', 'image_id']).where('name', '=', group.name).executeTakeFirst();
      const imageId = group.image !== null ? (ids.get(group.image) ?? null) : (existing?.image_id ?? null);
      const values = { license_key: group.licenseKey, is_primary: group.primary ? (1 as const) : (0 as const), image_id: imageId, updated_at: now };
      if (existing) await trx.updateTable('groups').set(values).where('id', '=', existing.id).execute();
      else await trx.insertInto('groups').values({ ...values, name: group.name, created_at: now }).execute();
    }
    // Retirements start now, in the same transaction, so GC never meets a replaced package it knows nothing about.
    if (changedImages.size > 0) await syncBlobUsage(trx, now);
    if (changedImages.size + changedGroups.size > 0) {
      await recordAudit(trx, {
        actor,
        action: 'bundle.import',
        target: 'bundle',
        at: now,
        details: { images: plan.imagesReport, groups: plan.groupsReport },
      });
    }
  });
}

/**
 * Removes the packages this import stored, unless another party has a claim
 * on one by now: an image uses it, or another ingest of the same content
 * stored it again meanwhile (a newer ingest time or another file). Each
 * decision and its unlink are one withBlobLock step, so such an ingest
 * commits entirely before (and is seen) or after (and stores it afresh).
 */
async function rollbackBlobs(deps: IngestDeps, created: StoredHere[]): Promise<void> {
  for (const blob of created) {
    const detached = await withBlobLock(deps.db, async (trx) => {
      const row = await trx.selectFrom('blobs').select('ingested_at').where('sha256', '=', blob.sha256).executeTakeFirst();
      if (!row || row.ingested_at !== blob.ingestedAt || (await deps.store.version(blob.sha256)) !== blob.version) return null;
      const used = await trx
        .selectFrom('images')
        .select('id')
        .where((eb) => eb.or([eb('arm64_sha256', '=', blob.sha256), eb('x86_64_sha256', '=', blob.sha256)]))
        .executeTakeFirst();
      if (used) return null;
      await trx.deleteFrom('blobs').where('sha256', '=', blob.sha256).execute();
      return deps.store.detach(blob.sha256);
    });
    await detached?.discard();
  }
}
