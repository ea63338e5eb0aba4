/**
 * The one coded error and the register of its codes (after distribution's errcode) sit in this module, which imports
 * nothing, so that storage/ and config/ can throw AppError and stay leaves that know of HTTP only this table's numbers.
 */

/** What one code means everywhere: the API's status, the CLI's exit code and the message used when none is given. */
export interface ErrorDescriptor {
  /** HTTP status of the API's answer (500 for codes the API never shows). */
  readonly status: number;
  /** Exit code of the CLI: 1 the operation failed, 2 bad usage or configuration. */
  readonly exitCode: 1 | 2;
  readonly message: string;
  /** Whether API and admin pages may show the code, message and details; if not they answer a bare INTERNAL. */
  readonly expose: boolean;
}

type Exit = ErrorDescriptor['exitCode'];
/** A code clients see: its status, a default message, and the CLI exit code. */
const shown = (status: number, message: string, exitCode: Exit = 1) => ({ status, exitCode, message, expose: true });
/** A code for the process itself (CLI, startup, internals): never shown to an HTTP client, so answered as a 500. */
const hidden = (message: string, exitCode: Exit = 1) => ({ status: 500, exitCode, message, expose: false });

export const errorRegistry = {
  BAD_REQUEST: shown(400, 'the request is malformed'),
  VALIDATION_FAILED: shown(400, 'the request is not valid', 2),
  DIGEST_INVALID: shown(400, 'a sha256 must be 64 hexadecimal digits'),
  CHECKSUM_FILE_INVALID: shown(400, 'the checksum file holds no sha256'),
  NAME_INVALID: shown(400, 'the file name is not valid'),
  PACKAGE_NAME_INVALID: shown(400, 'the package file name is not valid'),
  BUNDLE_INVALID: shown(400, 'the bundle is not valid'),
  BUNDLE_VERSION_UNSUPPORTED: shown(400, 'the bundle version is not supported'),
  BUNDLE_INCOMPLETE: shown(400, 'the bundle needs a package that is neither in it nor stored here'),
  CSV_INVALID: shown(400, 'the CSV file is not valid'),
  FEED_INVALID: shown(400, 'the update feed is not valid'),
  UPDATE_FILE_INVALID: shown(400, 'the update file is not valid'),
  UNAUTHORIZED: shown(401, 'sign in first'),
  FORBIDDEN: shown(403, 'not allowed'),
  FETCH_ADDRESS_REFUSED: shown(403, 'fetching from that address is not allowed'),
  TOKEN_SCOPE: shown(403, 'the API token does not allow this'),
  NOT_FOUND: shown(404, 'not found'),
  BLOB_UNKNOWN: shown(404, 'no such package is stored'),
  METHOD_NOT_ALLOWED: shown(405, 'method not allowed'),
  CONFLICT: shown(409, 'the change conflicts with the current state'),
  NAME_TAKEN: shown(409, 'the name is taken'),
  NETWORK_TAKEN: shown(409, 'another site already has that network'),
  REPLICA_IS_SELF: shown(409, 'the replica is this mirror itself'),
  GROUP_HAS_IMAGE: shown(409, 'the group already has a golden image'),
  PRIMARY_TAKEN: shown(409, 'another group holds the primary license key'),
  LICENSE_KEY_TAKEN: shown(409, 'another group already has that license key'),
  BLOB_IN_USE: shown(409, 'the package is used by a golden image'),
  BUNDLE_CONFLICT: shown(409, 'the bundle conflicts with this mirror'),
  SETTING_LOCKED: shown(409, 'the setting is fixed by the configuration'),
  CSV_CONFLICT: shown(409, 'the CSV file conflicts with this mirror'),
  PRECONDITION_FAILED: shown(412, 'the stored package does not match the request preconditions'),
  PAYLOAD_TOO_LARGE: shown(413, 'the request body is too large'),
  RANGE_NOT_SATISFIABLE: shown(416, 'no requested range lies within the package'),
  DIGEST_MISMATCH: shown(422, 'the content does not hash to the expected sha256'),
  SIZE_MISMATCH: shown(422, 'the content does not have the expected size'),
  BLOB_NOT_STORED: shown(422, 'the package is not stored'),
  UPDATE_NOT_STORED: shown(409, 'the update file of that version is not stored'),
  UPDATE_EXISTS: shown(409, 'that Parallels Desktop version is already known'),
  UPDATE_SYNC_RUNNING: shown(409, 'a Parallels Desktop update sync is already running'),
  UPLOAD_BUSY: shown(423, 'another request is using this upload; try again in a few seconds'),
  TOO_MANY_REQUESTS: shown(429, 'too many requests; wait before trying again'),
  PUBLIC_ADDRESS_MISSING: shown(503, 'no public address is set for this mirror'),
  SOURCE_FAILED: shown(502, 'the source failed'),
  BLOB_UNAVAILABLE: shown(503, 'the package is not available'),
  DATABASE_UNAVAILABLE: shown(503, 'the database is not available'),
  STORAGE_UNAVAILABLE: shown(503, 'the object storage is not available'),
  DATABASE_BUSY: shown(503, 'the database is busy; try again shortly'),
  AUTH_BUSY: shown(503, 'too many password checks are running; try again in a few seconds'),
  TOO_MANY_DOWNLOADS: shown(503, 'too many downloads are running'),
  METRICS_UNAVAILABLE: shown(503, 'the metrics of every worker could not be gathered'),
  TRANSFER_INTERRUPTED: shown(503, 'the process running the job stopped before the job ended'),
  INSUFFICIENT_STORAGE: shown(507, 'not enough disk space'),
  INTERNAL: hidden('internal server error'),
  USAGE: hidden('bad usage', 2),
  CONFIG_INVALID: hidden('invalid configuration', 2),
  STARTUP_FAILED: hidden('the server cannot start'),
  FILE_UNREADABLE: hidden('cannot read the file'),
  CSV_SYNTAX: hidden('the input is not CSV'),
  CONNECTION_GONE: hidden('the connection closed'),
} as const satisfies Record<string, ErrorDescriptor>;

