/** What createApp needs, in a module of its own so that web/ and server/app.ts both import it without a cycle. */
import type { BlobStore } from '../storage/blob-store.js';
import type { Config } from '../config/load.js';
import type { Db } from './db/open.js';
import type { UploadServer } from './http/uploads.js';
import type { IntegrityChecker } from './jobs/integrity-checker.js';
import type { TransferJobs } from './jobs/transfers.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ActivityTracker } from './services/activity.js';
import type { Clock } from './services/deps.js';
import type { Leadership } from './services/leadership.js';
import type { IngestDeps } from './services/ingest.js';

/** What every process opens (server/runtime.ts), and the app and the CLI use. */
export interface CoreDeps {
  config: Config;
  db: Db;
  store: BlobStore;
  log: Logger;
  clock: Clock;
  metrics: Metrics;
  checker: IntegrityChecker;
  ingestDeps: IngestDeps;
  transfers: TransferJobs;
  /** This process in the election of the one that runs the scheduled jobs. */
  leadership: Leadership;
}

export interface AppDeps extends CoreDeps {
  /** The tus server; its owner (serve, or a test) also runs its expiry sweep. */
  uploads: UploadServer;
  /** Downloads in progress and the batched download log (absent: the pages show only what is written). */
  activity?: ActivityTracker;
}
