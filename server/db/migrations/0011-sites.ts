import { sql, type Kysely } from 'kysely';
import { flag, idKey, indexOn, oneOf, required, timestamps } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// Sites and replicas (several offices behind one portal link): the primary sends each Mac to a healthy
// replica of its own site that holds a verified copy of the package.
export async function up(db: Kysely<any>): Promise<void> {
  // Who this mirror is: probes and sync fetches carry it, so a replica URL that leads back here is recognised.
  // One row, keyed 'self', made by the first process that needs it (so a fresh database holds no rows).
  await db.schema
    .createTable('mirror_identity')
    .addColumn('key', 'varchar(16)', (col) => col.primaryKey().check(sql`"key" = 'self'`))
    .addColumn('id', 'varchar(64)', required)
    .addColumn('created_at', 'bigint', required)
    .execute();

  // A site: its client networks as a JSON array of CIDR blocks; `redirects` 0 keeps its Macs on this mirror.
  await db.schema
    .createTable('sites')
    .addColumn('name', 'varchar(64)', (col) => col.primaryKey())
    .addColumn('networks', 'text', required)
    .addColumn('redirects', 'integer', (col) =>
      col
        .notNull()
        .defaultTo(1)
        .check(sql`redirects in (0, 1)`),
    )
    .$call(timestamps)
    .execute();

  // A replica as it last reported itself (heartbeat), and what the last probe of it found.
  await db.schema
    .createTable('replicas')
    .addColumn('id', 'integer', idKey)
    .addColumn('public_url', 'varchar(500)', (col) => col.notNull().unique())
    // The site name the replica gave (MIRROR_SITE): it may name a site not defined yet.
    .addColumn('site', 'varchar(64)', required)
    .addColumn('version', 'varchar(64)', required)
    .addColumn('mirror_id', 'varchar(64)', required)
    .addColumn('token_name', 'varchar(100)', required)
    .addColumn('enabled', 'integer', (col) =>
      col
        .notNull()
        .defaultTo(1)
        .check(sql`enabled in (0, 1)`),
    )
    .addColumn('weight', 'integer', (col) => col.notNull().defaultTo(100))
    .addColumn('heartbeat_ms', 'bigint', required)
    .addColumn('first_seen_at', 'bigint', required)
    .addColumn('last_heartbeat_at', 'bigint', required)
    .addColumn('last_sync_at', 'bigint')
    .addColumn('check_state', 'varchar(16)', oneOf('check_state', ['pending', 'up', 'down'], 'pending'))
    .addColumn('check_detail', 'text')
    .addColumn('checked_at', 'bigint')
    .addColumn('checks', 'integer', (col) => col.notNull().defaultTo(0))
    .execute();

  // The packages a replica reports as verified by its own checks; `bad` when the primary's probe found
  // bytes that differ from its own (kept until a probe of that package passes or the claim is dropped).
  await db.schema
    .createTable('replica_blobs')
    .addColumn('replica_id', 'integer', (col) => col.notNull().references('replicas.id').onDelete('cascade'))
    .addColumn('sha256', 'varchar(64)', required)
    .addColumn('bad', 'integer', flag('bad'))
    .addPrimaryKeyConstraint('replica_blobs_pk', ['replica_id', 'sha256'])
    .execute();
  await indexOn(db, 'replica_blobs', 'sha256');

  // Where each download was served from: the client's site (null outside every site) and the replica
  // it was sent to (null when this mirror served it).
  await db.schema.alterTable('download_log').addColumn('site', 'varchar(64)').execute();
  await db.schema.alterTable('download_log').addColumn('served_by', 'varchar(500)').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('download_log').dropColumn('served_by').execute();
  await db.schema.alterTable('download_log').dropColumn('site').execute();
  await db.schema.dropTable('replica_blobs').execute();
  await db.schema.dropTable('replicas').execute();
  await db.schema.dropTable('sites').execute();
  await db.schema.dropTable('mirror_identity').execute();
}
