/** Moving images between mirrors: export / import-bundle (tar), fetch (URL), sync (another goldmirror). */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { exportBundle } from '../../bundles/export.js';
import { buildManifest } from '../../services/bundle-manifest.js';
import { fetchIntoStore } from '../../bundles/fetch.js';
import { importBundle, type ImportReport } from '../../bundles/import.js';
import { syncFrom } from '../../bundles/sync.js';
import { AppError } from '../../errors.js';
import { cliDownloadUrl, NOT_READY } from '../public-address.js';
import { cliActor } from '../../services/audit.js';
import { UPDATE_SCOPES, type UpdateScope } from '../../services/pd-updates/carry.js';
import { parseSha256 } from '../../../storage/digest.js';
import { FLAG, JSON_FLAG, STRING, defineCommand } from '../context.js';
import { humanBytes } from '../../format.js';
import { printJson, printLine } from '../output.js';
import { describeErrno, printStored } from './blobs.js';

/** Progress on stderr, at most a few times a second, only to a terminal. */
function progressPrinter(label: string): (done: number, total: number | null) => void {
  if (!process.stderr.isTTY) return () => undefined;
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (now - last < 250 && done !== total) return;
    last = now;
    const pct = total ? ` (${((done / total) * 100).toFixed(1)}%)` : '';
    process.stderr.write(`\r${label}: ${humanBytes(done)}${total ? ` of ${humanBytes(total)}` : ''}${pct}   `);
    if (done === total) process.stderr.write('\n');
  };
}

export const exportCommand = defineCommand({
  summary:
    'write images, groups and their packages, and the published Parallels Desktop versions, to a tar bundle (- for stdout)',
  usage: 'goldmirror export OUT.tar|- [--image NAME_OR_ID ...] [--no-blobs] [--updates published|all|none]',
  options: { image: { type: 'string', multiple: true }, 'no-blobs': FLAG, updates: STRING },
  arity: [1, 'export takes exactly one OUT path (or - for stdout)'],
  async run(ctx, { values, positionals }) {
    const out = positionals[0]!;
    const updates = values.updates;
    if (updates !== undefined && !(UPDATE_SCOPES as readonly string[]).includes(updates))
      throw new AppError('USAGE', `--updates takes ${UPDATE_SCOPES.join(', ')}, not ${JSON.stringify(updates)}`);
    return ctx.withRuntime(async (runtime) => {
      const manifest = await buildManifest(runtime, {
        images: values.image ?? [],
        includeBlobs: !values['no-blobs'],
        updates: updates as UpdateScope | undefined,
      });
      const stream = exportBundle(runtime.store, manifest);
      if (out === '-') {
        await pipeline(stream, process.stdout);
      } else {
        // Written beside the target and renamed at the end: a failed export never looks complete.
        const partial = `${out}.partial`;
        try {
          await pipeline(stream, createWriteStream(partial, { flags: 'w' }));
          await fs.rename(partial, out);
        } catch (err) {
          await fs.rm(partial, { force: true });
          throw err;
        }
        const bytes = manifest.includesBlobs ? manifest.blobs.reduce((n, b) => n + b.size, 0) : 0;
        const versions = manifest.updates?.length ?? 0;
        process.stderr.write(
          `exported ${manifest.images.length} image(s), ${manifest.groups.length} group(s), ` +
            (versions > 0 ? `${versions} Parallels Desktop version(s), ` : '') +
            `${manifest.includesBlobs ? `${manifest.blobs.length} ${versions > 0 ? 'file' : 'package'}(s) (${humanBytes(bytes)})` : `no ${versions > 0 ? 'files' : 'packages'}`} to ${out}\n`,
        );
      }
    });
  },
});

function printImportReport(report: ImportReport): void {
  const verb = report.dryRun ? 'would' : '';
  const line = (what: string, list: string[]) => list.length > 0 && printLine(`${what}: ${list.join(', ')}`);
  printLine(report.dryRun ? 'dry run: nothing was changed' : 'bundle imported');
  printLine(
    `packages: ${report.blobs.stored.length} stored, ${report.blobs.alreadyPresent.length} already present` +
      (report.dryRun ? `, ${report.blobs.verified.length} verified` : ''),
  );
  line(`${verb} create images`.trim(), report.images.created);
  line(`${verb} update images`.trim(), report.images.updated);
  line(`${verb} create groups`.trim(), report.groups.created);
  line(`${verb} update groups`.trim(), report.groups.updated);
  if (
    report.images.created.length +
      report.images.updated.length +
      report.groups.created.length +
      report.groups.updated.length ===
    0
  ) {
    printLine('images and groups: no changes');
  }
  const updates = report.updates;
  line(`${verb} add Parallels Desktop versions`.trim(), updates.created);
  line(`${verb} update Parallels Desktop versions`.trim(), updates.updated);
  line(`${verb} publish`.trim(), updates.published);
  line(`${verb} unpublish`.trim(), updates.unpublished);
}

