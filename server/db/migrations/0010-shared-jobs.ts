import type { Kysely } from 'kysely';
import { flag, oneOf, required, timestamps } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// What several processes (workers, nodes) serving one database must share about
// uploads and pulls in progress, so that any of them can continue, show or cancel them.
export async function up(db: Kysely<any>): Promise<void> {
  // Who may touch a tus upload right now: one row per locked upload, renewed by its holder
  // until released; a row past expires_at belongs to a holder that died and may be taken over.
  await db.schema
    .createTable('upload_locks')
    .addColumn('upload_id', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('holder', 'varchar(200)', required)
    .addColumn('expires_at', 'bigint', required)
    // Another request waits for this lock: the holder ends its request soon (tus' lock handover).
    .addColumn('release_requested', 'integer', flag('release_requested'))
    .execute();

  // Storing a complete upload: claimed by one process while it runs ('finishing', renewed), then
  // its outcome for an hour, so a client asking any process later learns the digest or the error.
  await db.schema
    .createTable('upload_finishes')
    .addColumn('upload_id', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('state', 'varchar(16)', oneOf('state', ['finishing', 'stored', 'failed'], 'finishing'))
    .addColumn('holder', 'varchar(200)', required)
    .addColumn('expires_at', 'bigint', required)
    .addColumn('sha256', 'varchar(64)')
    .addColumn('size', 'bigint')
    .addColumn('url', 'text')
    .addColumn('error_code', 'varchar(64)')
    .addColumn('error_message', 'text')
    .addColumn('updated_at', 'bigint', required)
    .execute();

  // Pulls from a URL: the process running one (holder) writes its progress and heartbeat here
  // and obeys cancel_requested; every process lists them. A stale heartbeat means the holder died.
  await db.schema
    .createTable('transfer_jobs')
    .addColumn('id', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('kind', 'varchar(16)', oneOf('kind', ['fetch'], 'fetch'))
    .addColumn('source_url', 'text', required)
    .addColumn('state', 'varchar(16)', oneOf('state', ['queued', 'running', 'done', 'failed', 'cancelled'], 'queued'))
    .addColumn('bytes_done', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('total_bytes', 'bigint')
    .addColumn('sha256', 'varchar(64)')
    .addColumn('error_code', 'varchar(64)')
    .addColumn('error_message', 'text')
    .addColumn('cancel_requested', 'integer', flag('cancel_requested'))
    .addColumn('holder', 'varchar(200)', required)
    .$call(timestamps)
    .addColumn('finished_at', 'bigint')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('transfer_jobs').execute();
  await db.schema.dropTable('upload_finishes').execute();
  await db.schema.dropTable('upload_locks').execute();
}
