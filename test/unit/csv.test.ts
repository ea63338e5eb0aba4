/** The RFC 4180 reader and writer: every input read whole and in one-byte slices, with line numbers and caps. */
import { describe, expect, it } from 'vitest';
import { isError } from '../../server/errors.js';
import {
  csvCell,
  csvRow,
  neutraliseFormula,
  parseCsv,
  restoreFormula,
  type CsvLimits,
  type CsvRecord,
} from '../../server/csv.js';

const LIMITS: CsvLimits = { maxBytes: 1 << 20, maxRecords: 1000, maxFieldChars: 1000 };

async function* slices(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

/** Parses `text` whole and byte by byte; both must agree. */
async function read(text: string | Buffer, limits = LIMITS): Promise<CsvRecord[]> {
  const data = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  const results: CsvRecord[][] = [];
  for (const size of [data.length || 1, 1, 3]) {
    const records: CsvRecord[] = [];
    for await (const r of parseCsv(slices(data, size), limits)) records.push(r);
    results.push(records);
  }
  expect(results[1]).toEqual(results[0]);
  expect(results[2]).toEqual(results[0]);
  return results[0]!;
}

/** The reader's CSV_SYNTAX error, flattened to what the cases compare: line, tooLarge and message. */
async function syntaxError(
  text: string | Buffer,
  limits = LIMITS,
): Promise<{ line: number; tooLarge: boolean; message: string }> {
  try {
    await read(text, limits);
  } catch (err) {
    if (isError(err, 'CSV_SYNTAX')) return { ...err.details, message: err.message };
    throw err;
  }
  throw new Error('no CSV_SYNTAX error');
}

describe('CSV reader (RFC 4180)', () => {
  it('reads CRLF, LF and CR line ends, a trailing line end or none, and skips blank lines', async () => {
    expect(await read('a,b\r\nc,d\r\n')).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['c', 'd'] },
    ]);
    expect(await read('a,b\nc,d')).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['c', 'd'] },
    ]);
    expect(await read('a\rb\r\n\r\n\nc')).toEqual([
      { line: 1, fields: ['a'] },
      { line: 2, fields: ['b'] },
      { line: 5, fields: ['c'] },
    ]);
  });

  it('reads quoted fields with commas, doubled quotes and line breaks, and numbers records by their first line', async () => {
    const text = 'name,note\r\n"Sales, EMEA","say ""hi"""\r\n"two\r\nlines",x\r\n,\r\nlast,"\r\n"';
    expect(await read(text)).toEqual([
      { line: 1, fields: ['name', 'note'] },
      { line: 2, fields: ['Sales, EMEA', 'say "hi"'] },
      { line: 3, fields: ['two\r\nlines', 'x'] },
      { line: 5, fields: ['', ''] },
      { line: 6, fields: ['last', '\r\n'] },
    ]);
  });

  it('drops a UTF-8 byte order mark and keeps multi-byte characters split across chunks', async () => {
    const records = await read('\uFEFFname\r\nÉquipe Montréal 🚀\r\n');
    expect(records).toEqual([
      { line: 1, fields: ['name'] },
      { line: 2, fields: ['Équipe Montréal 🚀'] },
    ]);
  });

  it('refuses stray and unclosed quotes and non-UTF-8 bytes, naming the line', async () => {
    expect(await syntaxError('a,b\r\nx"y,z\r\n')).toMatchObject({
      line: 2,
      message: expect.stringContaining('a quote (") inside a field') as string,
    });
    expect(await syntaxError('a\r\n"ok"x\r\n')).toMatchObject({
      line: 2,
      message: expect.stringContaining('must end at a comma') as string,
    });
    expect(await syntaxError('a\r\nb\r\n"never\r\nclosed\r\n')).toMatchObject({
      line: 3,
      message: expect.stringContaining('never closed') as string,
    });
    expect(await syntaxError(Buffer.from([0x61, 0x0a, 0xc3, 0x28, 0x0a]))).toMatchObject({
      message: expect.stringContaining('not UTF-8') as string,
    });
  });

  it('enforces the byte, record and field caps while streaming', async () => {
    const big = await syntaxError('x'.repeat(200), { ...LIMITS, maxBytes: 100, maxFieldChars: 1000 });
    expect(big.tooLarge).toBe(true);
    const many = await syntaxError('a\nb\nc\nd\n', { ...LIMITS, maxRecords: 3 });
    expect({ line: many.line, tooLarge: many.tooLarge }).toEqual({ line: 4, tooLarge: true });
    expect((await syntaxError('ok\n' + 'y'.repeat(50), { ...LIMITS, maxFieldChars: 20 })).line).toBe(2);
  });
});

describe('CSV writer', () => {
  it('quotes only what needs it, doubles quotes and ends records with CRLF', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvRow(['a', 'b,c', ''])).toBe('a,"b,c",\r\n');
  });

  it('neutralises formula cells with a leading quote, and import undoes exactly that', async () => {
    const values = ['=HYPERLINK("http://x")', '+1', '-ABC', '@SUM(A1)', '\tx', "'=already", "'plain", 'normal', 'a=b'];
    const neutral = values.map(neutraliseFormula);
    expect(neutral).toEqual([
      '\'=HYPERLINK("http://x")',
      "'+1",
      "'-ABC",
      "'@SUM(A1)",
      "'\tx",
      "''=already",
      "'plain",
      'normal',
      'a=b',
    ]);
    expect(neutral.map(restoreFormula)).toEqual(values);
    // Through a whole file and back.
    const records = await read(csvRow(values));
    expect(records[0]!.fields.map(restoreFormula)).toEqual(values);
    expect(records[0]!.fields.every((f) => !/^[=+\-@\t\r]/.test(f))).toBe(true);
  });
});
