/**
 * Admin authentication: scrypt password hashes, server-side sessions (so any
 * node can check them), API tokens stored as hashes, and login throttling
 * kept in the database rather than one process's memory.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { writePrivateFile } from '../../storage/file-modes.js';
import type { Db } from '../db/open.js';
import { AppError } from '../errors.js';
import { recordAudit, type Actor } from './audit.js';
import { parseInput } from './validation.js';

const SCRYPT = { N: 2 ** 15, r: 8, p: 1, keylen: 32, maxmem: 64 * 1024 * 1024 };
const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const FAILURE_WINDOW_MS = 15 * 60 * 1000;
const FREE_FAILURES = 5;
const BASE_LOCK_MS = 30_000;
const MAX_LOCK_MS = 15 * 60 * 1000;
export const MIN_PASSWORD_LENGTH = 10;
export const ADMIN_USERNAME = 'admin';
export const INITIAL_PASSWORD_FILE = 'initial-admin-password';

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))));
}

/** `scrypt$N$r$p$salt$hash` with base64url parts: the parameters travel with the hash. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT.keylen, SCRYPT);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const [scheme, n, r, p, saltText, keyText] = stored.split('$');
  if (scheme !== 'scrypt' || !saltText || !keyText) return false;
  const expected = Buffer.from(keyText, 'base64url');
  const key = await scrypt(password, Buffer.from(saltText, 'base64url'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: SCRYPT.maxmem,
  });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function newSecret(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url');
}

export interface AdminBootstrap {
  /** Set when this start generated the first password (print it once). */
  generatedPassword: string | null;
  passwordFile: string | null;
  reset: boolean;
}

/**
 * At server start: MIRROR_ADMIN_PASSWORD creates or resets user `admin`;
 * with no users and no such variable a strong password is generated and
 * written to <data dir>/initial-admin-password (0600).
 */
export async function bootstrapAdmin(db: Db, dataDir: string, password: string | undefined, now = Date.now()): Promise<AdminBootstrap> {
  const existing = await db.selectFrom('users').select(['id']).where('username', '=', ADMIN_USERNAME).executeTakeFirst();
  if (password !== undefined && password !== '') {
    if (password.length < MIN_PASSWORD_LENGTH) {
      throw new AppError('VALIDATION_FAILED', `MIRROR_ADMIN_PASSWORD must be at least ${MIN_PASSWORD_LENGTH} characters`);
    }
    // Restarts with the same variable change nothing (and keep everyone signed in).
    if (existing && (await verifyPasswordOf(db, existing.id, password))) return { generatedPassword: null, passwordFile: null, reset: false };
    const hash = await hashPassword(password);
    await db.transaction().execute(async (trx) => {
      if (existing) {
        await trx.updateTable('users').set({ password_hash: hash, password_changed_at: now }).where('id', '=', existing.id).execute();
        await trx.deleteFrom('sessions').where('user_id', '=', existing.id).execute();
      } else {
        await trx.insertInto('users').values({ username: ADMIN_USERNAME, password_hash: hash, created_at: now, password_changed_at: now }).execute();
      }
      await recordAudit(trx, { actor: { kind: 'system', name: 'MIRROR_ADMIN_PASSWORD' }, action: existing ? 'user.password_reset' : 'user.create', target: `user:${ADMIN_USERNAME}`, at: now });
    });
    return { generatedPassword: null, passwordFile: null, reset: existing !== undefined };
  }
  const anyUser = await db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (anyUser) return { generatedPassword: null, passwordFile: null, reset: false };
  const generated = randomBytes(18).toString('base64url');
  const file = path.join(dataDir, INITIAL_PASSWORD_FILE);
  await writePrivateFile(file, `${generated}\n`);
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('users').values({ username: ADMIN_USERNAME, password_hash: await hashPassword(generated), created_at: now, password_changed_at: now }).execute();
    await recordAudit(trx, { actor: { kind: 'system', name: 'first-start' }, action: 'user.create', target: `user:${ADMIN_USERNAME}`, at: now });
  });
  return { generatedPassword: generated, passwordFile: file, reset: false };
}

async function verifyPasswordOf(db: Db, userId: number, password: string): Promise<boolean> {
  const row = await db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirst();
  return row ? verifyPassword(row.password_hash, password) : false;
}

const loginSchema = z.object({ username: z.string().max(100), password: z.string().max(1000) }).strict();

export interface SessionGrant {
  token: string;
  csrfToken: string;
  expiresAt: number;
  username: string;
}

/**
 * Checks a password with throttling per client address and per user name from it:
 * after FREE_FAILURES failures within the window each further failure locks
 * that key for twice as long as the last (30 s … 15 min), answered with 429.
 */
