/**
 * A writer process for the S3 kill -9 test (test/faults/s3.test.ts): ingests
 * a slow generated stream into a bucket through the S3 store, printing
 * "progress <bytes>" after each part, until the test kills it.
 * Input: GOLDMIRROR_S3_WRITER = {dataDir, settings, size, seed, expectedSha256?, pauseMs}.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { openBlobStore } from '../../storage/blob-store.js';
import type { Sha256 } from '../../storage/digest.js';
import type { S3Settings } from '../../storage/s3/client.js';
import { testStream } from '../helpers/env.js';

interface WriterInput {
  dataDir: string;
  settings: S3Settings;
  size: number;
  seed: string;
  expectedSha256?: Sha256;
  pauseMs: number;
}

const input = JSON.parse(process.env.GOLDMIRROR_S3_WRITER ?? '') as WriterInput;
const store = await openBlobStore(input.dataDir, { kind: 's3', settings: input.settings });

async function* slowly(): AsyncGenerator<Buffer> {
  for await (const chunk of testStream(input.size, input.seed, 1 << 20)) {
    yield chunk;
    await sleep(input.pauseMs);
  }
}

const result = await store.put(slowly(), {
  expectedSha256: input.expectedSha256,
  onProgress: (bytes) => process.stdout.write(`progress ${bytes}\n`),
});
process.stdout.write(`done ${result.sha256}\n`);
