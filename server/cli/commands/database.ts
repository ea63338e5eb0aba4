/** Moving the catalog from the embedded SQLite file to a PostgreSQL server. */
import fs from 'node:fs';
import path from 'node:path';
import { openDatabase, redactedUrl } from '../../db/open.js';
import { AppError } from '../../errors.js';
import { copyCatalog } from '../../services/migrate-db.js';
import { FLAG, JSON_FLAG, STRING, defineCommand } from '../context.js';
import { printJson, printLine } from '../output.js';

export const migrateDbCommand = defineCommand({
  summary: "copy the data dir's SQLite catalog into an empty PostgreSQL database (packages stay where they are)",
  usage: 'goldmirror migrate-db --to postgres://USER:PASS@HOST:5432/DB [--force] [--json]',
  options: { to: STRING, force: FLAG, ...JSON_FLAG },
  arity: [0, 'migrate-db takes no arguments besides --to'],
  async run(ctx, { values }) {
    const url = values.to;
    if (!url || !/^postgres(ql)?:\/\//.test(url))
      throw new AppError('USAGE', 'give --to postgres://USER:PASS@HOST:5432/DB');
    const config = ctx.loadConfig();
    const file = path.join(path.resolve(config.dataDir), 'goldmirror.db');
    // openDatabase would make an empty catalog where none exists: copying that would only hide a wrong data dir.
    if (!fs.existsSync(file))
      throw new AppError(
        'FILE_UNREADABLE',
        `no SQLite catalog at ${file}; point --data-dir (or MIRROR_DATA_DIR) at the data directory`,
      );
    const source = await openDatabase({ file });
    try {
      const target = await openDatabase({ url, poolSize: 2 });
      try {
        const report = await copyCatalog(source, target, { force: values.force });
        if (values.json) return printJson({ target: redactedUrl(url), ...report });
        printLine(`copied ${file} into ${redactedUrl(url)}:`);
        for (const { table, rows } of report.tables)
          printLine(`  ${table.padEnd(20)} ${String(rows).padStart(9)} rows`);
        if (report.replacedRows > 0) printLine(`(${report.replacedRows} rows that were there before were replaced)`);
        printLine('every table has the same number of rows in both databases.');
        printLine('');
        printLine('next:');
        printLine('  1. stop every goldmirror that uses this data directory;');
        printLine(
          `  2. set MIRROR_DATABASE_URL=${redactedUrl(url)} (with the real password) for every process and node,`,
        );
        printLine(`     keeping MIRROR_DATA_DIR=${path.resolve(config.dataDir)} (the packages stay there);`);
        printLine('  3. start goldmirror again and run `goldmirror doctor` once.');
        printLine(`${file} is no longer read after that; keep it as a backup.`);
      } finally {
        await target.destroy();
      }
    } finally {
      await source.destroy();
    }
  },
});
