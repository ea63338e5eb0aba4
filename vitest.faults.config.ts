import { defineConfig } from 'vitest/config';

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
    outputFile: { json: 'test/artifacts/vitest-faults-results.json' },
  },
});
