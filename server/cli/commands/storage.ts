/** Moving the packages between the data directory's blobs/ and an S3-compatible bucket. */
import fs from 'node:fs';
import path from 'node:path';
import { openBlobStore, type StoreBackend } from '../../../storage/blob-store.js';
import { createLayout } from '../../../storage/layout.js';
import type { Config } from '../../../config/load.js';
import { AppError } from '../../errors.js';
import { humanBytes } from '../../format.js';
import { storeBackend } from '../../runtime.js';
import {
  migrateStorage,
  type StorageMigrationProgress,
  type StorageMigrationReport,
} from '../../services/migrate-storage.js';
import { FLAG, JSON_FLAG, STRING, defineCommand } from '../context.js';
import { printJson, printLine } from '../output.js';

const KINDS = ['s3', 'fs'] as const;
type Kind = (typeof KINDS)[number];

export const migrateStorageCommand = defineCommand({
  summary:
    'copy every package from the configured store into the other (blobs/ to the MIRROR_S3_* bucket, or back); switches nothing',
  usage: 'goldmirror migrate-storage --to s3|fs [--verify-existing] [--json]',
  options: { to: STRING, 'verify-existing': FLAG, ...JSON_FLAG },
  arity: [0, 'migrate-storage takes no arguments besides --to'],
  async run(ctx, { values }) {
    const to = values.to as Kind | undefined;
    if (!to || !KINDS.includes(to)) throw new AppError('USAGE', 'give --to s3 or --to fs');
    const config = ctx.loadConfig();
    const backend = targetBackend(config, to);
    const dbFile = createLayout(config.dataDir).dbFile;
    // Opening would make an empty catalog where none exists, and every blob would look unlisted.
    if (!config.databaseUrl && !fs.existsSync(dbFile))
      throw new AppError(
        'FILE_UNREADABLE',
        `no catalog at ${dbFile}; point --data-dir (or MIRROR_DATA_DIR) at the data directory`,
      );
    const target = await openBlobStore(config.dataDir, backend);
    const controller = new AbortController();
    // The first Ctrl-C stops after cleaning up the copy in progress; a second one does not wait for that.
    const interrupt = (): void => {
      if (controller.signal.aborted) process.exit(130);
      controller.abort(new Error('interrupted'));
    };
    process.on('SIGINT', interrupt);
    const progress = progressPrinter();
    try {
      const report = await ctx.withRuntime(
        (runtime) =>
          migrateStorage(
            { db: runtime.db, source: runtime.store, target },
            {
              verifyExisting: values['verify-existing'],
              minFreeBytes: config.minFreeBytes,
              signal: controller.signal,
              onProgress: progress.show,
            },
          ),
        config,
      );
      progress.done();
      if (values.json) printJson({ ...report, switchTo: report.ok ? switchSettings(to) : null });
      else printReport(report, config, to);
      if (!report.ok && !values.json)
        process.stderr.write(
          `goldmirror: ${notReady(report)}; do not switch yet: run migrate-storage again once the above is dealt with\n`,
        );
      return report.ok ? 0 : 1;
    } catch (err) {
      progress.done();
      if (!controller.signal.aborted) throw err;
      process.stderr.write(
        'goldmirror: interrupted; what was copied stays in the target, and a new run copies only the rest\n',
      );
      return 130;
    } finally {
      process.off('SIGINT', interrupt);
    }
  },
});

/** The store the blobs go to: the configured bucket even though MIRROR_STORAGE still says fs, or blobs/. */
function targetBackend(config: Config, to: Kind): StoreBackend {
  if (config.storage === to)
    throw new AppError(
      'USAGE',
      `MIRROR_STORAGE is already ${to}, so the blobs are there; migrate-storage copies them from the configured store ` +
        `into the other one (--to ${to === 's3' ? 'fs' : 's3'})`,
    );
  if (to === 'fs') return { kind: 'fs' };
  if (!config.s3Bucket) {
    const problem =
      '--to s3 copies into the bucket the configuration names: set MIRROR_S3_BUCKET (and MIRROR_S3_ENDPOINT, ' +
      'MIRROR_S3_REGION, the credentials… as for MIRROR_STORAGE=s3), and keep MIRROR_STORAGE=fs until the copy is done';
    throw new AppError('CONFIG_INVALID', problem, { problems: [problem] });
  }
  return storeBackend({ ...config, storage: 's3' });
}

