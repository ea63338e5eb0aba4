/**
 * Reading a groups CSV file (see groups-csv.ts): the header, then each line
 * checked on its own and against the file's other lines, without looking at
 * the mirror. Problems are collected with their line numbers, not thrown one
 * by one, so an admin sees all of them at once.
 */
import { parseCsv, restoreFormula, type CsvLimits } from '../csv.js';
import { AppError, isError } from '../errors.js';
import { groupName, licenseKey } from './groups.js';

export const GROUP_CSV_COLUMNS = ['name', 'license_key', 'primary', 'image'] as const;
type Column = (typeof GROUP_CSV_COLUMNS)[number];

/** Enough for thousands of groups; the API's own body limit is the same 1 MiB. */
export const GROUP_CSV_LIMITS: CsvLimits = { maxBytes: 1024 * 1024, maxRecords: 10_000, maxFieldChars: 1000 };
/** Problems reported at most per import (the rest are counted). */
const MAX_PROBLEMS = 50;

export interface CsvProblem {
  line: number;
  column?: Column;
  message: string;
}

/** One checked line of the file; undefined fields were not in the file (their columns were left out). */
export interface GroupCsvRow {
  line: number;
  name: string;
  licenseKey?: string | null;
  primary?: boolean;
  image?: string | null;
}

/** A file as read: its good rows, and the problems of the other lines (reported with the mirror's conflicts). */
export interface GroupCsvFile {
  rows: GroupCsvRow[];
  problems: CsvProblem[];
}

/**
 * Reads and checks the file's lines (syntax and each field) without looking
 * at the mirror. A bad header or a file over the caps throws at once; other
 * problems are collected for applyGroupsCsv to report together with conflicts.
 */
export async function readGroupsCsv(
  source: AsyncIterable<Uint8Array | string>,
  limits: CsvLimits = GROUP_CSV_LIMITS,
): Promise<GroupCsvFile> {
  const problems = new Problems();
  const rows: GroupCsvRow[] = [];
  let columns: Column[] | null = null;
  const firstLineOf = new Map<string, number>();
  try {
    for await (const record of parseCsv(source, limits)) {
      if (columns === null) {
        columns = readHeader(record.fields, record.line);
        continue;
      }
      if (record.fields.length !== columns.length) {
        problems.add({
          line: record.line,
          message: `${record.fields.length} fields, but the header has ${columns.length} (${columns.join(', ')})`,
        });
        continue;
      }
      const row = readRow(columns, record.fields, record.line, problems);
      if (!row) continue;
      const key = foldCase(row.name);
      const first = firstLineOf.get(key);
      if (first !== undefined)
        problems.add({
          line: row.line,
          column: 'name',
          message: `group ${JSON.stringify(row.name)} is already on line ${first} (names are compared regardless of case)`,
        });
      else firstLineOf.set(key, row.line);
      rows.push(row);
    }
  } catch (err) {
    if (!isError(err, 'CSV_SYNTAX')) throw err;
    if (err.details.tooLarge)
      throw new AppError('PAYLOAD_TOO_LARGE', `line ${err.details.line}: ${err.message}; nothing was changed`);
    problems.add({ line: err.details.line, message: err.message });
  }
  if (columns === null && problems.list.length === 0)
    problems.add({
      line: 1,
      message: `the file is empty; the first line must be the header ${GROUP_CSV_COLUMNS.join(',')}`,
    });
  return { rows, problems: problems.list };
}

function readHeader(fields: string[], line: number): Column[] {
  const names = fields.map((f) =>
    f
      .trim()
      .toLowerCase()
      .replace(/[\s-]+/g, '_'),
  );
  const problems: string[] = [];
  const unknown = names.filter((n) => !(GROUP_CSV_COLUMNS as readonly string[]).includes(n));
  if (unknown.length)
    problems.push(`unknown column${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')}`);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (twice.length) problems.push(`column ${JSON.stringify(twice[0])} appears twice`);
  if (!names.includes('name')) problems.push('the column "name" is required');
  if (problems.length) {
    throw new AppError(
      'CSV_INVALID',
      `line ${line}: the header is not right: ${problems.join('; ')}; expected ${GROUP_CSV_COLUMNS.join(',')} (name required, the others optional)`,
      {
        problems: [{ line, message: problems.join('; ') }],
      },
    );
  }
  return names as Column[];
}

function readRow(columns: Column[], fields: string[], line: number, problems: Problems): GroupCsvRow | null {
  const cell = (column: Column): string | undefined => {
    const i = columns.indexOf(column);
    return i < 0 ? undefined : restoreFormula(fields[i]!);
  };
  const before = problems.list.length;
  const parsedName = groupName.safeParse(cell('name'));
  if (!parsedName.success)
    problems.add({ line, column: 'name', message: parsedName.error.issues[0]?.message ?? 'invalid' });
  const row: GroupCsvRow = { line, name: parsedName.success ? parsedName.data : '' };
  const key = cell('license_key');
  if (key !== undefined) {
    const parsed = licenseKey.safeParse(key.trim() === '' ? null : key);
    if (parsed.success) row.licenseKey = parsed.data;
    else problems.add({ line, column: 'license_key', message: parsed.error.issues[0]?.message ?? 'invalid' });
  }
  const primary = cell('primary');
  if (primary !== undefined) {
    const flag = primary.trim().toLowerCase();
    if (['yes', 'true', '1', 'y', 'x'].includes(flag)) row.primary = true;
    else if (['no', 'false', '0', 'n', ''].includes(flag)) row.primary = false;
    else problems.add({ line, column: 'primary', message: `${JSON.stringify(primary)} is neither yes nor no` });
  }
  const image = cell('image');
  if (image !== undefined) row.image = image.trim() === '' ? null : image.trim();
  return problems.list.length === before ? row : null;
}

/** ASCII case folding, exactly what SQLite's lower() in the unique index does. */
export function foldCase(name: string): string {
  return name.replace(/[A-Z]/g, (ch) => ch.toLowerCase());
}

/** The problems of one import, capped at MAX_PROBLEMS (the rest are counted), thrown together. */
export class Problems {
  readonly list: CsvProblem[] = [];
  #more = 0;

  add(problem: CsvProblem): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push(problem);
    else this.#more += 1;
  }

  throwIfAny(code: 'CSV_INVALID' | 'CSV_CONFLICT'): void {
    if (this.list.length === 0) return;
    const sorted = [...this.list].sort((a, b) => a.line - b.line);
    const text = sorted.map((p) => `line ${p.line}${p.column ? ` (${p.column})` : ''}: ${p.message}`).join('; ');
    const more = this.#more ? `; and ${this.#more} more` : '';
    throw new AppError(code, `nothing was imported: ${text}${more}`, { problems: sorted });
  }
}
