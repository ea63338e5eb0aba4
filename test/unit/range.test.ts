import { describe, expect, it } from 'vitest';
import {
  anyStrongMatch,
  evaluatePreconditions,
  evaluateRange,
  ifRangeAllowsPartial,
  MAX_RANGES,
  noneMatch,
  parseHttpDate,
} from '../../server/http/range.js';

const ETAG = `"${'ab'.repeat(32)}"`;
const OTHER = `"${'cd'.repeat(32)}"`;
/** Last-Modified in whole seconds, as the download handler passes it. */
const LM = Date.UTC(2024, 4, 17, 10, 30, 0);
const LM_TEXT = new Date(LM).toUTCString();

describe('evaluateRange', () => {
  const size = 1000;

  it('no header means the whole representation', () => {
    expect(evaluateRange(undefined, size)).toEqual({ kind: 'full' });
  });

  it.each([
    ['bytes=0-0', [{ start: 0, end: 0 }]],
    ['bytes=0-499', [{ start: 0, end: 499 }]],
    ['bytes=500-999', [{ start: 500, end: 999 }]],
    ['bytes=999-999', [{ start: 999, end: 999 }]],
    ['bytes=500-', [{ start: 500, end: 999 }]],
    ['bytes=0-', [{ start: 0, end: 999 }]],
    ['bytes=-1', [{ start: 999, end: 999 }]],
    ['bytes=-500', [{ start: 500, end: 999 }]],
    // A suffix longer than the content selects all of it.
    ['bytes=-5000', [{ start: 0, end: 999 }]],
    // An end past the last byte is clamped.
    ['bytes=900-5000', [{ start: 900, end: 999 }]],
    ['bytes=0-99999999999999999999', [{ start: 0, end: 999 }]],
    ['bytes=-99999999999999999999', [{ start: 0, end: 999 }]],
    // The range unit is case-insensitive; optional whitespace around list members; empty members are allowed.
    ['Bytes=1-2', [{ start: 1, end: 2 }]],
    ['BYTES=1-2', [{ start: 1, end: 2 }]],
    [
      'bytes= 1-2 ,\t3-4 ',
      [
        { start: 1, end: 2 },
        { start: 3, end: 4 },
      ],
    ],
    [
      'bytes=1-2,,3-4,',
      [
        { start: 1, end: 2 },
        { start: 3, end: 4 },
      ],
    ],
    ['bytes=007-009', [{ start: 7, end: 9 }]],
  ])('single and multiple satisfiable forms: %s', (header, ranges) => {
    expect(evaluateRange(header, size)).toEqual({ kind: 'partial', ranges });
  });

  it('keeps several ranges in request order, each clamped', () => {
    expect(evaluateRange('bytes=900-,0-9,-10,100-199', size)).toEqual({
      kind: 'partial',
      ranges: [
        { start: 900, end: 999 },
        { start: 0, end: 9 },
        { start: 990, end: 999 },
        { start: 100, end: 199 },
      ],
    });
  });

  it('drops unsatisfiable members but keeps the satisfiable ones', () => {
    expect(evaluateRange('bytes=5000-6000,0-1,1000-', size)).toEqual({
      kind: 'partial',
      ranges: [{ start: 0, end: 1 }],
    });
    expect(evaluateRange('bytes=-0,2-3', size)).toEqual({
      kind: 'partial',
      ranges: [{ start: 2, end: 3 }],
    });
  });

  it.each([
    'bytes=1000-',
    'bytes=1000-1000',
    'bytes=1000-2000',
    'bytes=99999999999999999999-',
    'bytes=-0',
    'bytes=1000-,2000-3000,-0',
  ])('unsatisfiable: %s', (header) => {
    expect(evaluateRange(header, size)).toEqual({ kind: 'unsatisfiable' });
  });

  it.each([
    '',
    'bytes',
    'bytes=',
    'bytes=,',
    'bytes=-',
    'bytes=a-b',
    'bytes=1',
    'bytes=1-2-3',
    'bytes=--1',
    'bytes=+1-2',
    'bytes=0x10-0x20',
    'bytes=1.5-2',
    'bytes=1 - 2',
    'bytes=5-4',
    // One invalid member invalidates the whole header, even next to valid ones.
    'bytes=0-1,5-4',
    'bytes=0-1,junk',
    'items=0-1',
    'bits=0-1',
    '0-1',
    '=0-1',
    'bytes:0-1',
    'bytes=0-1, bytes=2-3',
  ])('syntactically invalid, so ignored: %j', (header) => {
    expect(evaluateRange(header, size)).toEqual({ kind: 'full' });
  });

  it('first > last is invalid even when both exceed 2^53', () => {
    // RFC 9110 §14.1.1: last-pos less than first-pos makes the whole header invalid (→ 200), not unsatisfiable (→ 416).
    expect(evaluateRange('bytes=99999999999999999999-99999999999999999998', size)).toEqual({ kind: 'full' });
    expect(evaluateRange('bytes=9007199254740993-9007199254740992', size)).toEqual({ kind: 'full' });
  });

  it('zero-byte content: every range is unsatisfiable', () => {
    for (const header of ['bytes=0-', 'bytes=0-0', 'bytes=-1', 'bytes=-100', 'bytes=0-10,-5']) {
      expect(evaluateRange(header, 0)).toEqual({ kind: 'unsatisfiable' });
    }
    expect(evaluateRange('bytes=junk', 0)).toEqual({ kind: 'full' });
    expect(evaluateRange(undefined, 0)).toEqual({ kind: 'full' });
  });

  it('one-byte content', () => {
    expect(evaluateRange('bytes=0-', 1)).toEqual({
      kind: 'partial',
      ranges: [{ start: 0, end: 0 }],
    });
    expect(evaluateRange('bytes=-1', 1)).toEqual({
      kind: 'partial',
      ranges: [{ start: 0, end: 0 }],
    });
    expect(evaluateRange('bytes=1-', 1)).toEqual({ kind: 'unsatisfiable' });
  });

  it(`up to MAX_RANGES (${MAX_RANGES}) ranges are served, more get the whole 200`, () => {
    const specs = (n: number): string =>
      `bytes=${Array.from({ length: n }, (_, i) => `${i * 10}-${i * 10 + 4}`).join(',')}`;
    const at = evaluateRange(specs(MAX_RANGES), size);
    expect(at.kind).toBe('partial');
    expect(at.kind === 'partial' && at.ranges.length).toBe(MAX_RANGES);
    expect(evaluateRange(specs(MAX_RANGES + 1), size)).toEqual({
      kind: 'full',
    });
  });

  it('handles sizes beyond 4 GiB exactly', () => {
    const big = 8 * 1024 ** 3 + 3;
    expect(evaluateRange('bytes=-3', big)).toEqual({
      kind: 'partial',
      ranges: [{ start: big - 3, end: big - 1 }],
    });
    expect(evaluateRange(`bytes=${big - 1}-`, big)).toEqual({
      kind: 'partial',
      ranges: [{ start: big - 1, end: big - 1 }],
    });
    expect(evaluateRange(`bytes=${big}-`, big)).toEqual({
      kind: 'unsatisfiable',
    });
  });
});