export async function login(db: Db, input: unknown, clientAddress: string, now = Date.now()): Promise<SessionGrant> {
  const { username, password } = parseInput(loginSchema, input, 'login');
  // Per client address, and per user name from that address: a stranger elsewhere on the
  // network cannot lock the admin out by failing on purpose, yet guessing stays throttled.
  const keys = [`ip:${clientAddress}`, `user:${username.toLowerCase()}@${clientAddress}`];
  const locks = await db.selectFrom('login_failures').select(['key', 'locked_until']).where('key', 'in', keys).execute();
  const lockedUntil = Math.max(0, ...locks.map((l) => l.locked_until));
  if (lockedUntil > now) {
    throw new AppError('TOO_MANY_REQUESTS', 'too many failed sign-ins; wait before trying again', {
      retryAfterSeconds: Math.ceil((lockedUntil - now) / 1000),
    });
  }
  const user = await db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
  // Hash even for unknown users so timing does not reveal which names exist.
  const ok = user ? await verifyPassword(user.password_hash, password) : (await hashPassword(password), false);
  if (!user || !ok) {
    for (const key of keys) await recordFailure(db, key, now);
    throw new AppError('UNAUTHORIZED', 'wrong user name or password');
  }
  await db.deleteFrom('login_failures').where('key', 'in', keys).execute();
  await db.deleteFrom('sessions').where('expires_at', '<', now).execute();
  const token = newSecret();
  const csrfToken = newSecret();
  const expiresAt = now + SESSION_TTL_MS;
  await db.insertInto('sessions').values({ token_hash: sha256Hex(token), user_id: user.id, csrf_token: csrfToken, created_at: now, expires_at: expiresAt }).execute();
  await recordAudit(db, { actor: { kind: 'user', name: user.username }, action: 'session.login', target: `user:${user.username}`, at: now, details: { from: clientAddress } });
  return { token, csrfToken, expiresAt, username: user.username };
}

async function recordFailure(db: Db, key: string, now: number): Promise<void> {
  const row = await db.selectFrom('login_failures').selectAll().where('key', '=', key).executeTakeFirst();
  const fresh = !row || now - row.first_failure_at > FAILURE_WINDOW_MS;
  const failures = fresh ? 1 : row.failures + 1;
  const over = failures - FREE_FAILURES;
  const lockedUntil = over >= 0 ? now + Math.min(MAX_LOCK_MS, BASE_LOCK_MS * 2 ** over) : 0;
  await db
    .insertInto('login_failures')
    .values({ key, failures, first_failure_at: fresh ? now : row.first_failure_at, locked_until: lockedUntil })
    .onConflict((oc) => oc.column('key').doUpdateSet({ failures, first_failure_at: fresh ? now : row.first_failure_at, locked_until: lockedUntil }))
    .execute();
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

const passwordChangeSchema = z
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

/** Creates an API token; the plaintext is returned once and only its hash is stored. */
export async function createApiToken(db: Db, actor: Actor, name: string, now = Date.now()): Promise<{ name: string; token: string }> {
  const clean = parseInput(tokenName, name, 'token name');
  if (await db.selectFrom('api_tokens').select('id').where('name', '=', clean).executeTakeFirst()) {
    throw new AppError('NAME_TAKEN', `a token named ${JSON.stringify(clean)} already exists; revoke it first`);
  }
  const token = newSecret('gm_');
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('api_tokens').values({ name: clean, token_hash: sha256Hex(token), created_at: now, last_used_at: null }).execute();
    await recordAudit(trx, { actor, action: 'token.create', target: `token:${clean}`, at: now });
  });
  return { name: clean, token };
}

export async function revokeApiToken(db: Db, actor: Actor, name: string, now = Date.now()): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const result = await trx.deleteFrom('api_tokens').where('name', '=', name).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw new AppError('NOT_FOUND', `no token named ${JSON.stringify(name)}`);
    await recordAudit(trx, { actor, action: 'token.revoke', target: `token:${name}`, at: now });
  });
}

export async function listApiTokens(db: Db): Promise<Array<{ name: string; createdAt: string; lastUsedAt: string | null }>> {
  const rows = await db.selectFrom('api_tokens').select(['name', 'created_at', 'last_used_at']).orderBy('name').execute();
  return rows.map((r) => ({
    name: r.name,
    createdAt: new Date(r.created_at).toISOString(),
    lastUsedAt: r.last_used_at === null ? null : new Date(r.last_used_at).toISOString(),
  }));
}

/** Resolves a bearer token to its name; records use at most once a minute to keep reads cheap. */
export async function authenticateApiToken(db: Db, token: string, now = Date.now()): Promise<{ name: string } | null> {
  if (!token.startsWith('gm_') || token.length > 100) return null;
  const row = await db.selectFrom('api_tokens').select(['id', 'name', 'last_used_at']).where('token_hash', '=', sha256Hex(token)).executeTakeFirst();
  if (!row) return null;
  if (row.last_used_at === null || now - row.last_used_at > 60_000) {
    await db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', row.id).execute();
  }
  return { name: row.name };
}
