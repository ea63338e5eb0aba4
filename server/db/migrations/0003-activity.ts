import type { Kysely } from 'kysely';
import { indexOn, required } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  // Transfers in progress, per blob, as heartbeats any node can see: GC never
  // removes a blob that was active within its safety window.
  await db.schema
    .createTable('blob_activity')
    .addColumn('sha256', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('last_active_at', 'bigint', required)
    .execute();
  // Finished downloads per blob (added to by every node), for the API and dashboard.
  await db.schema
    .createTable('download_stats')
    .addColumn('sha256', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('downloads', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('bytes_sent', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('last_download_at', 'bigint')
    .execute();
  await db.schema.alterTable('blobs').addColumn('state_detail', 'text').execute();
  await indexOn(db, 'blobs', 'state');
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('blobs_state').execute();
  await db.schema.alterTable('blobs').dropColumn('state_detail').execute();
  await db.schema.dropTable('download_stats').execute();
  await db.schema.dropTable('blob_activity').execute();
}
