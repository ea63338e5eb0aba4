/**
 * Errors raised by the blob store. They carry a stable `code` and know nothing
 * of HTTP; the server maps codes to statuses in one table.
 */
export type StorageErrorCode =
  | 'DIGEST_INVALID'
  | 'DIGEST_MISMATCH'
  | 'BLOB_UNKNOWN'
  | 'SIZE_MISMATCH'
  | 'SIZE_LIMIT_EXCEEDED'
  | 'INSUFFICIENT_STORAGE'
  | 'CHECKSUM_FILE_INVALID'
  | 'SOURCE_FAILED';

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: StorageErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
    this.code = code;
    this.details = details;
  }
}

export function isStorageError(err: unknown, code?: StorageErrorCode): err is StorageError {
  return err instanceof StorageError && (code === undefined || err.code === code);
}
