/**
 * The composition root shared by `goldmirror serve` and the CLI commands:
 * config → data dir → blob store → database (migrated) → services' deps.
 */
import fs from 'node:fs/promises';
import { openBlobStore, type BlobStore } from '../storage/blob-store.js';
import type { Config } from '../config/load.js';
import { openDatabase, type Db } from './db/open.js';
import type { IngestDeps } from './services/ingest.js';
import type { Logger } from './log.js';

export interface Runtime {
  config: Config;
  db: Db;
  store: BlobStore;
  log: Logger;
  ingestDeps: IngestDeps;
  close(): Promise<void>;
}

export class StartupError extends Error {
  readonly code = 'STARTUP_FAILED';
}

export async function openRuntime(config: Config, log: Logger): Promise<Runtime> {
  try {
    await fs.mkdir(config.dataDir, { recursive: true });
    await fs.access(config.dataDir, fs.constants.W_OK);
  } catch (err) {
    throw new StartupError(`data directory ${config.dataDir} is not writable (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
      cause: err,
    });
  }
  const store = await openBlobStore(config.dataDir);
  const db = await openDatabase(store.layout.dbFile);
  return {
    config,
    db,
    store,
    log,
    ingestDeps: { db, store, minFreeBytes: config.minFreeBytes },
    close: () => db.destroy(),
  };
}