export const importBundleCommand = defineCommand({
  summary: 'read a tar bundle (- for stdin): verify every package, then apply images and groups',
  usage: 'goldmirror import-bundle IN.tar|- [--dry-run] [--json]',
  options: { 'dry-run': FLAG, ...JSON_FLAG },
  arity: [1, 'import-bundle takes exactly one IN path (or - for stdin)'],
  async run(ctx, { values, positionals }) {
    const input = positionals[0]!;
    if (input !== '-') {
      const st = await fs.stat(input).catch((err: unknown) => {
        throw new AppError('FILE_UNREADABLE', `cannot read ${input}: ${describeErrno(err)}`);
      });
      if (!st.isFile()) throw new AppError('FILE_UNREADABLE', `${input} is not a regular file`);
    }
    return ctx.withRuntime(async (runtime) => {
      const source = input === '-' ? process.stdin : createReadStream(input, { highWaterMark: 1 << 20 });
      const report = await importBundle(runtime.ingestDeps, source, {
        dryRun: values['dry-run'],
        actor: cliActor,
        onProgress: (bytes) => progressPrinter('packages')(bytes, null),
      });
      if (values.json) printJson(report);
      else printImportReport(report);
    });
  },
});

export const fetchCommand = defineCommand({
  summary: 'download a .pvmp from an HTTP(S) URL into the store (resumes, verifies)',
  usage: 'goldmirror fetch URL [--sha256 HEX | --checksum-url URL] [--json]',
  options: { sha256: STRING, 'checksum-url': STRING, ...JSON_FLAG },
  arity: [1, 'fetch takes exactly one URL'],
  async run(ctx, { values, positionals }) {
    if (values.sha256 !== undefined && values['checksum-url'] !== undefined)
      throw new AppError('USAGE', 'give either --sha256 or --checksum-url, not both');
    const expected = values.sha256 !== undefined ? parseSha256(values.sha256, '--sha256') : undefined;
    return ctx.withRuntime(async (runtime) => {
      const { blob, created } = await fetchIntoStore(runtime.ingestDeps, positionals[0]!, {
        expectedSha256: expected,
        checksumUrl: values['checksum-url'],
        onProgress: progressPrinter('downloading'),
      });
      const url = await cliDownloadUrl(runtime, blob);
      if (values.json) return printJson({ sha256: blob.sha256, size: blob.size, url, name: blob.name, created });
      printStored(positionals[0]!, blob, created);
      printLine(`url:    ${url ?? NOT_READY}`);
    });
  },
});

export const syncCommand = defineCommand({
  summary: "copy another goldmirror's images, groups and missing packages (resumable, idempotent)",
  usage: 'goldmirror sync --from URL --token TOKEN [--json]',
  options: { from: STRING, token: STRING, ...JSON_FLAG },
  arity: [0, 'sync takes no positional arguments'],
  async run(ctx, { values }) {
    const config = ctx.loadConfig();
    const from = values.from ?? config.syncFrom;
    const token = values.token ?? (config.syncToken || ctx.env.MIRROR_SYNC_TOKEN);
    if (!from || !token)
      throw new AppError(
        'USAGE',
        'sync needs --from URL and --token TOKEN (or MIRROR_SYNC_FROM and MIRROR_SYNC_TOKEN)',
      );
    return ctx.withRuntime(async (runtime) => {
      const report = await syncFrom(runtime.ingestDeps, {
        from,
        token,
        actor: cliActor,
        onBlob: (sha, done, total) => progressPrinter(`package ${sha.slice(0, 12)}`)(done, total),
      });
      if (values.json) return printJson(report);
      printLine(`synced from ${report.from}: ${report.fetched.length} package(s) downloaded`);
      printImportReport(report.import);
    }, config);
  },
});
