/** `goldmirror updates`: the Parallels Desktop versions this mirror follows upstream or was given, and its feed. */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { AppError } from '../../errors.js';
import { humanBytes } from '../../format.js';
import { cliActor } from '../../services/audit.js';
import { versionProblem } from '../../services/pd-updates/feed.js';
import { syncUpdates, type UpdatesSyncReport } from '../../services/pd-updates/sync.js';
import {
  addUpdateFile,
  FEED_PATH,
  listUpdates,
  majorFeedPath,
  publishUpdate,
  resolveUpdateAlert,
  rollbackUpdate,
  unpublishUpdate,
  type FeedStatus,
  type UpdateView,
} from '../../services/pd-updates/versions.js';
import { JSON_FLAG, STRING, defineCommand, refuseOptions, type CommandContext } from '../context.js';
import { printJson, printLine, table } from '../output.js';
import { cliPublicAddress, NOT_READY } from '../public-address.js';
import { describeErrno } from './blobs.js';

const USAGE =
  'goldmirror updates sync [--json]   (reads MIRROR_PD_UPDATES_UPSTREAM now; exit 1 when a feed or a file failed)\n' +
  '       goldmirror updates list [--json]\n' +
  '       goldmirror updates publish|unpublish VERSION [--json]   (VERSION like 26.3.3-57507)\n' +
  '       goldmirror updates rollback VERSION [--json]   (publishes VERSION, unpublishes every newer one of its major)\n' +
  '       goldmirror updates alert VERSION --keep|--take [--json]   (closes the alert: keep the stored file, or take the new bytes)\n' +
  '       goldmirror updates add FILE.dmg --version VERSION [--codename NAME] [--ancestor UUID ...] ' +
  '[--locale en_US] [--publish] [--json]';

/** Options of `add` only (refuseOptions turns them away from the other subcommands). */
const ADD_OPTIONS = ['version', 'codename', 'ancestor', 'locale', 'publish'] as const;
/** Options of `alert` only. */
const ALERT_OPTIONS = ['keep', 'take'] as const;

const READ_CHUNK_BYTES = 1 << 20;

/** The same check as the service's, made before the catalog is opened. */
function requireVersionText(text: string, what: string): string {
  const problem = versionProblem(text);
  if (problem) throw new AppError('VALIDATION_FAILED', `${what}${problem}`);
  return text;
}

export const updatesCommand = defineCommand({
  summary: 'Parallels Desktop updates: follow the official feed, publish versions, add a .dmg by hand',
  usage: USAGE,
  subcommands: ['sync', 'list', 'publish', 'unpublish', 'rollback', 'alert', 'add'],
  options: {
    ...JSON_FLAG,
    version: STRING,
    codename: STRING,
    ancestor: { type: 'string', multiple: true },
    locale: STRING,
    // No default, so that refuseOptions can tell whether it was given.
    publish: { type: 'boolean' },
    keep: { type: 'boolean' },
    take: { type: 'boolean' },
  },
  async run(ctx, { values, positionals, subcommand: name }) {
    if (name !== 'add') refuseOptions(values, ADD_OPTIONS, `updates ${name}`);
    if (name !== 'alert') refuseOptions(values, ALERT_OPTIONS, `updates ${name}`);
    if (name === 'alert' && values.keep === values.take)
      throw new AppError('USAGE', 'updates alert needs one of --keep (the stored file) or --take (the new bytes)');
    if (name === 'sync' || name === 'list') {
      if (positionals.length) throw new AppError('USAGE', `updates ${name} takes no arguments`);
    } else if (name === 'add') {
      if (positionals.length !== 1) throw new AppError('USAGE', 'updates add takes exactly one FILE.dmg');
    } else if (positionals.length !== 1) throw new AppError('USAGE', `updates ${name} takes exactly one VERSION`);

    if (name === 'sync') {
      const config = ctx.loadConfig();
      if (config.pdUpdatesUpstream.length === 0)
        throw new AppError(
          'USAGE',
          'updates sync needs an upstream feed: set MIRROR_PD_UPDATES_UPSTREAM (e.g. ' +
            'https://update.parallels.com/desktop/v26/parallels/parallels_updates.xml); ' +
            'a mirror without one takes files by hand (goldmirror updates add FILE.dmg --version VERSION)',
        );
      return ctx.withRuntime(async (runtime) => {
        const report = await syncUpdates(runtime.ingestDeps, {
          feeds: config.pdUpdatesUpstream,
          autoPublish: config.pdUpdatesAutoPublish,
          actor: cliActor,
        });
        const failed = report.feeds.some((f) => !f.ok) || report.failed.length > 0;
        if (values.json) printJson(report);
        else printSyncReport(report);
        return failed ? 1 : 0;
      }, config);
    }

    if (name === 'list') {
      return ctx.withRuntime(async (runtime) => {
        // The note (no public address) or warning (one Macs cannot reach) goes to stderr, as for package links.
        await cliPublicAddress(runtime);
        const overview = await listUpdates(runtime);
        if (values.json) return printJson(overview);
        printVersions(overview.versions);
        printUpstream(overview.upstream, runtime.config.pdUpdatesUpstream);
        printFeedUrl(overview.feedUrl, overview.versions);
      });
    }

    if (name === 'add') return addCommand(ctx, positionals[0]!, values);

    const version = requireVersionText(positionals[0]!, '');
    return ctx.withRuntime(async (runtime) => {
      if (name === 'alert') {
        const view = await resolveUpdateAlert(runtime, cliActor, version, { take: values.take === true });
        if (values.json) return printJson(view);
        printLine(
          values.take
            ? `${view.version} now uses ${view.sha256}: ${stateText(view)}`
            : `${view.version} keeps ${view.sha256}; the alert is closed`,
        );
        return;
      }
      if (name === 'rollback') {
        const result = await rollbackUpdate(runtime, cliActor, version);
        if (values.json) return printJson(result);
        printLine(`rolled back to ${result.version.version}: ${stateText(result.version)}`);
        printLine(
          result.unpublished.length
            ? `unpublished (newer): ${result.unpublished.join(', ')}`
            : 'no newer version was published',
        );
        return;
      }
      const view =
        name === 'publish'
          ? await publishUpdate(runtime, cliActor, version)
          : await unpublishUpdate(runtime, cliActor, version);
      if (values.json) return printJson(view);
      printLine(`${view.version}: ${stateText(view)}`);
      if (name === 'unpublish') printLine('its file stays stored until garbage collection may remove it');
    });
  },
});

