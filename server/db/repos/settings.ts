/** The `settings` table: values an admin changes at run time, by key. */
import type { Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { SettingsTable } from '../schema.js';
import { upsertRow } from './upsert.js';

export type SettingRow = Selectable<SettingsTable>;

export function getSetting(db: Db, key: string): Promise<SettingRow | undefined> {
  return db.selectFrom('settings').selectAll().where('key', '=', key).executeTakeFirst();
}

export async function saveSetting(db: Db, row: SettingRow): Promise<void> {
  const { key, value, updated_at, updated_by } = row;
  await upsertRow(db, 'settings', 'key', { key, value, updated_at, updated_by });
}

export async function deleteSetting(db: Db, key: string): Promise<void> {
  await db.deleteFrom('settings').where('key', '=', key).execute();
}
