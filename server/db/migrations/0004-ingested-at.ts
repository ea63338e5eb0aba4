import type { Kysely } from 'kysely';

// Frozen in time: never edit a released migration, add a new one.
// When a blob was last ingested (a re-upload of the same content keeps
// created_at, which Last-Modified shows): GC's grace period counts from here.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('blobs').addColumn('ingested_at', 'bigint').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('blobs').dropColumn('ingested_at').execute();
}
