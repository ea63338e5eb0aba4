/** Who records the outcome of storing a finished upload, when a claim was taken over meanwhile (real database). */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import { createLogger } from '../../server/log.js';
import { openRuntime, type Runtime } from '../../server/runtime.js';
import {
  claimUploadFinishFor,
  recordUploadFailed,
  recordUploadStored,
  uploadOutcome,
} from '../../server/services/upload-coordination.js';
import { fakeClock } from '../helpers/clock.js';
import { makeTempDir, testConfig } from '../helpers/env.js';

describe('the outcome of storing an upload', () => {
  let dir: string;
  let runtime: Runtime;
  beforeAll(async () => {
    dir = await makeTempDir();
    runtime = await openRuntime(testConfig(dir), createLogger('silent'));
  });
  afterAll(async () => {
    await runtime.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('keeps "stored" once a package is stored, even when the claim was taken over and the new holder then fails', async () => {
    const id = 'a'.repeat(32);
    const first = { db: runtime.db, clock: fakeClock(Date.now()) };
    expect(await claimUploadFinishFor(first, id, 'process-a')).toBe(true);
    // A stops renewing (a long pause); after the claim's time another process takes it over.
    const later = { db: runtime.db, clock: fakeClock(Date.now() + 60_000) };
    expect(await claimUploadFinishFor(later, id, 'process-b')).toBe(true);
    // A had stored the package after all; B, finding the file gone, fails.
    await recordUploadStored(first, id, 'process-a', { sha256: 'b'.repeat(64), size: 5, url: null });
    await recordUploadFailed(later, id, 'process-b', new AppError('NOT_FOUND', 'the upload file is gone'));
    expect(await uploadOutcome(later, id)).toMatchObject({ state: 'stored', sha256: 'b'.repeat(64), size: 5 });
  });

  it('lets only the current holder record a failure', async () => {
    const id = 'c'.repeat(32);
    const deps = { db: runtime.db, clock: fakeClock(Date.now()) };
    expect(await claimUploadFinishFor(deps, id, 'holder')).toBe(true);
    await recordUploadFailed(deps, id, 'someone-else', new AppError('INTERNAL'));
    expect(await uploadOutcome(deps, id)).toEqual({ state: 'finishing' });
    await recordUploadFailed(deps, id, 'holder', new AppError('DIGEST_MISMATCH', 'no match'));
    expect(await uploadOutcome(deps, id)).toMatchObject({ state: 'failed', error: { code: 'DIGEST_MISMATCH' } });
  });
});
