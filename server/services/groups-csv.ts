/**
 * Groups and their golden images as CSV, for admins who keep them in step
 * with the Management Portal by hand: columns name, license_key, primary,
 * image (the image's name). Import is all-or-nothing: every line is checked
 * against the file and the mirror first, every problem is reported with its
 * line number, and only a file without problems changes anything, in one
 * transaction. Groups not in the file are left as they are.
 */
import type { Db } from '../db/open.js';
import { insertGroup, listGroupRows, listGroupsWithImageName, updateGroupRow } from '../db/repos/groups.js';
import { listImageNames } from '../db/repos/images.js';
import type { GroupRow } from '../db/schema.js';
import { csvRow, parseCsv, restoreFormula, type CsvLimits } from '../csv.js';
import { AppError, isError } from '../errors.js';
import { recordAudit, type Actor } from './audit.js';
import { groupColumns, groupName, licenseKey } from './groups.js';
import type { DbDeps } from './deps.js';

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

export interface GroupCsvReport {
  dryRun: boolean;
  created: string[];
  updated: string[];
  unchanged: string[];
}

/** The export: a UTF-8 byte order mark (so Excel reads accents right), a header, one line per group by name. */
export async function exportGroupsCsv(deps: Pick<DbDeps, 'db'>): Promise<string> {
  const rows = await listGroupsWithImageName(deps.db);
  let out = `\uFEFF${csvRow([...GROUP_CSV_COLUMNS])}`;
  for (const r of rows) out += csvRow([r.name, r.licenseKey ?? '', r.primary === 1 ? 'yes' : 'no', r.image ?? '']);
  return out;
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

/**
 * Makes the mirror's groups match the rows: creates missing ones, updates
 * changed ones (a name that differs only in case takes the file's spelling).
 * Like the API, a group that has a golden image is not given another one
 * (clear its image first). Every problem of the file and every conflict with
 * the mirror (a second image, a taken license key or primary flag) is listed
 * in one error: CSV_INVALID when a line itself is wrong, else CSV_CONFLICT.
 * Dry run: the report only.
 */
export async function applyGroupsCsv(
  deps: DbDeps,
  actor: Actor,
  file: GroupCsvFile,
  options: { dryRun?: boolean } = {},
): Promise<GroupCsvReport> {
  const now = deps.clock.now();
  const dryRun = options.dryRun ?? false;
  return deps.db.transaction().execute(async (trx) => {
    const plan = await planImport(trx, file);
    const report: GroupCsvReport = { dryRun, created: [], updated: [], unchanged: [] };
    for (const step of plan) report[step.kind].push(step.row.name);
    if (dryRun) return report;
    // Release license keys and primary flags that move first: the unique indexes check every statement.
    for (const step of plan) {
      if (step.kind !== 'updated') continue;
      await updateGroupRow(trx, step.current.id, { license_key: null, is_primary: 0 });
    }
    for (const step of plan) {
      if (step.kind === 'unchanged') continue;
      const values = groupColumns({ ...step.next, name: step.row.name }, now);
      const details = { source: 'csv', line: step.row.line, groupName: step.row.name, imageName: step.next.imageName };
      if (step.kind === 'created') {
        const id = await insertGroup(trx, { ...values, created_at: now });
        await recordAudit(trx, {
          actor,
          action: 'group.create',
          target: `group:${id}`,
          at: now,
          details: {
            ...details,
            name: step.row.name,
            licenseKey: step.next.licenseKey,
            primary: step.next.primary,
            imageId: step.next.imageId,
          },
        });
      } else {
        await updateGroupRow(trx, step.current.id, values);
        await recordAudit(trx, {
          actor,
          action: 'group.update',
          target: `group:${step.current.id}`,
          at: now,
          details: {
            ...details,
            ...step.changes,
            previousName: step.current.name,
            previousImageId: step.current.image_id,
            previousImageName: step.previousImageName,
          },
        });
      }
    }
    return report;
  });
}

type Step =
  | { kind: 'created'; row: GroupCsvRow; next: Final }
  | {
      kind: 'updated' | 'unchanged';
      row: GroupCsvRow;
      next: Final;
      current: GroupRow;
      changes: Record<string, unknown>;
      previousImageName: string | null;
    };

interface Final {
  licenseKey: string | null;
  primary: boolean;
  imageId: number | null;
  imageName: string | null;
}

async function planImport(db: Db, { rows, problems: fileProblems }: GroupCsvFile): Promise<Step[]> {
  const groups = await listGroupRows(db);
  const images = await listImageNames(db);
  const groupByKey = new Map(groups.map((g) => [foldCase(g.name), g]));
  const imageByName = new Map(images.map((i) => [i.name, i]));
  const imageNameById = new Map(images.map((i) => [i.id, i.name]));
  const problems = new Problems();
  const steps: Step[] = [];

  for (const row of rows) {
    const current = groupByKey.get(foldCase(row.name));
    let imageId = current?.image_id ?? null;
    if (row.image !== undefined) {
      if (row.image === null) imageId = null;
      else {
        const image = imageByName.get(row.image);
        if (!image) {
          const near = images.find((i) => i.name.toLowerCase() === row.image!.toLowerCase());
          problems.add({
            line: row.line,
            column: 'image',
            message: `no golden image named ${JSON.stringify(row.image)}${near ? ` (did you mean ${JSON.stringify(near.name)}?)` : ''}`,
          });
          continue;
        }
        imageId = image.id;
      }
    }
    const next: Final = {
      licenseKey: row.licenseKey === undefined ? (current?.license_key ?? null) : row.licenseKey,
      primary: row.primary === undefined ? current?.is_primary === 1 : row.primary,
      imageId,
      imageName: imageId === null ? null : (imageNameById.get(imageId) ?? null),
    };
    if (!current) {
      steps.push({ kind: 'created', row, next });
      continue;
    }
    const previousImageName = current.image_id === null ? null : (imageNameById.get(current.image_id) ?? null);
    if (current.image_id !== null && imageId !== null && imageId !== current.image_id) {
      problems.add({
        line: row.line,
        column: 'image',
        message:
          `group ${JSON.stringify(current.name)} already has the golden image ${JSON.stringify(previousImageName)}; a group can have only one, ` +
          'so clear its image first (an empty image cell, or Remove on the image page), then give it the new one',
      });
      continue;
    }
    const changes: Record<string, unknown> = {};
    if (current.name !== row.name) changes.name = row.name;
    if (current.license_key !== next.licenseKey) changes.licenseKey = next.licenseKey;
    if ((current.is_primary === 1) !== next.primary) changes.primary = next.primary;
    if (current.image_id !== next.imageId) changes.imageId = next.imageId;
    steps.push({
      kind: Object.keys(changes).length ? 'updated' : 'unchanged',
      row,
      next,
      current,
      changes,
      previousImageName,
    });
  }

  // License keys and the primary flag, as they would be after the import (the file's groups plus the others).
  const touched = new Set(steps.flatMap((s) => (s.kind === 'created' ? [] : [s.current.id])));
  const holders = new Map<string, { name: string; line?: number }>();
  let primary: { name: string; line?: number } | null = null;
  for (const g of groups) {
    if (touched.has(g.id)) continue;
    if (g.license_key !== null) holders.set(g.license_key, { name: g.name });
    if (g.is_primary === 1) primary = { name: g.name };
  }
  for (const step of steps) {
    const { row, next } = step;
    if (next.licenseKey !== null) {
      const holder = holders.get(next.licenseKey);
      if (holder)
        problems.add({
          line: row.line,
          column: 'license_key',
          message: `group ${JSON.stringify(holder.name)}${where(holder.line)} already has this license key`,
        });
      else holders.set(next.licenseKey, { name: row.name, line: row.line });
    }
    if (next.primary) {
      if (primary)
        problems.add({
          line: row.line,
          column: 'primary',
          message: `the primary license key is already held by group ${JSON.stringify(primary.name)}${where(primary.line)}; only one group can have it`,
        });
      else primary = { name: row.name, line: row.line };
    }
  }
  for (const p of fileProblems) problems.add(p);
  problems.throwIfAny(fileProblems.length ? 'CSV_INVALID' : 'CSV_CONFLICT');
  return steps;
}

const where = (line: number | undefined): string => (line === undefined ? ' (not in the file)' : ` (line ${line})`);

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
function foldCase(name: string): string {
  return name.replace(/[A-Z]/g, (ch) => ch.toLowerCase());
}

class Problems {
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
