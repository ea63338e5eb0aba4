import { createHash, type Hash } from 'node:crypto';
import { AppError } from '../server/errors.js';

/** A lowercase, 64-hex-digit SHA-256 digest. */
export type Sha256 = string & { readonly __brand: 'sha256' };

const SHA256_HEX = /^[0-9a-f]{64}$/;
const SHA256_TOKEN = /(?:^|[^0-9a-fA-F])([0-9a-fA-F]{64})(?![0-9a-fA-F])/;

/** True when `value` is exactly 64 lowercase hex digits. */
export function isSha256(value: string): value is Sha256 {
  return SHA256_HEX.test(value);
}

/** Accepts 64 hex digits in any case (users paste them) and returns the canonical lowercase form. */
export function parseSha256(value: string, what = 'sha256'): Sha256 {
  const lower = value.trim().toLowerCase();
  if (!isSha256(lower)) {
    throw new AppError(
      'DIGEST_INVALID',
      `${what} must be 64 hexadecimal digits, got ${JSON.stringify(truncate(value))}`,
      {
        value: truncate(value),
      },
    );
  }
  return lower;
}

/**
 * Reads the digest out of a checksum file such as the `.txt` that Parallels'
 * "Prepare for Transfer" writes. Its layout is undocumented, so this is
 * deliberately lenient: a UTF-8 BOM, CRLF line ends, any letter case and a
 * trailing file name (`shasum -a 256` style) are all fine; the first run of
 * exactly 64 hex digits wins.
 */
export function parseChecksumText(text: string, source = 'checksum file'): Sha256 {
  const match = SHA256_TOKEN.exec(text.replace(/^\uFEFF/, ''));
  if (!match?.[1]) {
    throw new AppError('CHECKSUM_FILE_INVALID', `${source} holds no SHA-256 (a run of 64 hexadecimal digits)`);
  }
  return match[1].toLowerCase() as Sha256;
}

/** Formats one line of `shasum -a 256` output, which `shasum -c` accepts. */
export function formatChecksumLine(sha256: Sha256, fileName: string): string {
  return `${sha256}  ${fileName}\n`;
}

export function newSha256(): Hash {
  return createHash('sha256');
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}
