/** vitest global setup: names this run, and on PostgreSQL drops the schemas its tests made when it ends. */
import { randomBytes } from 'node:crypto';
import { onPostgres, psql, RUN_ENV, runSchemaPrefix } from './database.js';

export default function setup(): () => void {
  const run = randomBytes(4).toString('hex');
  process.env[RUN_ENV] = run;
  return () => {
    if (!onPostgres) return;
    const schemas = psql(`select nspname from pg_namespace where nspname like '${runSchemaPrefix(run)}%'`)
      .split('\n')
      .filter((name) => name !== '');
    for (const schema of schemas) psql(`drop schema if exists ${schema} cascade`);
  };
}
