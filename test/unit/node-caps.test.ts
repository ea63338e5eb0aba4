import { describe, expect, it } from 'vitest';
import { shareOfNode } from '../../server/http/download-wiring.js';

describe('download caps with workers', () => {
  it('splits the total and bandwidth caps of the node evenly over its workers (rounding up), keeps the per-client cap per worker, and 0 as no cap', () => {
    const node = { maxDownloads: 1024, maxDownloadsPerClient: 16, maxBytesPerSec: 100_000_001 };
    expect(shareOfNode({ ...node, workers: 1 })).toEqual(node);
    expect(shareOfNode({ ...node, workers: 2 })).toEqual({
      maxDownloads: 512,
      maxDownloadsPerClient: 16,
      maxBytesPerSec: 50_000_001,
    });
    expect(shareOfNode({ ...node, workers: 3 })).toEqual({
      maxDownloads: 342,
      maxDownloadsPerClient: 16,
      maxBytesPerSec: 33_333_334,
    });
    expect(shareOfNode({ maxDownloads: 0, maxDownloadsPerClient: 1, maxBytesPerSec: 0, workers: 4 })).toEqual({
      maxDownloads: 0,
      maxDownloadsPerClient: 1,
      maxBytesPerSec: 0,
    });
  });
});
