/**
 * Names shown in download links. Links must be one safe path segment that
 * every Mac and every URL shortener passes through untouched, so generated
 * names keep to letters, digits, dot, dash and underscore.
 */

const MAX_NAME_LENGTH = 200;

/**
 * Turns any file name into the cosmetic last segment of a generated link, ending in `.pvmp` (a package) or
 * `.dmg` (a Parallels Desktop update file).
 */
export function linkFileName(original: string, extension: 'pvmp' | 'dmg' = 'pvmp'): string {
  const base = original.split(/[\\/]/).pop() ?? '';
  const stem = base.replace(extension === 'dmg' ? /\.dmg$/i : /\.pvmp$/i, '');
  const cleaned = stem
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, MAX_NAME_LENGTH);
  return `${cleaned || (extension === 'dmg' ? 'ParallelsDesktop' : 'package')}.${extension}`;
}

/**
 * Whether a decoded request segment is acceptable as the cosmetic file name
 * of a download link: one segment, printable, not a dot name.
 */
export function isSafeRequestedName(name: string): boolean {
  if (name.length === 0 || name.length > 255 || name === '.' || name === '..') return false;
  // No separators, no control characters (C0, DEL, C1).
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return !/[/\\\u0000-\u001f\u007f-\u009f]/.test(name);
}
