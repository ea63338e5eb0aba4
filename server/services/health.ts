/** Readiness as the operator and the container HEALTHCHECK see it. */
import fs from 'node:fs/promises';
import { sql } from 'kysely';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Db } from '../db/open.js';

export interface HealthReport {
  ok: boolean;
  checks: { database: string; dataDir: string; disk: string };
  freeBytes: number | null;
}

export async function checkHealth(deps: { db: Db; store: BlobStore; minFreeBytes: number }): Promise<HealthReport> {
  const checks = { database: 'ok', dataDir: 'ok', disk: 'ok' };
  let freeBytes: number | null = null;
  try {
    await sql`select 1`.execute(deps.db);
  } catch (err) {
    checks.database = `unreachable: ${(err as Error).message}`;
  }
  try {
    await fs.access(deps.store.layout.tmpDir, fs.constants.W_OK);
  } catch (err) {
    checks.dataDir = `not writable: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  try {
    freeBytes = (await deps.store.diskUsage()).freeBytes;
    if (freeBytes < deps.minFreeBytes) checks.disk = `low: ${freeBytes} bytes free, minimum ${deps.minFreeBytes}`;
  } catch (err) {
    checks.disk = `unknown: ${(err as Error).message}`;
  }
  return { ok: Object.values(checks).every((v) => v === 'ok'), checks, freeBytes };
}
