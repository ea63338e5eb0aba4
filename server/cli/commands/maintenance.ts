/** Integrity checks and garbage collection from the command line. */
import { findBlobRecord } from '../../services/blobs.js';
import { parseSha256 } from '../../../storage/digest.js';
import { AppError } from '../../errors.js';
import type { CheckResult } from '../../jobs/integrity-checker.js';
import { cliActor } from '../../services/audit.js';
import { collectGarbage } from '../../services/gc.js';
import { runDoctor } from '../../services/doctor.js';
import { resolvePublicAddress } from '../../services/settings.js';
import { FLAG, JSON_FLAG, defineCommand } from '../context.js';
import { humanBytes } from '../../format.js';
import { printJson, printLine } from '../output.js';

export const verifyCommand = defineCommand({
  summary: 're-hash stored packages now (one, or all); a corrupt one is quarantined at once',
  usage: 'goldmirror verify SHA256 | --all [--json]',
  options: { all: FLAG, ...JSON_FLAG },
  async run(ctx, { values, positionals }) {
    if (values.all === positionals.length > 0 || positionals.length > 1)
      throw new AppError('USAGE', 'give one SHA256, or --all');
    return ctx.withRuntime(async (runtime) => {
      let results: Record<string, CheckResult>;
      if (values.all) {
        results = await runtime.checker.checkAll();
      } else {
        const sha256 = parseSha256(positionals[0]!, 'SHA256');
        if (!(await findBlobRecord(runtime, sha256)))
          throw new AppError('BLOB_UNKNOWN', `no package with sha256 ${sha256} is stored`, { sha256 });
        results = { [sha256]: await runtime.checker.check(sha256) };
      }
      if (values.json) printJson(results);
      else {
        if (Object.keys(results).length === 0) printLine('no packages stored');
        for (const [sha256, result] of Object.entries(results)) printLine(`${sha256}  ${result}`);
      }
      const bad = Object.values(results).filter((r) => r === 'corrupt' || r === 'missing').length;
      if (bad > 0 && !values.json)
        process.stderr.write(
          `goldmirror: ${bad} package(s) failed verification; their links answer 503 until re-imported\n`,
        );
      return bad > 0 ? 1 : 0;
    });
  },
});

const KEPT_BECAUSE = {
  grace: 'within the grace period',
  'in-use': 'a transfer is running',
  portal: 'retired, but the portal still sends Macs here: update the portal and mark it updated on the image page',
  downloaded: 'retired, but downloaded within the grace period',
  update: 'a Parallels Desktop update file that is published, listed upstream or among the newest kept',
} as const;

export const gcCommand = defineCommand({
  summary: 'remove packages no golden image uses (older than the grace period, not in use)',
  usage: 'goldmirror gc [--dry-run] [--json]',
  options: { 'dry-run': FLAG, ...JSON_FLAG },
  arity: [0, 'gc takes no arguments'],
  async run(ctx, { values }) {
    return ctx.withRuntime(async (runtime) => {
      const report = await collectGarbage(runtime, cliActor, {
        dryRun: values['dry-run'],
        graceMs: runtime.config.gcGraceMs,
        keepUpdates: runtime.config.pdUpdatesKeep,
      });
      if (values.json) return printJson(report);
      const verb = report.dryRun ? 'would remove' : 'removed';
      for (const r of report.removed)
        printLine(
          `${verb} ${r.sha256}  ${humanBytes(r.size)}${r.orphanFile ? '  (file without a database row)' : `  ${r.name}`}`,
        );
      for (const k of report.kept) printLine(`kept ${k.sha256}  (${KEPT_BECAUSE[k.reason]})`);
      printLine(`${verb} ${report.removed.length} package(s), ${humanBytes(report.freedBytes)}`);
    });
  },
});

export const doctorCommand = defineCommand({
  summary: 'check config, data dir, database, the bucket (S3), free space and blobs against the database',
  usage: 'goldmirror doctor [--json]',
  options: JSON_FLAG,
  arity: [0, 'doctor takes no arguments'],
  async run(ctx, { values }) {
    return ctx.withRuntime(async (runtime) => {
      const report = await runDoctor(runtime);
      if (values.json) {
        printJson(report);
      } else {
        printLine(`data dir:  ${report.dataDir.path} (${report.dataDir.writable ? 'writable' : 'NOT writable'})`);
        printLine(
          `database:  ${report.database.file}: ${report.database.integrity}, ${report.database.migrations.length} migrations`,
        );
        printLine(
          `           ${report.database.blobs} packages, ${report.database.images} images, ${report.database.groups} groups, ${report.database.users} users`,
        );
        const { storage } = report;
        const found =
          storage.blobs === null ? 'not listed' : `${storage.blobs} blob(s), ${humanBytes(storage.bytes ?? 0)}`;
        printLine(
          `storage:   ${storage.location}: ${storage.kind === 's3' ? `${storage.reachable ? 'reachable' : 'NOT reachable'}, ${storage.writable ? 'writable' : 'NOT writable'}, ` : ''}${found}`,
        );
        printLine(
          `disk:      ${humanBytes(report.disk.freeBytes)} free of ${humanBytes(report.disk.totalBytes)} (minimum ${humanBytes(report.disk.minFreeBytes)})${storage.kind === 's3' ? ', data dir' : ''}`,
        );
        printLine(
          `files:     ${report.files.orphaned.length} orphaned, ${report.files.missing.length} missing, ${report.files.wrongSize.length} wrong size, ` +
            `${report.files.tmpFiles} temp, ${report.files.quarantined} quarantined, ${report.files.unfinishedUploads} unfinished uploads`,
        );
        const address = await resolvePublicAddress(runtime);
        printLine(
          `public address: ${address.url ?? 'NOT SET (no download link is offered; goldmirror settings public-url URL)'}${address.source === 'config' ? ' (MIRROR_PUBLIC_URL)' : ''}`,
        );
        for (const warning of address.warnings) printLine(`           warning: ${warning}`);
        printLine(report.ok ? 'no problems found' : `problems:\n${report.problems.map((p) => `  - ${p}`).join('\n')}`);
        if (report.warnings.length > 0) printLine(`warnings:\n${report.warnings.map((w) => `  - ${w}`).join('\n')}`);
      }
      return report.ok ? 0 : 1;
    });
  },
});
