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
import { findBlobRecord } from '../services/blobs.js';
import { AppError } from '../errors.js';
import type { Actor } from '../services/audit.js';
import { ingest, removeUnclaimedIngest, type IngestDeps } from '../services/ingest.js';
import {
  blobFileName,
  bundleInvalid as invalid,
  parseManifest,
  referencedDigests,
  updateDigests,
} from './import-manifest.js';
import { applyManifest, planChanges } from '../services/bundle-plan.js';
import type { UpdatesReport } from '../services/pd-updates/carry.js';
import {
  BLOB_ENTRY,
  blobKindOf,
  MANIFEST_ENTRY,
  MAX_MANIFEST_BYTES,
  type Manifest,
  type ManifestBlob,
} from './manifest.js';

export interface ImportReport {
  dryRun: boolean;
  blobs: { stored: string[]; alreadyPresent: string[]; verified: string[] };
  images: { created: string[]; updated: string[]; unchanged: string[] };
  groups: { created: string[]; updated: string[]; unchanged: string[] };
  /** Parallels Desktop versions (bundle version 2). */
  updates: UpdatesReport;
}

export interface ImportOptions {
  dryRun: boolean;
  actor: Actor;
  /** Called as blob bytes arrive (progress for the CLI). */
  onProgress?: (bytes: number) => void;
  /** A sync from a primary: versions published here that the primary does not publish are unpublished. */
  followPublished?: boolean;
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
    updates: { created: [], updated: [], unchanged: [], published: [], unpublished: [] },
  };
  const carry = { followPublished: options.followPublished === true };
  const created: StoredHere[] = [];
  const extract = tar.extract();
  source.on('error', (err) => extract.destroy(err));
  source.pipe(extract);
  try {
    let manifest: Manifest | null = null;
    const listed = new Map<string, ManifestBlob>();
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
        for (const b of manifest.blobs) listed.set(b.sha256, b);
        await planChanges(db, manifest, carry); // conflicts stop the import before any blob is copied
        continue;
      }
      const match = BLOB_ENTRY.exec(header.name);
      if (header.type !== 'file' || !match)
        throw invalid(`unexpected entry ${JSON.stringify(header.name)} (${header.type ?? 'unknown type'})`);
      const sha256 = match[1] as Sha256;
      const expected = listed.get(sha256);
      if (!manifest.includesBlobs || !expected) throw invalid(`entry ${header.name} is not listed in the manifest`);
      if (seen.has(sha256)) throw invalid(`entry ${header.name} appears twice`);
      seen.add(sha256);
      if (header.size !== expected.size)
        throw invalid(`entry ${header.name} has ${header.size ?? '?'} bytes, the manifest says ${expected.size}`);
      const present = await findBlobRecord(deps, sha256);
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
      const result = await ingest(deps, {
        source: counted,
        fileName: blobFileName(manifest, expected),
        kind: blobKindOf(expected),
        expectedSha256: sha256,
        expectedSize: expected.size,
      });
      if (result.created) created.push({ sha256, ingestedAt: result.blob.ingested_at, version: result.version });
      report.blobs.stored.push(sha256);
    }
    if (manifest === null) throw invalid('the archive is empty or not a tar file');

    const available = new Set([...report.blobs.stored, ...report.blobs.alreadyPresent, ...report.blobs.verified]);
    const needed = [
      ...referencedDigests(manifest).map((digest) => ({ digest, what: 'package' })),
      ...updateDigests(manifest).map((digest) => ({ digest, what: 'update file' })),
    ];
    for (const { digest, what } of needed) {
      if (available.has(digest)) continue;
      const row = await findBlobRecord(deps, digest as Sha256);
      if (!row || row.state !== 'ok')
        throw new AppError(
          'BUNDLE_INCOMPLETE',
          `the bundle needs ${what} ${digest}, which is neither in it nor stored here`,
        );
    }

    const plan = await planChanges(db, manifest, carry);
    report.images = plan.imagesReport;
    report.groups = plan.groupsReport;
    report.updates = plan.updatesReport;
    if (!options.dryRun)
      await db.transaction().execute((trx) => applyManifest(trx, manifest, options.actor, deps.clock.now(), carry));
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

async function readCapped(entry: TarEntry, size: number): Promise<string> {
  if (size > MAX_MANIFEST_BYTES)
    throw invalid(`${MANIFEST_ENTRY} is ${size} bytes; at most ${MAX_MANIFEST_BYTES} are accepted`);
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
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
    throw new AppError(
      'DIGEST_MISMATCH',
      `bundle entry blobs/sha256/${sha256} hashes to ${actual}; the archive was tampered with or damaged`,
      {
        expected: sha256,
        actual,
      },
    );
  }
}

/** Removes the packages this import stored, unless another party has a claim on one by now (services/ingest.ts). */
async function rollbackBlobs(deps: IngestDeps, created: StoredHere[]): Promise<void> {
  for (const blob of created) await removeUnclaimedIngest(deps, blob);
}
