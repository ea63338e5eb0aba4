/**
 * Settings an admin changes at run time, stored in the database so the
 * server, the CLI and every node see the same value. Today one: the public
 * address Macs use to reach the mirror, which every Download URL starts
 * with. MIRROR_PUBLIC_URL (or publicUrl in the config file) wins when given.
 */
import { z } from 'zod';
import { deleteSetting, getSetting, saveSetting } from '../db/repos/settings.js';
import { AppError } from '../errors.js';
import { addressWarnings, parsePublicUrl } from '../links.js';
import { actorLabel, recordAudit, type Actor } from './audit.js';
import { adoptPublicAddress, refreshChangedAt } from './portal-changes.js';
import type { ServiceDeps } from './deps.js';
import { parseInput } from './validation.js';

const PUBLIC_URL_KEY = 'public_url';

/** The sentence shown (page, API, CLI) while no public address is set. */
export const PUBLIC_ADDRESS_MISSING =
  'the public address Macs use to reach this mirror is not set: set it under Settings (/admin/settings), with `goldmirror settings public-url URL`, or with MIRROR_PUBLIC_URL';

export interface PublicAddress {
  /** What Download URLs start with; null while none is set (then no link is offered). */
  url: string | null;
  /** config: MIRROR_PUBLIC_URL or the config file (wins); database: set on the settings page, API or CLI; unset: neither. */
  source: 'config' | 'database' | 'unset';
  /** The value stored in the database, even while the configuration overrides it. */
  stored: string | null;
  updatedAt: string | null;
  updatedBy: string | null;
  /** Why Macs cannot use links with this address (loopback, link-local, localhost); shown in red. */
  warnings: string[];
}

/** Only the configured public address is read from the config (so callers may pass a part of it). */
export type SettingsDeps = Pick<ServiceDeps, 'db'> & { config: { readonly publicUrl: string } };

/** The public address in force: the configuration's, else the stored one, else none. */
export async function resolvePublicAddress(deps: SettingsDeps): Promise<PublicAddress> {
  const row = await getSetting(deps.db, PUBLIC_URL_KEY);
  const stored = row?.value ?? null;
  const url = deps.config.publicUrl || stored;
  return {
    url,
    source: deps.config.publicUrl ? 'config' : stored ? 'database' : 'unset',
    stored,
    updatedAt: row ? new Date(row.updated_at).toISOString() : null,
    updatedBy: row?.updated_by ?? null,
    warnings: url ? addressWarnings(url) : [],
  };
}

export const settingsPatch = z
  .object({ publicUrl: z.string({ error: 'must be a URL string, or null to clear it' }).nullable() })
  .strict();

/**
 * Sets (or, with null, clears) the stored public address. Refused with
 * SETTING_LOCKED while the configuration sets it, since that value wins.
 * Every image whose links change shows a pending portal update.
 */
export async function updateSettings(
  deps: SettingsDeps & Pick<ServiceDeps, 'clock'>,
  actor: Actor,
  input: unknown,
): Promise<PublicAddress> {
  const data = parseInput(settingsPatch, input, 'settings');
  if (deps.config.publicUrl) {
    throw new AppError(
      'SETTING_LOCKED',
      `the public address is set by MIRROR_PUBLIC_URL (or publicUrl in the config file) to ${deps.config.publicUrl}, which wins; change it there`,
    );
  }
  const next = data.publicUrl === null ? null : parsePublicUrl(data.publicUrl);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    const previous = (await getSetting(trx, PUBLIC_URL_KEY))?.value ?? null;
    if (previous === next) return;
    await adoptPublicAddress(trx, previous);
    if (next === null) {
      await deleteSetting(trx, PUBLIC_URL_KEY);
    } else {
      await saveSetting(trx, { key: PUBLIC_URL_KEY, value: next, updated_at: now, updated_by: actorLabel(actor) });
    }
    await refreshChangedAt(trx, next, now);
    await recordAudit(trx, {
      actor,
      action: 'settings.update',
      target: 'settings:publicUrl',
      at: now,
      details: { publicUrl: { from: previous, to: next } },
    });
  });
  return resolvePublicAddress(deps);
}
