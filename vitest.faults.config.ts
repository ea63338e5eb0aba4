import { defineConfig } from 'vitest/config';

/** CI runs the suites several times (PostgreSQL, Swift…): each run's JSON results get its tag in the file name. */
const tag = process.env.GOLDMIRROR_RESULTS_TAG ? `-${process.env.GOLDMIRROR_RESULTS_TAG}` : '';

// The fault suite: crashes, full disks, hostile input. Slower and rougher
// than the main suite, so it has its own command (npm run test:faults); CI runs both.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 1, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    globalSetup: ['test/helpers/database-setup.ts'],
    reporters: ['default', 'json'],
    outputFile: { json: `test/artifacts/vitest-faults-results${tag}.json` },
  },
});
