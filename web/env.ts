/** What every admin route shares: its hono environment, its dependencies and the signed-in user read from the context. */
import type { Context } from 'hono';
import type { AppDeps } from '../server/app-deps.js';
import type { Actor } from '../server/services/audit.js';
import type { AuthVariables } from '../server/http/auth.js';
import type { PublicAddress } from '../server/services/settings.js';

export type WebDeps = AppDeps;

export type WebEnv = {
  Variables: AuthVariables & {
    /** Resolved once per signed-in request; never the request's Host. */
    publicAddress: PublicAddress;
  };
};

export type WebContext = Context<WebEnv>;

const UNSET: PublicAddress = {
  url: null,
  source: 'unset',
  stored: null,
  updatedAt: null,
  updatedBy: null,
  warnings: [],
};

/** The public address in force for this request (unset before sign-in). */
export function addressOf(c: WebContext): PublicAddress {
  const address: PublicAddress | undefined = c.get('publicAddress');
  return address ?? UNSET;
}

/** The base of Download URLs for this request, null while no public address is set. */
export function baseOf(c: WebContext): string | null {
  return addressOf(c).url;
}

/** The signed-in user's name, or the API token's; null before sign-in. */
export function userOf(c: WebContext): string | null {
  return c.get('session')?.username ?? (c.get('actor') as Actor | undefined)?.name ?? null;
}

/** The session's CSRF token; null before sign-in and for API tokens, which need none. */
export function csrfOf(c: WebContext): string | null {
  return c.get('session')?.csrfToken ?? null;
}

/** Post/redirect/get: back to `path` with the key of a fixed flash message. */
export function done(c: Context, path: string, key: string): Response {
  return c.redirect(`${path}?done=${key}`, 303);
}
