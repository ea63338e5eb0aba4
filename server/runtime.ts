/**
 * The composition root shared by `goldmirror serve` and the CLI commands:
 * config → data dir → blob store → database (migrated) → services and jobs.
 */
import fs from 'node:fs/promises';
import { openBlobStore, type StoreBackend } from '../storage/blob-store.js';
import { DATA_DIR_MODE, ensureDir } from '../storage/file-modes.js';
import type { Config } from '../config/load.js';
import type { CoreDeps } from './app-deps.js';
import { openDatabase, type DatabaseTarget } from './db/open.js';
import { AppError } from './errors.js';
import { IntegrityChecker } from './jobs/integrity-checker.js';
import type { Logger } from './log.js';
import { countWithheldBlobs, storedBlobBytes } from './services/blobs.js';
import { countUpdates } from './db/repos/pd-updates.js';
import { createMetrics } from './metrics.js';
import { createActivityTracker, type ActivityTracker } from './services/activity.js';
import { systemClock, type Clock } from './services/deps.js';
import { Leadership } from './services/leadership.js';
import type { IngestDeps } from './services/ingest.js';
import { TransferJobs } from './jobs/transfers.js';
import { createOutboundFetch } from './net/outbound.js';

export interface Runtime extends CoreDeps {
  activity: ActivityTracker;
  /** Stops checks, flushes activity, closes the database. */
  close(): Promise<void>;
}

/** `clock` replaces the system clock (tests that move time). */
export async function openRuntime(config: Config, log: Logger, options: { clock?: Clock } = {}): Promise<Runtime> {
  const clock = options.clock ?? systemClock;
  try {
    // Created 0750 when missing; a directory the operator made is kept as it is (doctor warns when it is looser).
    await ensureDir(config.dataDir, DATA_DIR_MODE);
    await fs.access(config.dataDir, fs.constants.W_OK);
  } catch (err) {
    let code = (err as NodeJS.ErrnoException).code;
    // Node's recursive mkdir reports ENOENT when the real cause is a read-only
    // filesystem (EROFS) or similar; a plain mkdir of the last segment names it
    // (found by the fault suite, test/faults/readonly-dir.test.ts).
    if (code === 'ENOENT')
      code = await fs.mkdir(config.dataDir).then(
        () => code,
        (e: NodeJS.ErrnoException) => e.code ?? code,
      );
    throw new AppError(
      'STARTUP_FAILED',
      `data directory ${config.dataDir} is not writable (${code ?? String(err)})`,
      {},
      {
        cause: err,
      },
    );
  }
  const store = await openBlobStore(config.dataDir, storeBackend(config));
  const db = await openDatabase(databaseTarget(config, store.layout.dbFile));
  const metrics = createMetrics({
    corruptBlobs: () => countWithheldBlobs({ db }),
    disk: async () => {
      const usage = await store.diskUsage();
      return {
        freeBytes: usage.freeBytes,
        usedBytes: usage.totalBytes - usage.freeBytes,
        blobBytes: await storedBlobBytes({ db }),
      };
    },
    bucket: store.bucketUsage?.bind(store),
    updates: () => countUpdates(db),
  });
  const activity = createActivityTracker({ db, log, clock });
  const checker = new IntegrityChecker({
    db,
    store,
    log,
    clock,
    metrics,
    concurrency: config.verifyConcurrency,
    maxBytesPerSec: config.verifyMaxBytesPerSec,
  });
  const ingestDeps: IngestDeps = {
    db,
    store,
    clock,
    minFreeBytes: config.minFreeBytes,
    metrics,
    activity,
    verifyAfterIngest: config.verifyAfterIngest ? (sha256) => checker.checkFresh(sha256) : undefined,
    outbound: createOutboundFetch({ allow: config.fetchAllow, listenHost: config.host }),
  };
  const transfers = new TransferJobs(ingestDeps, log, { concurrency: config.fetchConcurrency });
  const leadership = new Leadership({ db, clock, log }, { leaseMs: config.leaderLeaseMs });
  return {
    config,
    db,
    store,
    log,
    clock,
    metrics,
    activity,
    checker,
    ingestDeps,
    transfers,
    leadership,
    async close() {
      await leadership.stop();
      await transfers.close();
      await checker.close();
      await activity.close();
      await db.destroy();
    },
  };
}

/** The configured PostgreSQL server, or else the SQLite file in the data directory. */
export function databaseTarget(config: Config, sqliteFile: string): DatabaseTarget {
  return config.databaseUrl ? { url: config.databaseUrl, poolSize: config.databasePoolSize } : { file: sqliteFile };
}

/** The configured bucket (MIRROR_STORAGE=s3), or else the blobs directory in the data directory. */
export function storeBackend(config: Config): StoreBackend {
  if (config.storage !== 's3') return { kind: 'fs' };
  return {
    kind: 's3',
    settings: {
      bucket: config.s3Bucket,
      prefix: config.s3Prefix,
      endpoint: config.s3Endpoint,
      region: config.s3Region,
      forcePathStyle: config.s3ForcePathStyle,
      accessKeyId: config.s3AccessKeyId,
      secretAccessKey: config.s3SecretAccessKey,
    },
  };
}
