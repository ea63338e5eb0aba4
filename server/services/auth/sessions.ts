/**
 * Signing in and out: server-side sessions (so any node can check them),
 * with sign-in throttling kept in the database rather than one process's
 * memory (login-throttle.ts) and password checks through the hashing queue.
 */
import { z } from 'zod';
import {
  deleteExpiredSessions,
  deleteSession,
  findSessionWithUser,
  insertSession,
  setSessionExpiry,
} from '../../db/repos/sessions.js';
import { findUserByName } from '../../db/repos/users.js';
import { AppError, toAppError } from '../../errors.js';
import { recordAudit } from '../audit.js';
import type { DbDeps, ServiceDeps } from '../deps.js';
import { clearSignInFailures, releaseSignInAttempt, reserveSignInAttempt, throttleKey } from '../login-throttle.js';
import { assertHashingCapacity, hashPassword, verifyPassword } from '../password-hashing.js';
import { parseInput } from '../validation.js';
import { newSecret, sha256Hex } from './credentials.js';

const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

export const loginSchema = z.object({ username: z.string().max(100), password: z.string().max(1000) }).strict();

export interface SessionGrant {
  token: string;
  csrfToken: string;
  expiresAt: number;
  username: string;
}

/**
 * Checks a password with throttling per client address (an IPv6 one by its
 * /64) and per user name from it. The attempt is reserved before hashing
 * (login-throttle.ts), so parallel guesses cannot outrun the count.
 */
export async function login(deps: DbDeps, input: unknown, clientAddress: string): Promise<SessionGrant> {
  const { db } = deps;
  const now = deps.clock.now();
  const { username, password } = parseInput(loginSchema, input, 'login');
  // Per client address, and per user name from that address: a stranger elsewhere on the
  // network cannot lock the admin out by failing on purpose, yet guessing stays throttled.
  const from = throttleKey(clientAddress);
  const keys = [`ip:${from}`, `user:${username.toLowerCase()}@${from}`];
  assertHashingCapacity();
  await reserveSignInAttempt(deps, keys);
  let user;
  let ok: boolean;
  try {
    user = await findUserByName(db, username);
    // Hash even for unknown users so timing does not reveal which names exist.
    ok = user ? await verifyPassword(user.password_hash, password) : (await hashPassword(password), false);
  } catch (err) {
    // Nothing was checked: this attempt must not count against the allowance.
    if (toAppError(err).code === 'AUTH_BUSY') await releaseSignInAttempt(deps, keys);
    throw err;
  }
  if (!user || !ok) throw new AppError('UNAUTHORIZED', 'wrong user name or password');
  await clearSignInFailures(deps, keys);
  await deleteExpiredSessions(db, now);
  const token = newSecret();
  const csrfToken = newSecret();
  const expiresAt = now + SESSION_TTL_MS;
  await insertSession(db, { tokenHash: sha256Hex(token), userId: user.id, csrfToken, createdAt: now, expiresAt });
  await recordAudit(db, {
    actor: { kind: 'user', name: user.username },
    action: 'session.login',
    target: `user:${user.username}`,
    at: now,
    details: { from: clientAddress },
  });
  return { token, csrfToken, expiresAt, username: user.username };
}

export interface SessionInfo {
  userId: number;
  username: string;
  csrfToken: string;
  expiresAt: number;
  /** True when this lookup extended the session (the cookie must be sent again). */
  renewed: boolean;
}

/** Looks a session cookie up; sliding expiry renews it once half its lifetime has passed. */
export async function authenticateSession(deps: DbDeps, token: string): Promise<SessionInfo | null> {
  const now = deps.clock.now();
  const row = await findSessionWithUser(deps.db, sha256Hex(token));
  if (!row || row.expiresAt <= now) return null;
  let expiresAt = row.expiresAt;
  const renewed = expiresAt - now < SESSION_TTL_MS / 2;
  if (renewed) {
    expiresAt = now + SESSION_TTL_MS;
    await setSessionExpiry(deps.db, row.tokenHash, expiresAt);
  }
  return { userId: row.userId, username: row.username, csrfToken: row.csrfToken, expiresAt, renewed };
}

export async function logout(deps: Pick<ServiceDeps, 'db'>, token: string): Promise<void> {
  await deleteSession(deps.db, sha256Hex(token));
}
