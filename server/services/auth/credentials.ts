/** Rules for credentials, random secrets, and the hashes stored in their place (sessions and API tokens keep only the hash). */
import { createHash, randomBytes } from 'node:crypto';

export const MIN_PASSWORD_LENGTH = 10;
export const ADMIN_USERNAME = 'admin';
/** Where the first start writes the generated admin password (in the data directory). */
export const INITIAL_PASSWORD_FILE = 'initial-admin-password';

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** 256 random bits as base64url, after an optional prefix. */
export function newSecret(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** A new random password for people to type: 24 base64url characters (144 bits). */
export function newPassword(): string {
  return randomBytes(18).toString('base64url');
}
