/**
 * Byte-range and conditional-request rules of RFC 9110 (sections 13 and 14),
 * as pure functions over header values so they can be tested exhaustively.
 */

/** An inclusive byte range, as written in Content-Range. */
export interface ByteRange {
  start: number;
  end: number;
}

export type RangeDecision =
  /** No usable Range header (absent, another unit, or invalid syntax): send the whole representation. */
  | { kind: 'full' }
  /** Syntactically valid but no range overlaps the content: 416. */
  | { kind: 'unsatisfiable' }
  /** One or more satisfiable ranges, in request order, clamped to the content. */
  | { kind: 'partial'; ranges: ByteRange[] };

/** Above this many ranges a request looks like abuse; it gets the whole 200 instead (RFC 9110 §14.2). */
export const MAX_RANGES = 64;

const RANGE_SPEC = /^(\d*)-(\d*)$/;

/**
 * Evaluates a Range header against a representation of `size` bytes:
 * - `bytes=a-b`, `a-` and `-n` in any combination; an end past the last byte clamps to it;
 * - a spec with first > last, a missing `bytes=` unit or junk invalidates the whole header (ignored → 200);
 * - specs that start at or past the end (or a zero suffix) are unsatisfiable and dropped;
 *   when none remains the answer is 416.
 */
export function evaluateRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const eq = header.indexOf('=');
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'full' };
  const specs = header
    .slice(eq + 1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (specs.length === 0) return { kind: 'full' };

  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const match = RANGE_SPEC.exec(spec);
    if (!match) return { kind: 'full' };
    const [, firstText = '', lastText = ''] = match;
    if (firstText === '' && lastText === '') return { kind: 'full' };
    if (firstText === '') {
      const suffix = toSafeInt(lastText);
      if (suffix === null) return { kind: 'full' };
      if (suffix > 0 && size > 0) ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const first = toSafeInt(firstText);
    const last = lastText === '' ? Number.MAX_SAFE_INTEGER : toSafeInt(lastText);
    if (first === null || last === null || last < first) return { kind: 'full' };
    // toSafeInt clamps offsets past 2^53 to the same value, which would turn an
    // invalid `first > last` (→ ignored, 200) into an unsatisfiable range (→ 416).
    if (lastText !== '' && BigInt(lastText) < BigInt(firstText)) return { kind: 'full' };
    if (first < size) ranges.push({ start: first, end: Math.min(last, size - 1) });
  }
  if (ranges.length === 0) return { kind: 'unsatisfiable' };
  if (ranges.length > MAX_RANGES) return { kind: 'full' };
  // Overlapping ranges that add up to more than the whole file would make the
  // answer larger than the file (a cheap amplification): send the whole 200,
  // as Go's http.ServeContent does.
  if (ranges.length > 1 && ranges.reduce((n, r) => n + (r.end - r.start + 1), 0) > size) return { kind: 'full' };
  return { kind: 'partial', ranges };
}

function toSafeInt(text: string): number | null {
  // Digits only (guaranteed by the regex); beyond 2^53 an offset cannot address a real file anyway.
  if (text.length > 15) {
    const value = Number(text);
    return Number.isSafeInteger(value) ? value : Number.MAX_SAFE_INTEGER;
  }
  return Number(text);
}

/** Splits a list of entity tags (If-None-Match, If-Match), keeping their weak prefixes. */
function parseEtagList(header: string): string[] {
  const tags: string[] = [];
  const re = /\s*(W\/)?("[^"]*")\s*(?:,|$)/gy;
  let match: RegExpExecArray | null;
  while ((match = re.exec(header)) !== null) {
    tags.push((match[1] ?? '') + match[2]);
    if (re.lastIndex >= header.length) break;
  }
  return tags;
}

function opaque(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/** If-None-Match uses the weak comparison (RFC 9110 §13.1.2). */
export function noneMatch(header: string, etag: string): boolean {
  if (header.trim() === '*') return false;
  return !parseEtagList(header).some((tag) => opaque(tag) === opaque(etag));
}

/** If-Match uses the strong comparison: a weak tag never matches. */
export function anyStrongMatch(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  return parseEtagList(header).some((tag) => !tag.startsWith('W/') && tag === etag);
}

/** IMF-fixdate, obsolete RFC 850 and asctime formats (RFC 9110 §5.6.7); nothing else is a date. */
const HTTP_DATE = [
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/,
  /^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \d{2}-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{2} \d{2}:\d{2}:\d{2} GMT$/,
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/,
];

/** Parses an HTTP-date; null when it is not one (then the condition is ignored, RFC 9110 §13.1.3). */
export function parseHttpDate(value: string): number | null {
  const text = value.trim();
  if (!HTTP_DATE.some((re) => re.test(text))) return null;
  // asctime has no zone: it is GMT by definition.
  const ms = Date.parse(HTTP_DATE[2]!.test(text) ? `${text} GMT` : text);
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000) * 1000;
}

export type Precondition = 'proceed' | 'not-modified' | 'precondition-failed';

/**
 * RFC 9110 §13.2.2 order for GET/HEAD: If-Match, else If-Unmodified-Since;
 * then If-None-Match, else If-Modified-Since. `lastModifiedMs` has whole seconds.
 */
export function evaluatePreconditions(
  headers: {
    ifMatch?: string | undefined;
    ifUnmodifiedSince?: string | undefined;
    ifNoneMatch?: string | undefined;
    ifModifiedSince?: string | undefined;
  },
  etag: string,
  lastModifiedMs: number,
): Precondition {
  if (headers.ifMatch !== undefined) {
    if (!anyStrongMatch(headers.ifMatch, etag)) return 'precondition-failed';
  } else if (headers.ifUnmodifiedSince !== undefined) {
    const date = parseHttpDate(headers.ifUnmodifiedSince);
    if (date !== null && lastModifiedMs > date) return 'precondition-failed';
  }
  if (headers.ifNoneMatch !== undefined) {
    if (!noneMatch(headers.ifNoneMatch, etag)) return 'not-modified';
  } else if (headers.ifModifiedSince !== undefined) {
    const date = parseHttpDate(headers.ifModifiedSince);
    if (date !== null && lastModifiedMs <= date) return 'not-modified';
  }
  return 'proceed';
}

/**
 * If-Range (RFC 9110 §13.1.5): the Range applies only when the validator
 * matches exactly: an entity tag by strong comparison, or a date equal to
 * Last-Modified. Anything else means "send the whole thing".
 */
export function ifRangeAllowsPartial(header: string | undefined, etag: string, lastModifiedMs: number): boolean {
  if (header === undefined) return true;
  const value = header.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return !value.startsWith('W/') && value === etag;
  const date = parseHttpDate(value);
  return date !== null && date === lastModifiedMs;
}
