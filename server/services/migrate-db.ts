/**
 * `goldmirror migrate-db`: the whole catalog of an embedded SQLite database copied into an empty PostgreSQL database,
 * in one transaction on the target, with every table's row count compared before it commits. The packages
 * themselves stay where they are (the blob directory); only the catalog moves.
 */
import { catalogTables, countTableRows, deleteTableRows, insertTableRows } from '../db/repos/database.js';
import { resumeIdentityCounters, sqliteReferencedTables, sqliteRowsInOrder } from '../db/dialect.js';
import type { Db } from '../db/open.js';
import { AppError } from '../errors.js';

/** Rows per INSERT: well under PostgreSQL's 65535 parameters for the widest table. */
const BATCH_ROWS = 500;

export interface CatalogCopyReport {
  tables: Array<{ table: string; rows: number }>;
  /** Rows the target held before (only with force: they were deleted). */
  replacedRows: number;
}

export async function copyCatalog(source: Db, target: Db, options: { force: boolean }): Promise<CatalogCopyReport> {
  // The source is read inside its own write transaction, so a server still running on it cannot change it meanwhile.
  return source.transaction().execute(async (from) => {
    const tables = await inDependencyOrder(from, await catalogTables(from));
    const targetTables = new Set(await catalogTables(target));
    const missing = tables.filter((t) => !targetTables.has(t));
    if (missing.length > 0)
      throw new AppError(
        'CONFLICT',
        `the target database has no table ${missing.join(', ')}; is it a goldmirror of another version?`,
      );
    return target.transaction().execute(async (to) => {
      let replacedRows = 0;
      for (const table of tables) replacedRows += await countTableRows(to, table);
      if (replacedRows > 0 && !options.force)
        throw new AppError(
          'CONFLICT',
          `the target database already holds ${replacedRows} row(s); give --force to replace them`,
          { rows: replacedRows },
        );
      for (const table of [...tables].reverse()) await deleteTableRows(to, table);
      const report: CatalogCopyReport = { tables: [], replacedRows };
      for (const table of tables) {
        for await (const rows of sqliteRowsInOrder(from, table, BATCH_ROWS)) await insertTableRows(to, table, rows);
        const [want, got] = [await countTableRows(from, table), await countTableRows(to, table)];
        if (want !== got)
          throw new AppError(
            'CONFLICT',
            `table ${table}: ${want} row(s) in SQLite but ${got} copied; nothing was changed`,
          );
        report.tables.push({ table, rows: got });
      }
      await resumeIdentityCounters(to);
      return report;
    });
  });
}

/** Tables ordered so that each comes after every table it refers to. */
async function inDependencyOrder(db: Db, tables: string[]): Promise<string[]> {
  const refs = new Map<string, string[]>();
  for (const table of tables)
    refs.set(
      table,
      (await sqliteReferencedTables(db, table)).filter((t) => t !== table),
    );
  const ordered: string[] = [];
  const visit = (table: string, path: string[]): void => {
    if (ordered.includes(table)) return;
    if (path.includes(table)) throw new Error(`foreign keys form a cycle: ${[...path, table].join(' → ')}`);
    for (const ref of refs.get(table) ?? []) visit(ref, [...path, table]);
    ordered.push(table);
  };
  for (const table of [...tables].sort()) visit(table, []);
  return ordered;
}
