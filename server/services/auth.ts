/**
 * Admin authentication: scrypt password hashes (through one small queue, see
 * password-hashing.ts), server-side sessions (so any node can check them),
 * scoped API tokens stored as hashes, and sign-in throttling kept in the
 * database rather than one process's memory (login-throttle.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writePrivateFile } from '../../storage/file-modes.js';
import type { Db } from '../db/open.js';
import { AppError, toAppError } from '../errors.js';
import { recordAudit, type Actor } from './audit.js';
import { clearSignInFailures, releaseSignInAttempt, reserveSignInAttempt, throttleKey } from './login-throttle.js';
import { assertHashingCapacity, hashPassword, verifyPassword } from './password-hashing.js';
import { parseInput } from './validation.js';

export { hashPassword, verifyPassword } from './password-hashing.js';

const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
export const MIN_PASSWORD_LENGTH = 10;
export const ADMIN_USERNAME = 'admin';
export const INITIAL_PASSWORD_FILE = 'initial-admin-password';

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function newSecret(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** A new random password for people to type: 24 base64url characters (144 bits). */
function newPassword(): string {
  return randomBytes(18).toString('base64url');
}

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
export async function bootstrapAdmin(db: Db, dataDir: string, password: string | undefined, now = Date.now()): Promise<AdminBootstrap> {
  const fromEnv = password !== undefined && password !== '';
  if (fromEnv && password.length < MIN_PASSWORD_LENGTH) {
    throw new AppError('VALIDATION_FAILED', `MIRROR_ADMIN_PASSWORD must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  const anyUser = await db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (anyUser) return { created: false, generatedPassword: null, passwordFile: null, passwordIgnored: fromEnv };
  const chosen = fromEnv ? password : newPassword();
  const hash = await hashPassword(chosen);
  const created = await db.transaction().execute(async (trx) => {
    // Checked again under the write lock: two processes starting at once create one admin.
    if (await trx.selectFrom('users').select('id').limit(1).executeTakeFirst()) return false;
    await trx.insertInto('users').values({ username: ADMIN_USERNAME, password_hash: hash, created_at: now, password_changed_at: now }).execute();
    const actor: Actor = { kind: 'system', name: fromEnv ? 'MIRROR_ADMIN_PASSWORD' : 'first-start' };
    await recordAudit(trx, { actor, action: 'user.create', target: `user:${ADMIN_USERNAME}`, at: now });
    return true;
  });
  if (!created) return { created: false, generatedPassword: null, passwordFile: null, passwordIgnored: fromEnv };
  if (fromEnv) return { created: true, generatedPassword: null, passwordFile: null, passwordIgnored: false };
  const file = path.join(dataDir, INITIAL_PASSWORD_FILE);
  await writePrivateFile(file, `${chosen}\n`);
  return { created: true, generatedPassword: chosen, passwordFile: file, passwordIgnored: false };
}

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
  db: Db,
  actor: Actor,
  options: { username?: string; password?: string; revokeTokens?: boolean; dataDir?: string },
  now = Date.now(),
): Promise<PasswordReset> {
  const username = options.username ?? ADMIN_USERNAME;
  const chosen = options.password ?? newPassword();
  if (chosen.length < MIN_PASSWORD_LENGTH) {
    throw new AppError('VALIDATION_FAILED', `the new password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  const user = await db.selectFrom('users').select(['id', 'username']).where('username', '=', username).executeTakeFirst();
  if (!user) throw new AppError('NOT_FOUND', `no user named ${JSON.stringify(username)}`);
  const hash = await hashPassword(chosen);
  const result = await db.transaction().execute(async (trx) => {
    await trx.updateTable('users').set({ password_hash: hash, password_changed_at: now }).where('id', '=', user.id).execute();
    const sessions = await trx.deleteFrom('sessions').where('user_id', '=', user.id).executeTakeFirst();
    const tokens = options.revokeTokens ? await trx.deleteFrom('api_tokens').executeTakeFirst() : null;
    const counts = { sessionsEnded: Number(sessions.numDeletedRows), tokensRevoked: Number(tokens?.numDeletedRows ?? 0n) };
    await recordAudit(trx, { actor, action: 'user.password_reset', target: `user:${user.username}`, at: now, details: counts });
    return counts;
  });
  let removedPasswordFile: string | null = null;
  if (options.dataDir) {
    const file = path.join(options.dataDir, INITIAL_PASSWORD_FILE);
    const gone = await fs.rm(file).then(() => true, (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)));
    if (gone) removedPasswordFile = file;
  }
  return { username: user.username, generatedPassword: options.password === undefined ? chosen : null, ...result, removedPasswordFile };
}

async function verifyPasswordOf(db: Db, userId: number, password: string): Promise<boolean> {
  const row = await db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirst();
  return row ? verifyPassword(row.password_hash, password) : false;
}

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
export async function login(db: Db, input: unknown, clientAddress: string, now = Date.now()): Promise<SessionGrant> {
  const { username, password } = parseInput(loginSchema, input, 'login');
  // Per client address, and per user name from that address: a stranger elsewhere on the
  // network cannot lock the admin out by failing on purpose, yet guessing stays throttled.
  const from = throttleKey(clientAddress);
  const keys = [`ip:${from}`, `user:${username.toLowerCase()}@${from}`];
  assertHashingCapacity();
  await reserveSignInAttempt(db, keys, now);
  let user;
  let ok: boolean;
  try {
    user = await db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
    // Hash even for unknown users so timing does not reveal which names exist.
    ok = user ? await verifyPassword(user.password_hash, password) : (await hashPassword(password), false);
  } catch (err) {
    // Nothing was checked: this attempt must not count against the allowance.
    if (toAppError(err).code === 'AUTH_BUSY') await releaseSignInAttempt(db, keys);
    throw err;
  }
  if (!user || !ok) throw new AppError('UNAUTHORIZED', 'wrong user name or password');
  await clearSignInFailures(db, keys);
  await db.deleteFrom('sessions').where('expires_at', '<', now).execute();
  const token = newSecret();
  const csrfToken = newSecret();
  const expiresAt = now + SESSION_TTL_MS;
  await db.insertInto('sessions').values({ token_hash: sha256Hex(token), user_id: user.id, csrf_token: csrfToken, created_at: now, expires_at: expiresAt }).execute();
  await recordAudit(db, { actor: { kind: 'user', name: user.username }, action: 'session.login', target: `user:${user.username}`, at: now, details: { from: clientAddress } });
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
export async function authenticateSession(db: Db, token: string, now = Date.now()): Promise<SessionInfo | null> {
  const row = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['sessions.token_hash', 'sessions.csrf_token', 'sessions.expires_at', 'users.id', 'users.username'])
    .where('sessions.token_hash', '=', sha256Hex(token))
    .executeTakeFirst();
  if (!row || row.expires_at <= now) return null;
  let expiresAt = row.expires_at;
  const renewed = expiresAt - now < SESSION_TTL_MS / 2;
  if (renewed) {
    expiresAt = now + SESSION_TTL_MS;
    await db.updateTable('sessions').set({ expires_at: expiresAt }).where('token_hash', '=', row.token_hash).execute();
  }
  return { userId: row.id, username: row.username, csrfToken: row.csrf_token, expiresAt, renewed };
}

export async function logout(db: Db, token: string): Promise<void> {
  await db.deleteFrom('sessions').where('token_hash', '=', sha256Hex(token)).execute();
}

export const passwordChangeSchema = z
  .object({
    currentPassword: z.string().max(1000),
    newPassword: z.string().min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`).max(1000),
  })
  .strict();

/** Changes a password; every other session of that user ends. */
export async function changePassword(db: Db, session: SessionInfo, sessionToken: string, input: unknown, now = Date.now()): Promise<void> {
  const { currentPassword, newPassword } = parseInput(passwordChangeSchema, input, 'password change');
  if (!(await verifyPasswordOf(db, session.userId, currentPassword))) {
    throw new AppError('VALIDATION_FAILED', 'the current password is wrong', { fields: [{ field: 'currentPassword', message: 'wrong password' }] });
  }
  const hash = await hashPassword(newPassword);
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('users').set({ password_hash: hash, password_changed_at: now }).where('id', '=', session.userId).execute();
    await trx.deleteFrom('sessions').where('user_id', '=', session.userId).where('token_hash', '!=', sha256Hex(sessionToken)).execute();
    await recordAudit(trx, { actor: { kind: 'user', name: session.username }, action: 'user.password_change', target: `user:${session.username}`, at: now });
  });
}

const tokenName = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, dot, dash or underscore');

/**
 * What an API token may do: `admin` everything; `read` GET/HEAD of the API
 * and /metrics; `sync` only what `goldmirror sync` reads from its upstream
 * (the export manifest; the packages come through the public /d/ links).
 * Each scope includes the ones after it.
 */
export const TOKEN_SCOPES = ['admin', 'read', 'sync'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

const tokenScope = z.enum(TOKEN_SCOPES, { error: `must be one of ${TOKEN_SCOPES.join(', ')}` });

/** True when a token of scope `held` may do what needs scope `needed`. */
export function scopeAllows(held: TokenScope, needed: TokenScope): boolean {
  return TOKEN_SCOPES.indexOf(held) <= TOKEN_SCOPES.indexOf(needed);
}

export interface ApiTokenView {
  name: string;
  scope: TokenScope;
  createdAt: string;
  lastUsedAt: string | null;
}

/** Creates an API token; the plaintext is returned once and only its hash is stored. */
export async function createApiToken(
  db: Db,
  actor: Actor,
  name: string,
  scope: string = 'admin',
  now = Date.now(),
): Promise<{ name: string; scope: TokenScope; token: string }> {
  const clean = parseInput(tokenName, name, 'token name');
  const cleanScope = parseInput(tokenScope, scope, 'token scope');
  if (await db.selectFrom('api_tokens').select('id').where('name', '=', clean).executeTakeFirst()) {
    throw new AppError('NAME_TAKEN', `a token named ${JSON.stringify(clean)} already exists; revoke it first`);
  }
  const token = newSecret('gm_');
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('api_tokens').values({ name: clean, scope: cleanScope, token_hash: sha256Hex(token), created_at: now, last_used_at: null }).execute();
    await recordAudit(trx, { actor, action: 'token.create', target: `token:${clean}`, at: now, details: { scope: cleanScope } });
  });
  return { name: clean, scope: cleanScope, token };
}

export async function revokeApiToken(db: Db, actor: Actor, name: string, now = Date.now()): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const result = await trx.deleteFrom('api_tokens').where('name', '=', name).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw new AppError('NOT_FOUND', `no token named ${JSON.stringify(name)}`);
    await recordAudit(trx, { actor, action: 'token.revoke', target: `token:${name}`, at: now });
  });
}

export async function listApiTokens(db: Db): Promise<ApiTokenView[]> {
  const rows = await db.selectFrom('api_tokens').select(['name', 'scope', 'created_at', 'last_used_at']).orderBy('name').execute();
  return rows.map((r) => ({
    name: r.name,
    scope: r.scope,
    createdAt: new Date(r.created_at).toISOString(),
    lastUsedAt: r.last_used_at === null ? null : new Date(r.last_used_at).toISOString(),
  }));
}

/** Resolves a bearer token to its name and scope; records use at most once a minute to keep reads cheap. */
export async function authenticateApiToken(db: Db, token: string, now = Date.now()): Promise<{ name: string; scope: TokenScope } | null> {
  if (!token.startsWith('gm_') || token.length > 100) return null;
  const row = await db.selectFrom('api_tokens').select(['id', 'name', 'scope', 'last_used_at']).where('token_hash', '=', sha256Hex(token)).executeTakeFirst();
  if (!row) return null;
  if (row.last_used_at === null || now - row.last_used_at > 60_000) {
    await db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', row.id).execute();
  }
  return { name: row.name, scope: row.scope };
}
