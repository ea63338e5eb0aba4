/**
 * Admin authentication, one import path for its callers: passwords
 * (auth/passwords.ts, hashed through password-hashing.ts), sessions and
 * sign-in (auth/sessions.ts), scoped API tokens (auth/api-tokens.ts) and the
 * first admin (auth/bootstrap.ts).
 */
export { hashPassword, verifyPassword } from './password-hashing.js';
export { ADMIN_USERNAME, INITIAL_PASSWORD_FILE, MIN_PASSWORD_LENGTH } from './auth/credentials.js';
export { bootstrapAdmin, type AdminBootstrap } from './auth/bootstrap.js';
export { changePassword, passwordChangeSchema, resetPassword, type PasswordReset } from './auth/passwords.js';
export {
  authenticateSession,
  login,
  loginSchema,
  logout,
  type SessionGrant,
  type SessionInfo,
} from './auth/sessions.js';
export {
  authenticateApiToken,
  createApiToken,
  listApiTokens,
  revokeApiToken,
  scopeAllows,
  TOKEN_SCOPES,
  type ApiTokenView,
  type TokenScope,
} from './auth/api-tokens.js';
