import type { Kysely } from 'kysely';
import { flag, indexOn, oneOf, required, timestamps } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// Parallels Desktop updates: the versions read from the official feed (or added by hand), the file of each in
// the blob store, which ones the mirror publishes, and how each upstream feed fared.
export async function up(db: Kysely<any>): Promise<void> {
  // What a blob is: a golden-image package (served as .pvmp) or a Parallels Desktop update file (.dmg).
  await db.schema
    .alterTable('blobs')
    .addColumn('kind', 'varchar(16)', oneOf('kind', ['package', 'update'], 'package'))
    .execute();

  await db.schema
    .createTable('pd_updates')
    // 26.3.3-57507, and its numbers for ordering.
    .addColumn('version', 'varchar(32)', (col) => col.primaryKey())
    .addColumn('major', 'integer', required)
    .addColumn('minor', 'integer', required)
    .addColumn('sub_minor', 'integer', required)
    .addColumn('build', 'integer', required)
    .addColumn('origin', 'varchar(16)', oneOf('origin', ['upstream', 'manual'], 'upstream'))
    .addColumn('feed_url', 'varchar(2000)')
    // The upstream FilePath and FileSize as the feed gave them (null for an entry added by hand).
    .addColumn('file_url', 'varchar(2000)')
    .addColumn('file_size_text', 'varchar(64)')
    // JSON: the Version element and the product frame around it, copied into the served feed.
    .addColumn('element', 'text', required)
    .addColumn('product', 'text', required)
    .addColumn('sha256', 'varchar(64)')
    .addColumn('size', 'bigint')
    // The upstream validator (strong ETag, else Last-Modified) of the stored bytes: a change means a re-check.
    .addColumn('validator', 'varchar(500)')
    .addColumn(
      'fetch_state',
      'varchar(16)',
      oneOf('fetch_state', ['waiting', 'stored', 'failed', 'collected'], 'waiting'),
    )
    .addColumn('fetch_error', 'text')
    .addColumn('fetched_at', 'bigint')
    .addColumn('published', 'integer', flag('published'))
    .addColumn('published_at', 'bigint')
    .addColumn('unpublished_at', 'bigint')
    // Listed by the last good read of its feed: such a file is never collected (the next sync would fetch it again).
    .addColumn('listed', 'integer', flag('listed'))
    // JSON array of remarks (a FileSize that differs from the length…), and the alert of bytes that changed upstream.
    .addColumn('notes', 'text')
    .addColumn('alert', 'text')
    .addColumn('alert_at', 'bigint')
    // The other bytes found behind the URL (kept for the admin to take or dismiss), when any were stored.
    .addColumn('alert_sha256', 'varchar(64)')
    .$call(timestamps)
    .execute();
  await indexOn(db, 'pd_updates', 'sha256');

  await db.schema
    .createTable('pd_update_feeds')
    .addColumn('url', 'varchar(2000)', (col) => col.primaryKey())
    .addColumn('checked_at', 'bigint')
    .addColumn('ok_at', 'bigint')
    .addColumn('error', 'text')
    // JSON array: versions the last good read left out, and why.
    .addColumn('skipped', 'text')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('pd_update_feeds').execute();
  await db.schema.dropTable('pd_updates').execute();
  await db.schema.alterTable('blobs').dropColumn('kind').execute();
}
