/** The `settings` table: values an admin changes at run time, by key. */
import type { Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { SettingsTable } from '../schema.js';

export type SettingRow = Selectable<SettingsTable>;

export function getSetting(db: Db, key: string): Promise<SettingRow | undefined> {
  return db.selectFrom('settings').selectAll().where('key', '=', key).executeTakeFirst();
}

export async function saveSetting(db: Db, row: SettingRow): Promise<void> {
  const values = { value: row.value, updated_at: row.updated_at, updated_by: row.updated_by };
  await db
    .insertInto('settings')
    .values({ key: row.key, ...values })
    .onConflict((oc) => oc.column('key').doUpdateSet(values))
    .execute();
}

export async function deleteSetting(db: Db, key: string): Promise<void> {
  await db.deleteFrom('settings').where('key', '=', key).execute();
}
