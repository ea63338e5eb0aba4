import type { Kysely } from 'kysely';
import { required } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('blobs')
    .addColumn('sha256', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('size', 'bigint', required)
    .addColumn('name', 'varchar(255)', required)
    .addColumn('created_at', 'bigint', required)
    .addColumn('state', 'varchar(16)', (col) => col.notNull().defaultTo('ok'))
    .addColumn('verified_at', 'bigint')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('blobs').execute();
}
