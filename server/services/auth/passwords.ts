/** Changing and resetting admin passwords; either ends the user's other sessions in the same transaction. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { deleteAllApiTokens } from '../../db/repos/api-tokens.js';
import { deleteSessionsOfUser } from '../../db/repos/sessions.js';
import { findUserByName, passwordHashOf, setPasswordHash } from '../../db/repos/users.js';
import { AppError } from '../../errors.js';
import { recordAudit, type Actor } from '../audit.js';
import type { DbDeps } from '../deps.js';
import { hashPassword, verifyPassword } from '../password-hashing.js';
import { parseInput } from '../validation.js';
import { ADMIN_USERNAME, INITIAL_PASSWORD_FILE, MIN_PASSWORD_LENGTH, newPassword, sha256Hex } from './credentials.js';
import type { SessionInfo } from './sessions.js';

export interface PasswordReset {
  username: string;
  /** The new password when it was generated (print it once); null when the caller chose it. */
  generatedPassword: string | null;
  sessionsEnded: number;
  tokensRevoked: number;
  /** initial-admin-password held an old password and was removed. */
  removedPasswordFile: string | null;
}

/**
 * `goldmirror admin reset-password`: sets a new password (given, or
 * generated), ends every session of that user and, with revokeTokens, every
 * API token; all in one transaction, audited.
 */
export async function resetPassword(
  deps: DbDeps,
  actor: Actor,
  options: { username?: string; password?: string; revokeTokens?: boolean; dataDir?: string },
): Promise<PasswordReset> {
  const username = options.username ?? ADMIN_USERNAME;
  const chosen = options.password ?? newPassword();
  if (chosen.length < MIN_PASSWORD_LENGTH) {
    throw new AppError('VALIDATION_FAILED', `the new password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  const user = await findUserByName(deps.db, username);
  if (!user) throw new AppError('NOT_FOUND', `no user named ${JSON.stringify(username)}`);
  const hash = await hashPassword(chosen);
  const now = deps.clock.now();
  const result = await deps.db.transaction().execute(async (trx) => {
    await setPasswordHash(trx, user.id, hash, now);
    const sessionsEnded = await deleteSessionsOfUser(trx, user.id);
    const tokensRevoked = options.revokeTokens ? await deleteAllApiTokens(trx) : 0;
    const counts = { sessionsEnded, tokensRevoked };
    await recordAudit(trx, {
      actor,
      action: 'user.password_reset',
      target: `user:${user.username}`,
      at: now,
      details: counts,
    });
    return counts;
  });
  let removedPasswordFile: string | null = null;
  if (options.dataDir) {
    const file = path.join(options.dataDir, INITIAL_PASSWORD_FILE);
    const gone = await fs.rm(file).then(
      () => true,
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
    );
    if (gone) removedPasswordFile = file;
  }
  return {
    username: user.username,
    generatedPassword: options.password === undefined ? chosen : null,
    ...result,
    removedPasswordFile,
  };
}

export const passwordChangeSchema = z
  .object({
    currentPassword: z.string().max(1000),
    newPassword: z.string().min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`).max(1000),
  })
  .strict();

/** Changes a password; every other session of that user ends. */
export async function changePassword(
  deps: DbDeps,
  session: SessionInfo,
  sessionToken: string,
  input: unknown,
): Promise<void> {
  const { currentPassword, newPassword: chosen } = parseInput(passwordChangeSchema, input, 'password change');
  const stored = await passwordHashOf(deps.db, session.userId);
  if (stored === null || !(await verifyPassword(stored, currentPassword))) {
    throw new AppError('VALIDATION_FAILED', 'the current password is wrong', {
      fields: [{ field: 'currentPassword', message: 'wrong password' }],
    });
  }
  const hash = await hashPassword(chosen);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await setPasswordHash(trx, session.userId, hash, now);
    await deleteSessionsOfUser(trx, session.userId, sha256Hex(sessionToken));
    await recordAudit(trx, {
      actor: { kind: 'user', name: session.username },
      action: 'user.password_change',
      target: `user:${session.username}`,
      at: now,
    });
  });
}
