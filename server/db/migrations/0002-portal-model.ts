import { sql, type Kysely } from 'kysely';
import { flag } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// Booleans are 0/1 integers with CHECKs so the same schema works on
// SQLite and PostgreSQL; the rules that matter are enforced here, not only in code.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('images')
    .addColumn('id', 'integer', (col) => col.primaryKey().autoIncrement())
    .addColumn('name', 'varchar(200)', (col) => col.notNull().unique())
    .addColumn('description', 'text', (col) => col.notNull().defaultTo(''))
    .addColumn('arm64_enabled', 'integer', flag('arm64_enabled'))
    .addColumn('arm64_sha256', 'varchar(64)', (col) => col.references('blobs.sha256').onDelete('restrict'))
    .addColumn('x86_64_enabled', 'integer', flag('x86_64_enabled'))
    .addColumn('x86_64_sha256', 'varchar(64)', (col) => col.references('blobs.sha256').onDelete('restrict'))
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('updated_at', 'bigint', (col) => col.notNull())
    // An enabled architecture must point at a stored blob.
    .addCheckConstraint('images_arm64_enabled_has_blob', sql`arm64_enabled = 0 or arm64_sha256 is not null`)
    .addCheckConstraint('images_x86_64_enabled_has_blob', sql`x86_64_enabled = 0 or x86_64_sha256 is not null`)
    .execute();
  await db.schema.createIndex('images_arm64_sha256').on('images').column('arm64_sha256').execute();
  await db.schema.createIndex('images_x86_64_sha256').on('images').column('x86_64_sha256').execute();

  await db.schema
    .createTable('groups')
    .addColumn('id', 'integer', (col) => col.primaryKey().autoIncrement())
    .addColumn('name', 'varchar(200)', (col) => col.notNull().unique())
    .addColumn('license_key', 'varchar(200)', (col) => col.unique())
    .addColumn('is_primary', 'integer', flag('is_primary'))
    // A single column: a group can have at most one golden image by construction.
    .addColumn('image_id', 'integer', (col) => col.references('images.id').onDelete('set null'))
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('updated_at', 'bigint', (col) => col.notNull())
    .execute();
  // At most one group holds the primary flag (a partial unique index: SQLite and PostgreSQL both have them).
  await db.schema
    .createIndex('groups_single_primary')
    .on('groups')
    .column('is_primary')
    .unique()
    .where(sql.ref('is_primary'), '=', 1)
    .execute();
  await db.schema.createIndex('groups_image_id').on('groups').column('image_id').execute();

  await db.schema
    .createTable('users')
    .addColumn('id', 'integer', (col) => col.primaryKey().autoIncrement())
    .addColumn('username', 'varchar(100)', (col) => col.notNull().unique())
    .addColumn('password_hash', 'varchar(255)', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('password_changed_at', 'bigint', (col) => col.notNull())
    .execute();

  await db.schema
    .createTable('sessions')
    .addColumn('token_hash', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('csrf_token', 'varchar(64)', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('expires_at', 'bigint', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('sessions_user_id').on('sessions').column('user_id').execute();

  await db.schema
    .createTable('api_tokens')
    .addColumn('id', 'integer', (col) => col.primaryKey().autoIncrement())
    .addColumn('name', 'varchar(100)', (col) => col.notNull().unique())
    .addColumn('token_hash', 'varchar(64)', (col) => col.notNull().unique())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('last_used_at', 'bigint')
    .execute();

  await db.schema
    .createTable('login_failures')
    .addColumn('key', 'varchar(300)', (col) => col.primaryKey())
    .addColumn('failures', 'integer', (col) => col.notNull())
    .addColumn('first_failure_at', 'bigint', (col) => col.notNull())
    .addColumn('locked_until', 'bigint', (col) => col.notNull())
    .execute();

  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'integer', (col) => col.primaryKey().autoIncrement())
    .addColumn('at', 'bigint', (col) => col.notNull())
    .addColumn('actor', 'varchar(200)', (col) => col.notNull())
    .addColumn('action', 'varchar(100)', (col) => col.notNull())
    .addColumn('target', 'varchar(300)', (col) => col.notNull())
    .addColumn('details', 'text', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['audit_log', 'login_failures', 'api_tokens', 'sessions', 'users', 'groups', 'images']) {
    await db.schema.dropTable(table).execute();
  }
}