describe('entity-tag comparison', () => {
  it('If-None-Match uses the weak comparison', () => {
    expect(noneMatch(ETAG, ETAG)).toBe(false);
    expect(noneMatch(`W/${ETAG}`, ETAG)).toBe(false);
    expect(noneMatch(OTHER, ETAG)).toBe(true);
    expect(noneMatch(`${OTHER}, ${ETAG}`, ETAG)).toBe(false);
    expect(noneMatch(`${OTHER} ,W/${ETAG}`, ETAG)).toBe(false);
    expect(noneMatch('*', ETAG)).toBe(false);
    expect(noneMatch(' * ', ETAG)).toBe(false);
    // Unquoted or otherwise malformed tags match nothing.
    expect(noneMatch(ETAG.slice(1, -1), ETAG)).toBe(true);
    expect(noneMatch('', ETAG)).toBe(true);
  });

  it('If-Match uses the strong comparison', () => {
    expect(anyStrongMatch(ETAG, ETAG)).toBe(true);
    expect(anyStrongMatch(`W/${ETAG}`, ETAG)).toBe(false);
    expect(anyStrongMatch(`${OTHER}, ${ETAG}`, ETAG)).toBe(true);
    expect(anyStrongMatch(OTHER, ETAG)).toBe(false);
    expect(anyStrongMatch('*', ETAG)).toBe(true);
    expect(anyStrongMatch(ETAG.slice(1, -1), ETAG)).toBe(false);
  });
});

describe('parseHttpDate', () => {
  it('accepts IMF-fixdate and the obsolete forms, truncated to seconds', () => {
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(Date.UTC(1994, 10, 6, 8, 49, 37));
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(Date.UTC(1994, 10, 6, 8, 49, 37));
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994')).not.toBeNull();
    expect(parseHttpDate(LM_TEXT)).toBe(LM);
  });

  it('returns null for anything that is not a date', () => {
    expect(parseHttpDate('yesterday')).toBeNull();
    expect(parseHttpDate('')).toBeNull();
    expect(parseHttpDate(ETAG)).toBeNull();
  });
});

