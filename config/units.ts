/**
 * Parsers for the human forms settings are written in. Each returns null when
 * the text is not a valid value, so the loader can name the offending key.
 */

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** "1048576", "10MB", "1.5 GiB" → bytes (decimal units are powers of ten, binary ones of two). */
export function parseBytes(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const factor = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || factor === undefined) return null;
  const value = Math.round(Number(match[1]) * factor);
  return Number.isSafeInteger(value) ? value : null;
}

/** "1500" (ms), "30s", "24h", "7d", "1w" → milliseconds. */
export function parseDuration(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/.exec(text);
  if (!match) return null;
  const value = Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms']!);
  return Number.isSafeInteger(value) ? value : null;
}

/** A plain base-10 integer, nothing else ("08" and "8" are fine, "8.0", "0x8", "" are not). */
export function parseInteger(text: string): number | null {
  if (!/^\s*-?\d+\s*$/.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}

/** "true/false", "1/0", "yes/no", "on/off" in any case. */
export function parseBoolean(text: string): boolean | null {
  const value = text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(value)) return true;
  if (['false', '0', 'no', 'off'].includes(value)) return false;
  return null;
}
