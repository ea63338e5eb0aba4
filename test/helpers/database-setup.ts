/**
 * vitest global setup: names this run; on PostgreSQL drops the schemas its tests made when it ends; with
 * MIRROR_TEST_STORAGE=s3 starts the run's S3 server (s3rver, unless MIRROR_TEST_S3_ENDPOINT names one) and bucket.
 */
import { randomBytes } from 'node:crypto';
import { onPostgres, psql, RUN_ENV, runSchemaPrefix } from './database.js';
import { createTestBucket, onS3, shareRunS3, startTestS3 } from './s3.js';

export default async function setup(): Promise<() => Promise<void>> {
  const run = randomBytes(4).toString('hex');
  process.env[RUN_ENV] = run;
  const s3 = onS3 ? await startTestS3() : null;
  if (s3) shareRunS3(s3, await createTestBucket(s3));
  return async () => {
    await s3?.close();
    if (!onPostgres) return;
    const schemas = psql(`select nspname from pg_namespace where nspname like '${runSchemaPrefix(run)}%'`)
      .split('\n')
      .filter((name) => name !== '');
    for (const schema of schemas) psql(`drop schema if exists ${schema} cascade`);
  };
}