describe('evaluatePreconditions (RFC 9110 §13.2.2)', () => {
  const before = new Date(LM - 1000).toUTCString();
  const after = new Date(LM + 1000).toUTCString();
  const ev = (headers: Parameters<typeof evaluatePreconditions>[0]): string => evaluatePreconditions(headers, ETAG, LM);

  it('no conditions → proceed', () => {
    expect(ev({})).toBe('proceed');
  });

  it('If-None-Match: a match (or *) is 304, a mismatch proceeds', () => {
    expect(ev({ ifNoneMatch: ETAG })).toBe('not-modified');
    expect(ev({ ifNoneMatch: `W/${ETAG}` })).toBe('not-modified');
    expect(ev({ ifNoneMatch: '*' })).toBe('not-modified');
    expect(ev({ ifNoneMatch: OTHER })).toBe('proceed');
  });

  it('If-Modified-Since: at or after Last-Modified is 304, before proceeds, garbage is ignored', () => {
    expect(ev({ ifModifiedSince: LM_TEXT })).toBe('not-modified');
    expect(ev({ ifModifiedSince: after })).toBe('not-modified');
    expect(ev({ ifModifiedSince: before })).toBe('proceed');
    expect(ev({ ifModifiedSince: 'not a date' })).toBe('proceed');
  });

  it('If-None-Match takes precedence over If-Modified-Since', () => {
    expect(ev({ ifNoneMatch: OTHER, ifModifiedSince: after })).toBe('proceed');
    expect(ev({ ifNoneMatch: ETAG, ifModifiedSince: before })).toBe('not-modified');
  });

  it('If-Match: a mismatch (or a weak tag) is 412, a match or * proceeds', () => {
    expect(ev({ ifMatch: OTHER })).toBe('precondition-failed');
    expect(ev({ ifMatch: `W/${ETAG}` })).toBe('precondition-failed');
    expect(ev({ ifMatch: ETAG })).toBe('proceed');
    expect(ev({ ifMatch: '*' })).toBe('proceed');
    expect(ev({ ifMatch: `${OTHER}, ${ETAG}` })).toBe('proceed');
  });

  it('If-Unmodified-Since: modified after the date is 412, otherwise proceeds; ignored next to If-Match', () => {
    expect(ev({ ifUnmodifiedSince: before })).toBe('precondition-failed');
    expect(ev({ ifUnmodifiedSince: LM_TEXT })).toBe('proceed');
    expect(ev({ ifUnmodifiedSince: after })).toBe('proceed');
    expect(ev({ ifUnmodifiedSince: 'garbage' })).toBe('proceed');
    expect(ev({ ifMatch: ETAG, ifUnmodifiedSince: before })).toBe('proceed');
  });

  it('a failed If-Match wins over a matching If-None-Match (step 1 before step 3)', () => {
    expect(ev({ ifMatch: OTHER, ifNoneMatch: ETAG })).toBe('precondition-failed');
    expect(ev({ ifMatch: ETAG, ifNoneMatch: ETAG })).toBe('not-modified');
  });
});

describe('ifRangeAllowsPartial (RFC 9110 §13.1.5)', () => {
  it('absent → the Range applies', () => {
    expect(ifRangeAllowsPartial(undefined, ETAG, LM)).toBe(true);
  });

  it('an entity tag must match by strong comparison', () => {
    expect(ifRangeAllowsPartial(ETAG, ETAG, LM)).toBe(true);
    expect(ifRangeAllowsPartial(` ${ETAG} `, ETAG, LM)).toBe(true);
    expect(ifRangeAllowsPartial(OTHER, ETAG, LM)).toBe(false);
    expect(ifRangeAllowsPartial(`W/${ETAG}`, ETAG, LM)).toBe(false);
    expect(ifRangeAllowsPartial(`${ETAG}, ${OTHER}`, ETAG, LM)).toBe(false);
  });

  it('a date must equal Last-Modified exactly', () => {
    expect(ifRangeAllowsPartial(LM_TEXT, ETAG, LM)).toBe(true);
    expect(ifRangeAllowsPartial(new Date(LM + 1000).toUTCString(), ETAG, LM)).toBe(false);
    expect(ifRangeAllowsPartial(new Date(LM - 1000).toUTCString(), ETAG, LM)).toBe(false);
  });

  it('anything else → send the whole representation', () => {
    expect(ifRangeAllowsPartial('', ETAG, LM)).toBe(false);
    expect(ifRangeAllowsPartial('nonsense', ETAG, LM)).toBe(false);
    expect(ifRangeAllowsPartial(ETAG.slice(1, -1), ETAG, LM)).toBe(false);
  });
});

describe('review fixes', () => {
  it('answers overlapping ranges that add up to more than the file with the whole 200', () => {
    expect(
      evaluateRange(
        Array.from({ length: 10 }, () => '0-')
          .join(',')
          .replace(/^/, 'bytes='),
        1000,
      ),
    ).toEqual({ kind: 'full' });
    expect(evaluateRange('bytes=0-599,400-999', 1000)).toEqual({ kind: 'full' });
    expect(evaluateRange('bytes=0-99,200-299', 1000)).toEqual({
      kind: 'partial',
      ranges: [
        { start: 0, end: 99 },
        { start: 200, end: 299 },
      ],
    });
  });

  it('accepts only the three HTTP-date formats', () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37);
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(t);
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(t);
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994')).toBe(t);
    expect(parseHttpDate('1')).toBeNull();
    expect(parseHttpDate('2026-11-25')).toBeNull();
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 +0100')).toBeNull();
    // An invalid If-Unmodified-Since is ignored, not a 412.
    expect(evaluatePreconditions({ ifUnmodifiedSince: '1' }, '"x"', t)).toBe('proceed');
  });
});
