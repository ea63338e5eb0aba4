import { describe, expect, it } from 'vitest';
import { createBlobLookup, type BlobMeta } from '../../server/http/blob-lookup.js';
import { parseSha256 } from '../../storage/digest.js';

const digest = parseSha256('a'.repeat(64), 'sha256');

/** A loader whose answers arrive only when released, counting the queries it was asked. */
function gatedLoader(answer: () => BlobMeta | undefined) {
  let release: () => void = () => {};
  let gate = new Promise<void>((r) => (release = r));
  const loader = {
    calls: 0,
    load: async () => {
      loader.calls++;
      const row = answer(); // read now, delivered late: the database's answer as of the query
      await gate;
      return row;
    },
    open() {
      release();
    },
    close() {
      gate = new Promise<void>((r) => (release = r));
    },
  };
  return loader;
}

describe('the download path’s blob lookup', () => {
  it('answers a burst of misses for one digest with a single query', async () => {
    const loader = gatedLoader(() => ({ size: 5, created_at: 1, state: 'ok', kind: 'package' }));
    const lookup = createBlobLookup(loader.load);
    const burst = Array.from({ length: 200 }, () => lookup.find(digest));
    loader.open();
    const answers = await Promise.all(burst);
    expect(loader.calls).toBe(1);
    expect(new Set(answers.map((a) => a?.size))).toEqual(new Set([5]));
    await lookup.find(digest);
    expect(loader.calls).toBe(1); // cached now
  });

  it('does not cache an answer that was being read while the row was invalidated', async () => {
    let state: BlobMeta['state'] = 'ok';
    const loader = gatedLoader(() => ({ size: 5, created_at: 1, state, kind: 'package' }));
    const lookup = createBlobLookup(loader.load);
    const before = lookup.find(digest);
    lookup.invalidate(digest); // e.g. a check marked it corrupt in this process
    state = 'corrupt';
    loader.open();
    expect((await before)?.state).toBe('ok');
    expect((await lookup.find(digest))?.state).toBe('corrupt');
    expect(loader.calls).toBe(2);
  });
});
