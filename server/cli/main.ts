/**
 * `goldmirror` command line. Exit codes: 0 success, 1 the operation failed
 * (e.g. checksum mismatch), 2 bad usage or configuration; each AppError code
 * names its own in server/errors.ts.
 */
import { packageVersion } from '../version.js';
import { parseArgs } from 'node:util';
import { isError } from '../errors.js';
import { adminCommand, groupCommand, imageCommand, tokenCommand } from './commands/admin.js';
import { importCommand, listCommand } from './commands/blobs.js';
import { doctorCommand, gcCommand, verifyCommand } from './commands/maintenance.js';
import { exportCommand, fetchCommand, importBundleCommand, syncCommand } from './commands/bundles.js';
import { serveCommand } from './commands/serve.js';
import { migrateDbCommand } from './commands/database.js';
import { migrateStorageCommand } from './commands/storage.js';
import { settingsCommand } from './commands/settings.js';
import { replicaCommand, siteCommand } from './commands/sites.js';
import { updatesCommand } from './commands/updates.js';
import { createContext, type Command } from './context.js';

const commands: Record<string, Command> = {
  serve: serveCommand,
  import: importCommand,
  list: listCommand,
  image: imageCommand,
  group: groupCommand,
  token: tokenCommand,
  admin: adminCommand,
  verify: verifyCommand,
  gc: gcCommand,
  doctor: doctorCommand,
  export: exportCommand,
  'import-bundle': importBundleCommand,
  fetch: fetchCommand,
  sync: syncCommand,
  settings: settingsCommand,
  site: siteCommand,
  replica: replicaCommand,
  updates: updatesCommand,
  'migrate-db': migrateDbCommand,
  'migrate-storage': migrateStorageCommand,
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length)) + 2;
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}\n      ${c.usage}`);
  return [
    'usage: goldmirror [--config PATH] [--data-dir DIR] COMMAND [ARGS]',
    '',
    'commands:',
    ...lines,
    '',
    'Settings come from defaults < --config FILE (or MIRROR_CONFIG) < MIRROR_* environment variables.',
  ].join('\n');
}

/** Options that go before the command name. */
const GLOBAL_OPTIONS = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: GLOBAL_OPTIONS, allowPositionals: true, strict: false, tokens: true });
  } catch (err) {
    return fail(`error: ${(err as Error).message}`, 2);
  }
  // Global options are those before the command name; the rest belongs to the command.
  const commandToken = parsed.tokens.find((t) => t.kind === 'positional');
  const globalArgs = commandToken ? argv.slice(0, commandToken.index) : argv;
  const commandArgs = commandToken ? argv.slice(commandToken.index + 1) : [];
  let globals;
  try {
    globals = parseArgs({ args: globalArgs, options: GLOBAL_OPTIONS, strict: true }).values;
  } catch (err) {
    return fail(`error: ${(err as Error).message}\n${usage()}`, 2);
  }
  if (globals.version) {
    process.stdout.write(`${await packageVersion()}\n`);
    return 0;
  }
  const name = commandToken?.kind === 'positional' ? commandToken.value : undefined;
  if (globals.help || name === undefined || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined && !globals.help ? 2 : 0;
  }
  const command = commands[name];
  if (!command) return fail(`error: unknown command ${JSON.stringify(name)}\n${usage()}`, 2);
  if (commandArgs.includes('--help') || commandArgs.includes('-h')) {
    process.stdout.write(`usage: ${command.usage}\n`);
    return 0;
  }

  try {
    const ctx = createContext(commandArgs, { config: globals.config, dataDir: globals['data-dir'] }, env);
    return (await command.run(ctx)) ?? 0;
  } catch (err) {
    if (isError(err, 'USAGE')) return fail(`error: ${err.message}\nusage: ${command.usage}`, err.exitCode);
    if (isError(err)) return fail(`error: ${err.message}`, err.exitCode);
    if (isErrnoException(err)) return fail(`error: ${err.message}`, 1);
    return fail(`error: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, 1);
  }
}

function fail(message: string, code: number): number {
  process.stderr.write(`goldmirror: ${message}\n`);
  return code;
}

function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && 'syscall' in err;
}
