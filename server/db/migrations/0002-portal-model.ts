import { sql, type Kysely } from 'kysely';
import { flag, idKey, indexOn, required, timestamps } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// Booleans are 0/1 integers with CHECKs so the same schema works on
// SQLite and PostgreSQL; the rules that matter are enforced here, not only in code.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('images')
    .addColumn('id', 'integer', idKey)
    .addColumn('name', 'varchar(200)', (col) => col.notNull().unique())
    .addColumn('description', 'text', (col) => col.notNull().defaultTo(''))
    .addColumn('arm64_enabled', 'integer', flag('arm64_enabled'))
    .addColumn('arm64_sha256', 'varchar(64)', (col) => col.references('blobs.sha256').onDelete('restrict'))
    .addColumn('x86_64_enabled', 'integer', flag('x86_64_enabled'))
    .addColumn('x86_64_sha256', 'varchar(64)', (col) => col.references('blobs.sha256').onDelete('restrict'))
    .$call(timestamps)
    // An enabled architecture must point at a stored blob.
    .addCheckConstraint('images_arm64_enabled_has_blob', sql`arm64_enabled = 0 or arm64_sha256 is not null`)
    .addCheckConstraint('images_x86_64_enabled_has_blob', sql`x86_64_enabled = 0 or x86_64_sha256 is not null`)
    .execute();
  await indexOn(db, 'images', 'arm64_sha256');
  await indexOn(db, 'images', 'x86_64_sha256');

  await db.schema
    .createTable('groups')
    .addColumn('id', 'integer', idKey)
    .addColumn('name', 'varchar(200)', (col) => col.notNull().unique())
    .addColumn('license_key', 'varchar(200)', (col) => col.unique())
    .addColumn('is_primary', 'integer', flag('is_primary'))
    // A single column: a group can have at most one golden image by construction.
    .addColumn('image_id', 'integer', (col) => col.references('images.id').onDelete('set null'))
    .$call(timestamps)
    .execute();
  // At most one group holds the primary flag (a partial unique index: SQLite and PostgreSQL both have them).
  await db.schema
    .createIndex('groups_single_primary')
    .on('groups')
    .column('is_primary')
    .unique()
    .where(sql.ref('is_primary'), '=', 1)
    .execute();
  await indexOn(db, 'groups', 'image_id');

  await db.schema
    .createTable('users')
    .addColumn('id', 'integer', idKey)
    .addColumn('username', 'varchar(100)', (col) => col.notNull().unique())
    .addColumn('password_hash', 'varchar(255)', required)
    .addColumn('created_at', 'bigint', required)
    .addColumn('password_changed_at', 'bigint', required)
    .execute();

  await db.schema
    .createTable('sessions')
    .addColumn('token_hash', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('csrf_token', 'varchar(64)', required)
    .addColumn('created_at', 'bigint', required)
    .addColumn('expires_at', 'bigint', required)
    .execute();
  await indexOn(db, 'sessions', 'user_id');

  await db.schema
    .createTable('api_tokens')
    .addColumn('id', 'integer', idKey)
    .addColumn('name', 'varchar(100)', (col) => col.notNull().unique())
    .addColumn('token_hash', 'varchar(64)', (col) => col.notNull().unique())
    .addColumn('created_at', 'bigint', required)
    .addColumn('last_used_at', 'bigint')
    .execute();

  await db.schema
    .createTable('login_failures')
    .addColumn('key', 'varchar(300)', (col) => col.primaryKey())
    .addColumn('failures', 'integer', required)
    .addColumn('first_failure_at', 'bigint', required)
    .addColumn('locked_until', 'bigint', required)
    .execute();

  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'integer', idKey)
    .addColumn('at', 'bigint', required)
    .addColumn('actor', 'varchar(200)', required)
    .addColumn('action', 'varchar(100)', required)
    .addColumn('target', 'varchar(300)', required)
    .addColumn('details', 'text', required)
    .execute();
  await indexOn(db, 'audit_log', 'at');
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['audit_log', 'login_failures', 'api_tokens', 'sessions', 'users', 'groups', 'images']) {
    await db.schema.dropTable(table).execute();
  }
}