function switchSettings(to: Kind): Record<string, string> {
  return { MIRROR_STORAGE: to };
}

function notReady(report: StorageMigrationReport): string {
  const parts = [];
  if (report.failed.length > 0) parts.push(`${report.failed.length} package(s) could not be copied`);
  if (report.storedMeanwhile.length > 0)
    parts.push(`${report.storedMeanwhile.length} package(s) were stored while the copy ran`);
  return parts.join(', and ');
}

function printReport(report: StorageMigrationReport, config: Config, to: Kind): void {
  printLine(`from ${report.from.location}`);
  printLine(`to   ${report.to.location}`);
  for (const b of report.copied)
    printLine(`copied   ${b.sha256}  ${humanBytes(b.size)}${b.replaced ? '  (replaced a bad copy)' : ''}`);
  for (const b of report.skipped.filter((s) => s.verified)) printLine(`verified ${b.sha256}  already there, re-hashed`);
  for (const b of report.failed) printLine(`FAILED   ${b.sha256}  ${b.reason}`);
  for (const b of report.corrupt)
    printLine(`corrupt  ${b.sha256}  not copied${b.detail ? ` (${b.detail})` : ''}; store it again`);
  for (const b of report.missing) printLine(`missing  ${b.sha256}  not copied: the source does not have it either`);
  for (const b of report.notInCatalog)
    printLine(`unlisted ${b.sha256}  ${humanBytes(b.size)}  not copied: no package row (\`goldmirror gc\` removes it)`);
  for (const sha256 of report.storedMeanwhile) printLine(`new      ${sha256}  stored while this ran: run again`);
  printLine(
    `${report.packages} package(s) in the catalog: ${report.copied.length} copied (${humanBytes(report.copiedBytes)}), ` +
      `${report.skipped.length} already there, ${report.failed.length} failed, ` +
      `${report.corrupt.length + report.missing.length} corrupt or missing (not copied)` +
      (report.notInCatalog.length > 0 ? `; ${report.notInCatalog.length} unlisted file(s) left behind` : ''),
  );
  if (!report.ok) return;
  const unavailable = report.corrupt.length + report.missing.length;
  if (unavailable > 0)
    printLine('the packages marked corrupt or missing stay unavailable after the switch until stored again.');
  printLine(`every ${unavailable > 0 ? 'other ' : ''}package is in ${report.to.location}.`);
  printLine('');
  printLine('next:');
  printLine('  1. stop uploads (or every goldmirror on this data directory) and run this command once more:');
  printLine('     it copies only what was stored meanwhile;');
  const dataDir = path.resolve(config.dataDir);
  if (to === 's3') {
    printLine('  2. set MIRROR_STORAGE=s3 (keep the MIRROR_S3_* settings) for every process and node,');
    printLine('     and restart every goldmirror process;');
  } else {
    printLine('  2. set MIRROR_STORAGE=fs (the MIRROR_S3_* settings are then unused) for every process and node,');
    printLine(
      `     each with MIRROR_DATA_DIR=${dataDir} (shared, if there are several), and restart every goldmirror process;`,
    );
  }
  printLine('  3. run `goldmirror doctor` once.');
  printLine(`${report.from.location} is no longer read after that; delete its blobs once downloads work.`);
}

/** One line on stderr, rewritten in place, only for a terminal. */
function progressPrinter(): { show: (p: StorageMigrationProgress) => void; done: () => void } {
  if (!process.stderr.isTTY) return { show: () => undefined, done: () => undefined };
  let last = 0;
  let shown = false;
  return {
    show(p) {
      const now = Date.now();
      if (now - last < 250 && p.bytesDone !== 0 && p.bytesDone !== p.size) return;
      last = now;
      shown = true;
      const pct = p.size > 0 ? ` (${((p.bytesDone / p.size) * 100).toFixed(0)}%)` : '';
      const verb = p.doing === 'copy' ? 'copying' : 're-hashing';
      process.stderr.write(
        `\r\x1b[K[${p.index}/${p.total}] ${verb} ${p.sha256.slice(0, 12)}…: ${humanBytes(p.bytesDone)} of ${humanBytes(p.size)}${pct}`,
      );
    },
    done() {
      if (shown) process.stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}
