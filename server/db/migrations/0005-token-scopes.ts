import type { Kysely } from 'kysely';
import { oneOf } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// API token scopes: tokens made before scopes existed keep full rights (admin).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('api_tokens')
    .addColumn('scope', 'varchar(10)', oneOf('scope', ['admin', 'read', 'sync'], 'admin'))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('api_tokens').dropColumn('scope').execute();
}
