/**
 * Error codes and the one table that maps them to HTTP statuses. Services
 * throw AppError (or storage's StorageError); routes never pick statuses.
 */
import { StorageError } from '../storage/errors.js';

export const errorStatus = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  DIGEST_INVALID: 400,
  CHECKSUM_FILE_INVALID: 400,
  NAME_INVALID: 400,
  PACKAGE_NAME_INVALID: 400,
  BUNDLE_INVALID: 400,
  BUNDLE_VERSION_UNSUPPORTED: 400,
  BUNDLE_INCOMPLETE: 400,
  CSV_INVALID: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  FETCH_ADDRESS_REFUSED: 403,
  TOKEN_SCOPE: 403,
  NOT_FOUND: 404,
  BLOB_UNKNOWN: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  NAME_TAKEN: 409,
  GROUP_HAS_IMAGE: 409,
  PRIMARY_TAKEN: 409,
  LICENSE_KEY_TAKEN: 409,
  BLOB_IN_USE: 409,
  BUNDLE_CONFLICT: 409,
  SETTING_LOCKED: 409,
  CSV_CONFLICT: 409,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  RANGE_NOT_SATISFIABLE: 416,
  DIGEST_MISMATCH: 422,
  SIZE_MISMATCH: 422,
  BLOB_NOT_STORED: 422,
  SIZE_LIMIT_EXCEEDED: 413,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  SOURCE_FAILED: 502,
  BLOB_UNAVAILABLE: 503,
  DATABASE_UNAVAILABLE: 503,
  AUTH_BUSY: 503,
  TOO_MANY_DOWNLOADS: 503,
  INSUFFICIENT_STORAGE: 507,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof errorStatus;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return errorStatus[this.code];
  }
}

/** Known errors keep their code and message; anything else becomes a bare INTERNAL that hides internals. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof StorageError) return new AppError(err.code, err.message, { ...err.details }, { cause: err });
  if (isCoded(err) && err.code === 'DATABASE_UNAVAILABLE') return new AppError('DATABASE_UNAVAILABLE', err.message, {}, { cause: err });
  return new AppError('INTERNAL', 'internal server error', {}, { cause: err });
}

export function errorBody(err: AppError): { error: { code: ErrorCode; message: string } & Record<string, unknown> } {
  return { error: { code: err.code, message: err.message, ...err.details } };
}

function isCoded(err: unknown): err is { code: unknown; message: string } {
  return typeof err === 'object' && err !== null && 'code' in err && 'message' in err;
}
