/** Scoped API tokens: created once in plaintext, stored as hashes, resolved to a name and scope per request. */
import { z } from 'zod';
import {
  deleteApiTokenByName,
  findApiTokenByHash,
  insertApiToken,
  listApiTokenRows,
  setApiTokenLastUsed,
  tokenNameTaken,
} from '../../db/repos/api-tokens.js';
import { AppError } from '../../errors.js';
import { recordAudit, type Actor } from '../audit.js';
import type { DbDeps, ServiceDeps } from '../deps.js';
import { parseInput } from '../validation.js';
import { newSecret, sha256Hex } from './credentials.js';

/** A token's last use is recorded at most this often, to keep reads cheap. */
const LAST_USED_RESOLUTION_MS = 60_000;

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
  deps: DbDeps,
  actor: Actor,
  name: string,
  scope: string = 'admin',
): Promise<{ name: string; scope: TokenScope; token: string }> {
  const clean = parseInput(tokenName, name, 'token name');
  const cleanScope = parseInput(tokenScope, scope, 'token scope');
  if (await tokenNameTaken(deps.db, clean)) {
    throw new AppError('NAME_TAKEN', `a token named ${JSON.stringify(clean)} already exists; revoke it first`);
  }
  const token = newSecret('gm_');
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await insertApiToken(trx, { name: clean, scope: cleanScope, tokenHash: sha256Hex(token), createdAt: now });
    await recordAudit(trx, {
      actor,
      action: 'token.create',
      target: `token:${clean}`,
      at: now,
      details: { scope: cleanScope },
    });
  });
  return { name: clean, scope: cleanScope, token };
}

export async function revokeApiToken(deps: DbDeps, actor: Actor, name: string): Promise<void> {
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    if (!(await deleteApiTokenByName(trx, name)))
      throw new AppError('NOT_FOUND', `no token named ${JSON.stringify(name)}`);
    await recordAudit(trx, { actor, action: 'token.revoke', target: `token:${name}`, at: now });
  });
}

export async function listApiTokens(deps: Pick<ServiceDeps, 'db'>): Promise<ApiTokenView[]> {
  const rows = await listApiTokenRows(deps.db);
  return rows.map((r) => ({
    name: r.name,
    scope: r.scope,
    createdAt: new Date(r.created_at).toISOString(),
    lastUsedAt: r.last_used_at === null ? null : new Date(r.last_used_at).toISOString(),
  }));
}

/** Resolves a bearer token to its name and scope; records use at most once a minute to keep reads cheap. */
export async function authenticateApiToken(
  deps: DbDeps,
  token: string,
): Promise<{ name: string; scope: TokenScope } | null> {
  if (!token.startsWith('gm_') || token.length > 100) return null;
  const row = await findApiTokenByHash(deps.db, sha256Hex(token));
  if (!row) return null;
  const now = deps.clock.now();
  if (row.last_used_at === null || now - row.last_used_at > LAST_USED_RESOLUTION_MS)
    await setApiTokenLastUsed(deps.db, row.id, now);
  return { name: row.name, scope: row.scope };
}
