/** vitest global setup: on PostgreSQL, drops the schemas this run's tests made (they are named after temp dirs). */
import { onPostgres, psql, TEST_SCHEMA_PREFIX } from './database.js';

export default function setup(): () => void {
  return () => {
    if (!onPostgres) return;
    const schemas = psql(`select nspname from pg_namespace where nspname like '${TEST_SCHEMA_PREFIX}%'`)
      .split('\n')
      .filter((name) => name !== '');
    for (const schema of schemas) psql(`drop schema if exists ${schema} cascade`);
  };
}
