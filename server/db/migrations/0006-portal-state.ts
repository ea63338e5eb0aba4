import { sql, type Kysely } from 'kysely';
import { required } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// What the Management Portal is known to hold, so a change to an image's
// portal values can be shown until the admin has copied it over, and a
// package the portal may still send Macs to is not collected.
export async function up(db: Kysely<any>): Promise<void> {
  // Settings an admin changes at run time (the public address Macs use), one row per key.
  await db.schema
    .createTable('settings')
    .addColumn('key', 'varchar(100)', (col) => col.primaryKey())
    .addColumn('value', 'text', required)
    .addColumn('updated_at', 'bigint', required)
    .addColumn('updated_by', 'varchar(200)', required)
    .execute();

  // Per image, the values last confirmed as entered in the portal. public_url is
  // the address the URLs were built from (null: not known yet).
  await db.schema
    .createTable('portal_confirmed')
    .addColumn('image_id', 'integer', (col) => col.primaryKey().references('images.id').onDelete('cascade'))
    .addColumn('public_url', 'text')
    .addColumn('arm64_enabled', 'integer', (col) => col.notNull().check(sql`arm64_enabled in (0, 1)`))
    .addColumn('arm64_sha256', 'varchar(64)')
    .addColumn('x86_64_enabled', 'integer', (col) => col.notNull().check(sql`x86_64_enabled in (0, 1)`))
    .addColumn('x86_64_sha256', 'varchar(64)')
    .addColumn('confirmed_at', 'bigint', required)
    .addColumn('confirmed_by', 'varchar(200)', required)
    // When the current values first differed from the confirmed ones (null: they do not).
    .addColumn('changed_at', 'bigint')
    .execute();

  // Packages that an image has used. retired_at: when the last image stopped using it;
  // released_at: when, after that, the portal's confirmed values stopped pointing at it.
  await db.schema
    .createTable('blob_usage')
    .addColumn('sha256', 'varchar(64)', (col) => col.primaryKey().references('blobs.sha256').onDelete('cascade'))
    .addColumn('retired_at', 'bigint')
    .addColumn('released_at', 'bigint')
    .execute();

  // The last link check per image (shown on its page after the POST redirects).
  await db.schema
    .createTable('link_checks')
    .addColumn('image_id', 'integer', (col) => col.primaryKey().references('images.id').onDelete('cascade'))
    .addColumn('checked_at', 'bigint', required)
    .addColumn('report', 'text', required)
    .execute();

  // Existing images: their current values are what the portal holds (the address is adopted on first use).
  const now = Date.now();
  await sql`insert into portal_confirmed (image_id, public_url, arm64_enabled, arm64_sha256, x86_64_enabled, x86_64_sha256, confirmed_at, confirmed_by)
            select id, null, arm64_enabled, arm64_sha256, x86_64_enabled, x86_64_sha256, ${now}, 'system:upgrade' from images`.execute(
    db,
  );
  await sql`insert into blob_usage (sha256)
            select arm64_sha256 from images where arm64_sha256 is not null
            union select x86_64_sha256 from images where x86_64_sha256 is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['link_checks', 'blob_usage', 'portal_confirmed', 'settings']) {
    await db.schema.dropTable(table).execute();
  }
}
