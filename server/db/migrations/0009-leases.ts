import type { Kysely } from 'kysely';
import { required } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// Leases that several processes on one database compete for (the `jobs` lease
// picks the one process that runs the scheduled jobs). A lease is free once
// expires_at has passed; the holder columns describe the process for people.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('leases')
    .addColumn('name', 'varchar(100)', (col) => col.primaryKey())
    .addColumn('holder', 'varchar(200)', required)
    .addColumn('host', 'varchar(255)', required)
    .addColumn('pid', 'integer', required)
    .addColumn('worker', 'integer')
    .addColumn('listen', 'varchar(300)')
    .addColumn('acquired_at', 'bigint', required)
    .addColumn('renewed_at', 'bigint', required)
    .addColumn('expires_at', 'bigint', required)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('leases').execute();
}
