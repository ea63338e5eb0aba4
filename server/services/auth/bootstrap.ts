/** The first admin: created once, at the first start, never changed by later starts. */
import path from 'node:path';
import { writePrivateFile } from '../../../storage/file-modes.js';
import { anyUserExists, insertUser } from '../../db/repos/users.js';
import { AppError } from '../../errors.js';
import { recordAudit, type Actor } from '../audit.js';
import type { DbDeps } from '../deps.js';
import { hashPassword } from '../password-hashing.js';
import { ADMIN_USERNAME, INITIAL_PASSWORD_FILE, MIN_PASSWORD_LENGTH, newPassword } from './credentials.js';

export interface AdminBootstrap {
  /** True when this start created user `admin`. */
  created: boolean;
  /** Set when this start generated the first password (print it once). */
  generatedPassword: string | null;
  passwordFile: string | null;
  /** MIRROR_ADMIN_PASSWORD was set but an admin exists, so it was left alone. */
  passwordIgnored: boolean;
}

/**
 * At server start, only when no admin exists yet: user `admin` is created
 * with MIRROR_ADMIN_PASSWORD, or with a strong generated password written to
 * <data dir>/initial-admin-password (0600). An existing admin is never
 * changed, so a password changed on the page survives restarts with the same
 * environment; `goldmirror admin reset-password` is the way to reset one.
 */
export async function bootstrapAdmin(
  deps: DbDeps,
  dataDir: string,
  password: string | undefined,
): Promise<AdminBootstrap> {
  const fromEnv = password !== undefined && password !== '';
  if (fromEnv && password.length < MIN_PASSWORD_LENGTH) {
    throw new AppError('VALIDATION_FAILED', `MIRROR_ADMIN_PASSWORD must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  const untouched = { created: false, generatedPassword: null, passwordFile: null, passwordIgnored: fromEnv };
  if (await anyUserExists(deps.db)) return untouched;
  const chosen = fromEnv ? password : newPassword();
  const hash = await hashPassword(chosen);
  const now = deps.clock.now();
  const created = await deps.db.transaction().execute(async (trx) => {
    // Checked again under the write lock: two processes starting at once create one admin.
    if (await anyUserExists(trx)) return false;
    await insertUser(trx, { username: ADMIN_USERNAME, passwordHash: hash, at: now });
    const actor: Actor = { kind: 'system', name: fromEnv ? 'MIRROR_ADMIN_PASSWORD' : 'first-start' };
    await recordAudit(trx, { actor, action: 'user.create', target: `user:${ADMIN_USERNAME}`, at: now });
    return true;
  });
  if (!created) return untouched;
  if (fromEnv) return { created: true, generatedPassword: null, passwordFile: null, passwordIgnored: false };
  const file = path.join(dataDir, INITIAL_PASSWORD_FILE);
  await writePrivateFile(file, `${chosen}\n`);
  return { created: true, generatedPassword: chosen, passwordFile: file, passwordIgnored: false };
}