interface AddValues {
  version?: string | undefined;
  codename?: string | undefined;
  ancestor?: string[] | undefined;
  locale?: string | undefined;
  publish?: boolean | undefined;
  json: boolean;
}

async function addCommand(ctx: CommandContext, file: string, values: AddValues): Promise<void> {
  if (!file.toLowerCase().endsWith('.dmg'))
    throw new AppError(
      'USAGE',
      `${file} is not a .dmg: updates add takes the Parallels Desktop installer (ParallelsDesktop-VERSION.dmg)`,
    );
  if (values.version === undefined)
    throw new AppError('USAGE', 'updates add needs --version VERSION (e.g. --version 26.3.3-57507)');
  requireVersionText(values.version, '--version ');
  const handle = await fs.open(file, 'r').catch((err: unknown) => {
    throw new AppError('FILE_UNREADABLE', `cannot read ${file}: ${describeErrno(err)}`);
  });
  try {
    if (!(await handle.stat()).isFile()) throw new AppError('FILE_UNREADABLE', `${file} is not a regular file`);
    await ctx.withRuntime(async (runtime) => {
      const source = createReadStream('', { fd: handle, highWaterMark: READ_CHUNK_BYTES, autoClose: false });
      const view = await addUpdateFile({ ...runtime.ingestDeps, config: runtime.config }, cliActor, {
        source,
        what: file,
        version: values.version!,
        codename: values.codename,
        ancestors: values.ancestor,
        locale: values.locale,
        publish: values.publish === true,
      });
      // After the store, so that a refused file's error is the only line on stderr.
      await cliPublicAddress(runtime);
      if (values.json) return printJson(view);
      printLine(`stored: ${file} as Parallels Desktop ${view.version}${view.codename ? ` (${view.codename})` : ''}`);
      printLine(`sha256: ${view.sha256 ?? '?'}`);
      printLine(`size:   ${view.size ?? 0} bytes (${humanBytes(view.size ?? 0)})`);
      printLine(`state:  ${stateText(view)}`);
      printLine(`url:    ${view.link ?? NOT_READY}`);
    });
  } finally {
    await handle.close();
  }
}

/** One word for where a version stands, with what an admin can do next. */
function stateText(v: UpdateView): string {
  const damaged = v.blobState !== null && v.blobState !== 'ok' ? `; the stored file is ${v.blobState}` : '';
  if (v.published) return `published (in the served feed)${damaged}`;
  switch (v.state) {
    case 'stored':
      return `available, not published (publish with: goldmirror updates publish ${v.version})${damaged}`;
    case 'waiting':
      return 'waiting (not downloaded yet; run goldmirror updates sync)';
    case 'failed':
      return `failed (${v.fetchError ?? 'unknown error'})`;
    default:
      return 'collected (garbage collection removed its file)';
  }
}

