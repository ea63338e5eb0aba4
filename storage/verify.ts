/**
 * Re-hashing a stored blob, the integrity check's inner loop:
 * 1. open the blob (missing file → 'missing') and note its version;
 * 2. read it in large chunks, each after the throttle allows it, hashing as it goes;
 * 3. compare the digest with the blob's name;
 * 4. before calling a mismatch 'corrupt', make sure the file was not replaced
 *    meanwhile (a re-ingest that repairs it) → 'replaced' instead.
 * Verdicts carry the version they are about: whoever acts on one checks it
 * again, atomically with the action (server/jobs/integrity-checker.ts).
 */
import type { BlobStore } from './blob-store.js';
import { newSha256, type Sha256 } from './digest.js';
import { isError } from '../server/errors.js';

export type VerifyOutcome =
  | { kind: 'ok'; size: number; version: string }
  | { kind: 'corrupt'; size: number; actual: string; version: string }
  | { kind: 'missing' }
  | { kind: 'replaced' };

export interface VerifyOptions {
  signal?: AbortSignal | undefined;
  /** Waits until `bytes` may be read (a read-rate cap); rejects when aborted. */
  throttle?: ((bytes: number, signal?: AbortSignal) => Promise<void>) | undefined;
  onProgress?: ((bytesDone: number, totalBytes: number) => void) | undefined;
  chunkBytes?: number;
}

export async function verifyBlob(
  store: BlobStore,
  sha256: Sha256,
  options: VerifyOptions = {},
): Promise<VerifyOutcome> {
  const { signal, throttle, onProgress, chunkBytes = 1 << 20 } = options;
  let reader;
  try {
    reader = await store.open(sha256);
  } catch (err) {
    if (isError(err, 'BLOB_UNKNOWN')) return { kind: 'missing' };
    throw err;
  }
  try {
    const hash = newSha256();
    const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, reader.size)));
    let position = 0;
    while (position < reader.size) {
      signal?.throwIfAborted();
      const want = Math.min(buffer.length, reader.size - position);
      if (throttle) await throttle(want, signal);
      const got = await reader.read(buffer, want, position);
      if (got === 0) break;
      hash.update(buffer.subarray(0, got));
      position += got;
      onProgress?.(position, reader.size);
    }
    signal?.throwIfAborted();
    const actual = hash.digest('hex');
    if (actual === sha256 && position === reader.size)
      return { kind: 'ok', size: reader.size, version: reader.version };
    if ((await store.version(sha256)) !== reader.version) return { kind: 'replaced' };
    return { kind: 'corrupt', size: reader.size, actual, version: reader.version };
  } finally {
    await reader.close();
  }
}
