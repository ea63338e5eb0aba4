/**
 * What a download link names: `/d/<sha256>/<name>.pvmp` (a golden-image package), `<name>.dmg` (a Parallels
 * Desktop update file), or either followed by `.sha256` (its checksum line).
 */
import type { Sha256 } from '../../storage/digest.js';
import type { BlobKind } from '../db/schema.js';
import { AppError } from '../errors.js';
import { isSafeRequestedName } from '../file-names.js';

export const DOWNLOAD_PREFIX = '/d/';

export interface Target {
  sha256: Sha256;
  name: string;
  checksum: boolean;
  /** What the name's extension says the file is; the stored blob must be that kind. */
  kind: BlobKind;
}

/** `<something>.pvmp` or `.dmg`, then optionally `.sha256`, in any letter case (names are pasted by hand). */
const LINK_NAME = /^(.+\.(pvmp|dmg))(\.sha256)?$/i;

/**
 * The link's digest and file name, or the error to answer. The name is
 * cosmetic but must end in `.pvmp` for a package and `.dmg` for an update
 * file (checked against the stored blob), so a link can never offer a file
 * under another kind of name (`Invoice.exe`).
 */
export function parseTarget(url: string): Target | AppError {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const rest = path.slice(DOWNLOAD_PREFIX.length);
  const slash = rest.indexOf('/');
  if (!path.startsWith(DOWNLOAD_PREFIX) || slash < 0 || rest.indexOf('/', slash + 1) >= 0) {
    return new AppError('NOT_FOUND', 'download links look like /d/<sha256>/<file name>');
  }
  const digest = rest.slice(0, slash).toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(digest)) {
    return new AppError('DIGEST_INVALID', 'the first segment of a download link must be a 64-digit sha256');
  }
  let name: string;
  try {
    name = decodeURIComponent(rest.slice(slash + 1));
  } catch {
    return new AppError('NAME_INVALID', 'the file name in the link is not valid percent-encoding');
  }
  if (!isSafeRequestedName(name))
    return new AppError('NAME_INVALID', 'the file name in the link must be one plain path segment');
  const named = LINK_NAME.exec(name);
  if (!named?.[1] || !named[2])
    return new AppError(
      'NOT_FOUND',
      'download links end in .pvmp (a package), .dmg (a Parallels Desktop update) or either plus .sha256 (its checksum line)',
    );
  return {
    sha256: digest as Sha256,
    name: named[1],
    checksum: named[3] !== undefined,
    kind: named[2].toLowerCase() === 'dmg' ? 'update' : 'package',
  };
}

/** `attachment` with an ASCII fallback and the exact name in RFC 8187 form. */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return ascii === name
    ? `attachment; filename="${name}"`
    : `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
