import type { Migration, MigrationProvider } from 'kysely';
import * as m0001 from './0001-blobs.js';
import * as m0002 from './0002-portal-model.js';
import * as m0003 from './0003-activity.js';
import * as m0004 from './0004-ingested-at.js';
import * as m0005 from './0005-token-scopes.js';
import * as m0006 from './0006-portal-state.js';
import * as m0007 from './0007-group-names-nocase-download-log.js';
import * as m0008 from './0008-blob-arch.js';
import * as m0009 from './0009-leases.js';
import * as m0010 from './0010-shared-jobs.js';
import * as m0011 from './0011-sites.js';
import * as m0012 from './0012-pd-updates.js';

/** Static list (no directory scanning): the build and the bundle see exactly these. */
const migrations: Record<string, Migration> = {
  '0001-blobs': m0001,
  '0002-portal-model': m0002,
  '0003-activity': m0003,
  '0004-ingested-at': m0004,
  '0005-token-scopes': m0005,
  '0006-portal-state': m0006,
  '0007-group-names-nocase-download-log': m0007,
  '0008-blob-arch': m0008,
  '0009-leases': m0009,
  '0010-shared-jobs': m0010,
  '0011-sites': m0011,
  '0012-pd-updates': m0012,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};
