import { sql, type Kysely } from 'kysely';
import { foldedIndexExpression } from '../dialect.js';
import { flag, idKey, indexOn, required } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
//
// 1. Group names become unique regardless of case, enforced by an expression
//    index on lower(name). SQLite's lower() folds ASCII letters only; the same
//    rule on PostgreSQL is `lower(name COLLATE "C")` (its plain lower() would
//    also fold "É" to "é" and so be stricter than SQLite).
//    Existing groups that differ only in case cannot keep their names: the
//    oldest keeps its name, each later one is renamed "<name> (2)", "(3)"…,
//    and every rename is written to the audit log (never silent, never a
//    failed start that the CLI could not repair either).
// 2. download_log: one row per download body served, for the Downloads page.
export async function up(db: Kysely<any>): Promise<void> {
  await renameCaseDuplicates(db, Date.now());
  await db.schema
    .createIndex('groups_name_nocase')
    .on('groups')
    .unique()
    .expression(foldedIndexExpression(db, 'name'))
    .execute();

  await db.schema
    .createTable('download_log')
    .addColumn('id', 'integer', idKey)
    .addColumn('started_at', 'bigint', required)
    .addColumn('finished_at', 'bigint', required)
    .addColumn('duration_ms', 'bigint', required)
    // No foreign keys: the log outlives deleted packages and images, so it keeps their names.
    .addColumn('sha256', 'varchar(64)', required)
    .addColumn('image_id', 'integer')
    .addColumn('image_name', 'varchar(200)')
    .addColumn('arch', 'varchar(16)')
    .addColumn('client', 'varchar(64)', required)
    .addColumn('user_agent', 'varchar(300)', required)
    .addColumn('status', 'integer', required)
    .addColumn('first_byte', 'bigint')
    .addColumn('bytes_planned', 'bigint', required)
    .addColumn('bytes_sent', 'bigint', required)
    .addColumn('size', 'bigint', required)
    .addColumn('result', 'varchar(16)', (col) => col.notNull().check(sql`result in ('complete', 'resumed', 'aborted')`))
    // 1 when the body carried the file's last byte in full: it counts as a finished download.
    .addColumn('covers_end', 'integer', flag('covers_end'))
    .execute();
  await indexOn(db, 'download_log', 'finished_at');
  await db.schema.createIndex('download_log_image_id').on('download_log').columns(['image_id', 'id']).execute();
  await db.schema.createIndex('download_log_client').on('download_log').columns(['client', 'id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('download_log').execute();
  await db.schema.dropIndex('groups_name_nocase').execute();
}

/** SQLite's lower(): ASCII letters only, so the duplicates found here are exactly those the index would refuse. */
const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (ch) => ch.toLowerCase());

async function renameCaseDuplicates(db: Kysely<any>, now: number): Promise<void> {
  const rows = (await db.selectFrom('groups').select(['id', 'name']).orderBy('id').execute()) as Array<{
    id: number;
    name: string;
  }>;
  const taken = new Set(rows.map((r) => asciiLower(r.name)));
  const keptBy = new Map<string, string>();
  for (const row of rows) {
    const key = asciiLower(row.name);
    const kept = keptBy.get(key);
    if (kept === undefined) {
      keptBy.set(key, row.name);
      continue;
    }
    const renamed = freeName(row.name, taken);
    taken.add(asciiLower(renamed));
    await db.updateTable('groups').set({ name: renamed, updated_at: now }).where('id', '=', row.id).execute();
    await db
      .insertInto('audit_log')
      .values({
        at: now,
        actor: 'system:migration-0007',
        action: 'group.rename',
        target: `group:${row.id}`,
        details: JSON.stringify({
          from: row.name,
          to: renamed,
          name: renamed,
          reason: `group names are now unique regardless of case, and ${JSON.stringify(kept)} already existed`,
        }),
      })
      .execute();
  }
}

/** "<name> (n)" for the smallest n ≥ 2 not taken, within the 100 characters a group name may have. */
function freeName(name: string, taken: Set<string>): string {
  for (let n = 2; ; n += 1) {
    const suffix = ` (${n})`;
    const candidate = `${Array.from(name)
      .slice(0, 100 - suffix.length)
      .join('')
      .trimEnd()}${suffix}`;
    if (!taken.has(asciiLower(candidate))) return candidate;
  }
}