function shortState(v: UpdateView): string {
  const state = v.published ? 'published' : v.state === 'stored' ? 'available' : v.state;
  return v.blobState !== null && v.blobState !== 'ok' ? `${state} (${v.blobState})` : state;
}

function printSyncReport(report: UpdatesSyncReport): void {
  for (const feed of report.feeds) {
    if (!feed.ok) {
      printLine(`feed ${feed.url}: error: ${feed.error ?? 'unknown error'} (its versions stay as they were)`);
      continue;
    }
    const added = feed.added.length ? `; new: ${feed.added.join(', ')}` : '';
    printLine(`feed ${feed.url}: ok, lists ${feed.versions.length} version(s)${added}`);
    for (const skipped of feed.skipped) printLine(`  skipped: ${skipped}`);
  }
  printLine(`fetched: ${report.fetched.length ? report.fetched.join(', ') : 'nothing new'}`);
  for (const f of report.failed) printLine(`failed: ${f.version}: ${f.error}`);
  for (const a of report.alerts) printLine(`ALERT: ${a.version}: ${a.message}`);
  if (report.published.length) printLine(`published automatically: ${report.published.join(', ')}`);
  const waiting = report.fetched.filter((v) => !report.published.includes(v));
  if (waiting.length) printLine(`publish with: goldmirror updates publish ${waiting[0]!}`);
  const feedsFailed = report.feeds.filter((f) => !f.ok).length;
  if (feedsFailed || report.failed.length)
    process.stderr.write(
      `goldmirror: ${feedsFailed} feed(s) and ${report.failed.length} file(s) failed; the next sync tries again\n`,
    );
}

function printVersions(versions: UpdateView[]): void {
  if (!versions.length) {
    printLine(
      'no Parallels Desktop versions yet; set MIRROR_PD_UPDATES_UPSTREAM and run goldmirror updates sync, ' +
        'or add a file with: goldmirror updates add FILE.dmg --version VERSION',
    );
    return;
  }
  printLine(
    table([
      ['VERSION', 'CODENAME', 'STATE', 'SIZE', 'SHA256', 'DOWNLOADS', 'NOTES'],
      ...versions.map((v) => [
        v.version,
        v.codename || '-',
        shortState(v),
        v.size === null ? '-' : humanBytes(v.size),
        v.sha256 ?? '-',
        String(v.downloads),
        [v.alert ? 'ALERT' : '', v.notes.length ? `${v.notes.length} note(s)` : ''].filter(Boolean).join(', ') || '-',
      ]),
    ]),
  );
  for (const v of versions) {
    if (v.alert) printLine(`ALERT ${v.version}: ${v.alert}`);
    for (const note of v.notes) printLine(`note ${v.version}: ${note}`);
    if (v.state === 'failed') printLine(`failed ${v.version}: ${v.fetchError ?? 'unknown error'}`);
  }
}

function printUpstream(feeds: FeedStatus[], configured: readonly string[]): void {
  const urls = [...new Set([...configured, ...feeds.map((f) => f.url)])];
  if (!urls.length) return printLine('upstream: none (MIRROR_PD_UPDATES_UPSTREAM is empty; files are added by hand)');
  for (const url of urls) {
    const feed = feeds.find((f) => f.url === url);
    const followed = configured.includes(url) ? '' : ' (no longer in MIRROR_PD_UPDATES_UPSTREAM)';
    if (!feed?.checkedAt) {
      printLine(`upstream ${url}: not read yet (run goldmirror updates sync)${followed}`);
      continue;
    }
    const status = feed.error
      ? `error at ${feed.checkedAt}: ${feed.error}; last good read ${feed.okAt ?? 'never'}`
      : `ok, checked ${feed.checkedAt}`;
    const skipped = feed.skipped.length ? `; ${feed.skipped.length} entry(ies) skipped` : '';
    printLine(`upstream ${url}: ${status}${skipped}${followed}`);
  }
}

function printFeedUrl(feedUrl: string | null, versions: UpdateView[]): void {
  if (feedUrl === null) return printLine(`feed URL for the Macs: ${NOT_READY}`);
  printLine(`feed URL for the Macs: ${feedUrl}`);
  const base = feedUrl.slice(0, -FEED_PATH.length);
  const majors = [...new Set(versions.filter((v) => v.published).map((v) => v.major))].sort((a, b) => b - a);
  for (const major of majors) printLine(`  only version ${major}: ${base}${majorFeedPath(major)}`);
  printLine(
    'point the Macs at it as the administrator\'s guide describes ("Configuring Individual Macs"), ' +
      "or with updates_url in the autodeploy package's deploy.cfg",
  );
}
