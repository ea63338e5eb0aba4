/**
 * The transaction lock on PostgreSQL: a second process waits for it, gives up after the lock timeout with
 * DATABASE_BUSY, and its connection is clean afterwards (an aborted transaction must never go back to the pool).
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withBlobLock } from '../../server/db/blob-lock.js';
import { openDatabase, type Db } from '../../server/db/open.js';
import { countTableRows } from '../../server/db/repos/database.js';
import { onPostgres, testDatabaseUrl } from '../helpers/database.js';
import { makeTempDir } from '../helpers/env.js';

describe.skipIf(!onPostgres)('the transaction lock on PostgreSQL', () => {
  let dir: string;
  let holder: Db;
  let waiter: Db;
  beforeAll(async () => {
    dir = await makeTempDir();
    const url = testDatabaseUrl(dir);
    holder = await openDatabase({ url });
    // One connection, so the query after the refusal runs on the very connection that was refused.
    waiter = await openDatabase({ url, poolSize: 1, lockTimeoutMs: 300 });
  });
  afterAll(async () => {
    await holder?.destroy();
    await waiter?.destroy();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('makes another transaction wait, refuses it with DATABASE_BUSY after the timeout, and leaves its connection usable', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const held = withBlobLock(holder, async () => {
      entered();
      await released;
    });
    await inside;
    const started = performance.now();
    await expect(withBlobLock(waiter, async (trx) => countTableRows(trx, 'blobs'))).rejects.toMatchObject({
      code: 'DATABASE_BUSY',
    });
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    // The same (only) connection answers plain queries and transactions again.
    expect(await countTableRows(waiter, 'blobs')).toBe(0);
    release();
    await held;
    expect(await withBlobLock(waiter, async (trx) => countTableRows(trx, 'images'))).toBe(0);
  });
});
