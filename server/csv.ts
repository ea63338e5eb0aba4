/**
 * CSV as RFC 4180 describes it: fields separated by commas, records by CRLF
 * (a bare LF or CR is accepted on input), fields with a comma, quote or line
 * break enclosed in quotes, quotes inside doubled. Input is read as a stream
 * with caps on bytes, records and field length; output cells that a
 * spreadsheet would run as a formula are neutralised with a leading '.
 */
import { AppError } from './errors.js';

export interface CsvRecord {
  /** Line of the file (1-based) on which the record starts. */
  line: number;
  fields: string[];
}

export interface CsvLimits {
  maxBytes: number;
  maxRecords: number;
  maxFieldChars: number;
}

/** Why the input is not CSV this reader accepts (CSV_SYNTAX); `line` is where the problem is, `tooLarge` a cap was hit. */
function syntaxError(line: number, message: string, tooLarge = false): AppError {
  return new AppError('CSV_SYNTAX', message, { line, tooLarge });
}

/** Where the reader is; 'quote-in-quoted': a quote inside a quoted field, the first of a doubled pair or the closing one. */
type State = 'field-start' | 'unquoted' | 'quoted' | 'quote-in-quoted';

/**
 * Yields the records of `source` one by one (blank lines are skipped), never
 * holding more than one record; throws CSV_SYNTAX at the first problem.
 * A UTF-8 byte order mark at the start is dropped; invalid UTF-8 is refused.
 */
export async function* parseCsv(
  source: AsyncIterable<Uint8Array | string>,
  limits: CsvLimits,
): AsyncGenerator<CsvRecord> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  let state = 'field-start' as State;
  let line = 1;
  let recordLine = 1;
  let fields: string[] = [];
  let field = '';
  let bytes = 0;
  let records = 0;
  let afterCR = false;
  let prevCR = false;

  const endField = (): void => {
    fields.push(field);
    field = '';
  };
  const takeRecord = (): CsvRecord | null => {
    endField();
    const record = fields.length === 1 && fields[0] === '' ? null : { line: recordLine, fields };
    fields = [];
    state = 'field-start';
    if (record) {
      records += 1;
      if (records > limits.maxRecords)
        throw syntaxError(record.line, `the file has more than ${limits.maxRecords} records`, true);
    }
    return record;
  };

  function* consume(text: string): Generator<CsvRecord> {
    for (const ch of text) {
      // CRLF is one line break (and the CR already ended the record).
      const skipLF = afterCR && ch === '\n';
      if ((ch === '\n' && !prevCR) || ch === '\r') line += 1;
      prevCR = ch === '\r';
      afterCR = false;
      if (skipLF) continue;
      if (state === 'quoted') {
        if (ch === '"') state = 'quote-in-quoted';
        else field += ch;
      } else if (state === 'quote-in-quoted' && ch === '"') {
        field += '"';
        state = 'quoted';
      } else if (ch === ',') {
        endField();
        state = 'field-start';
      } else if (ch === '\n' || ch === '\r') {
        const record = takeRecord();
        afterCR = ch === '\r';
        recordLine = line;
        if (record) yield record;
      } else if (state === 'quote-in-quoted') {
        throw syntaxError(
          line,
          'a quoted field must end at a comma or the end of the line; to put a quote inside a field, double it ("")',
        );
      } else if (ch === '"') {
        if (state !== 'field-start') {
          throw syntaxError(
            line,
            'a quote (") inside a field that does not start with one; enclose the whole field in quotes and double the quote',
          );
        }
        state = 'quoted';
      } else {
        field += ch;
        state = 'unquoted';
      }
      if (field.length > limits.maxFieldChars)
        throw syntaxError(line, `a field is longer than ${limits.maxFieldChars} characters`);
    }
  }

  try {
    for await (const chunk of source) {
      const data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      bytes += data.byteLength;
      if (bytes > limits.maxBytes) throw syntaxError(line, `the file is larger than ${limits.maxBytes} bytes`, true);
      yield* consume(decoder.decode(data, { stream: true }));
    }
    yield* consume(decoder.decode());
  } catch (err) {
    if (err instanceof TypeError && /encoded data was not valid/i.test(err.message)) {
      throw syntaxError(line, 'the file is not UTF-8 text (save it as "CSV UTF-8")');
    }
    throw err;
  }
  if (state === 'quoted') throw syntaxError(recordLine, 'a quoted field is never closed (a missing ")');
  const last = takeRecord();
  if (last) yield last;
}

/** Cells a spreadsheet would evaluate (=, +, -, @, tab, CR first) get a leading '; so do ones that already start with ' before such a character, so that import can undo it exactly. */
const FORMULA_START = /^'*[=+\-@\t\r]/;

export function neutraliseFormula(value: string): string {
  return FORMULA_START.test(value) ? `'${value}` : value;
}

/** The inverse of neutraliseFormula on import: one leading ' before a formula character is dropped. */
export function restoreFormula(value: string): string {
  return value.startsWith("'") && FORMULA_START.test(value.slice(1)) ? value.slice(1) : value;
}

/** One cell, quoted when RFC 4180 requires it. */
export function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** One record with its CRLF. Cells are neutralised against formula injection first. */
export function csvRow(cells: string[]): string {
  return `${cells.map((c) => csvCell(neutraliseFormula(c))).join(',')}\r\n`;
}
