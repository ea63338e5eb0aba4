/**
 * Groups and their golden images as CSV, for admins who keep them in step
 * with the Management Portal by hand: columns name, license_key, primary,
 * image (the image's name). Import is all-or-nothing: every line is checked
 * against the file and the mirror first, every problem is reported with its
 * line number, and only a file without problems changes anything, in one
 * transaction. Groups not in the file are left as they are. Reading the file
 * is groups-csv-read.ts; here the export, and the import planned against the
 * mirror, then applied.
 */
import type { Db } from '../db/open.js';
import { insertGroup, listGroupRows, listGroupsWithImageName, updateGroupRow } from '../db/repos/groups.js';
import { listImageNames } from '../db/repos/images.js';
import type { GroupRow } from '../db/schema.js';
import { csvRow } from '../csv.js';
import { recordAudit, type Actor } from './audit.js';
import { groupColumns } from './groups.js';
import { foldCase, GROUP_CSV_COLUMNS, Problems, type GroupCsvFile, type GroupCsvRow } from './groups-csv-read.js';
import type { DbDeps } from './deps.js';

export {
  GROUP_CSV_COLUMNS,
  GROUP_CSV_LIMITS,
  readGroupsCsv,
  type CsvProblem,
  type GroupCsvFile,
  type GroupCsvRow,
} from './groups-csv-read.js';

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