export type ErrorCode = keyof typeof errorRegistry;

/** Details whose shape callers rely on; every other code carries free-form details. */
interface KnownDetails {
  CONFIG_INVALID: { problems: readonly string[] };
  CSV_SYNTAX: { line: number; tooLarge: boolean };
}

export type ErrorDetails<C extends ErrorCode> = [C] extends [keyof KnownDetails]
  ? KnownDetails[C]
  : Record<string, unknown>;

/** An AppError known to carry code `C`, with that code's details. */
export type AppErrorOf<C extends ErrorCode> = AppError & {
  readonly code: C;
  readonly details: Readonly<ErrorDetails<C>>;
};

/** The error everything throws: a registered code, a message for people, and details that the API adds to its body. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message?: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message ?? errorRegistry[code].message, options);
    this.name = 'AppError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return errorRegistry[this.code].status;
  }

  get exitCode(): Exit {
    return errorRegistry[this.code].exitCode;
  }
}

/** True when `err` is an AppError (with `code`, when given); narrows its code and details. */
export function isError(err: unknown): err is AppError;
export function isError<C extends ErrorCode>(err: unknown, code: C): err is AppErrorOf<C>;
export function isError(err: unknown, code?: ErrorCode): boolean {
  return err instanceof AppError && (code === undefined || err.code === code);
}

/** What clients may see: exposed codes as they are, anything else a bare INTERNAL whose cause holds the original. */
export function toAppError(err: unknown): AppError {
  if (isError(err) && (errorRegistry[err.code].expose || isBareInternal(err))) return err;
  return new AppError('INTERNAL', undefined, {}, { cause: err });
}

export function errorBody(err: AppError): { error: { code: ErrorCode; message: string } & Record<string, unknown> } {
  return { error: { code: err.code, message: err.message, ...err.details } };
}

function isBareInternal(err: AppError): boolean {
  return (
    err.code === 'INTERNAL' && err.message === errorRegistry.INTERNAL.message && Object.keys(err.details).length === 0
  );
}
