import { defineConfig } from 'vitest/config';

/** CI runs the suites several times (PostgreSQL, Swift…): each run's JSON results get its tag in the file name. */
export const resultsTag = process.env.GOLDMIRROR_RESULTS_TAG ? `-${process.env.GOLDMIRROR_RESULTS_TAG}` : '';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    exclude: ['test/faults/**', 'node_modules/**'],
    // Real servers and real files: keep parallelism modest on 2 cores.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ['test/helpers/database-setup.ts'],
    reporters: ['default', 'json'],
    outputFile: { json: `test/artifacts/vitest-results${resultsTag}.json` },
  },
  esbuild: { jsx: 'automatic', jsxImportSource: 'hono/jsx' },
});
