/** What every CLI command receives: its own arguments and a lazily opened runtime. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig, type Config } from '../../config/load.js';
import { createLogger } from '../log.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { AppError } from '../errors.js';

export interface GlobalOptions {
  config?: string | undefined;
  dataDir?: string | undefined;
}

export interface CommandContext {
  args: string[];
  globals: GlobalOptions;
  env: NodeJS.ProcessEnv;
  loadConfig(overrides?: Record<string, unknown>): Config;
  /** Opens store and database; the caller must close() it. Commands log warnings only unless `verbose`. */
  openRuntime(config?: Config, options?: { verbose?: boolean }): Promise<Runtime>;
  /** Runs `fn` with a runtime opened for it (with `config`, else the loaded one) and closes it after, whatever happens. */
  withRuntime<T>(fn: (runtime: Runtime) => Promise<T>, config?: Config): Promise<T>;
}

export interface Command {
  summary: string;
  usage: string;
  run(ctx: CommandContext): Promise<number | void>;
}

type CommandOptions = NonNullable<ParseArgsConfig['options']>;

/** A command's arguments once parsed: its options, its positionals, and the subcommand it was given ('' if none). */
export type ParsedCommand<T extends CommandOptions> = ReturnType<typeof parseCommandArgs<T>> & { subcommand: string };

/** A command declared by its help, its options and positional count, and what it does once they are parsed. */
export interface CommandSpec<T extends CommandOptions> {
  summary: string;
  usage: string;
  /** The first argument must be one of these, and the rest are the subcommand's; absent: no subcommands. */
  subcommands?: readonly string[];
  options: T;
  arity?: Arity;
  run(ctx: CommandContext, args: ParsedCommand<T>): Promise<number | void>;
}

/** Every command parses its arguments here first, so usage errors come before anything is opened. */
export function defineCommand<T extends CommandOptions>(spec: CommandSpec<T>): Command {
  return {
    summary: spec.summary,
    usage: spec.usage,
    async run(ctx) {
      const [first = '', ...rest] = ctx.args;
      if (spec.subcommands && !spec.subcommands.includes(first))
        throw new AppError('USAGE', `expected one of: ${spec.subcommands.join(', ')}\nusage: ${spec.usage}`);
      const [subcommand, args] = spec.subcommands ? [first, rest] : ['', ctx.args];
      return spec.run(ctx, { ...parseCommandArgs(args, spec.options, spec.arity), subcommand });
    },
  };
}

export function createContext(args: string[], globals: GlobalOptions, env: NodeJS.ProcessEnv): CommandContext {
  const load = (overrides: Record<string, unknown> = {}): Config =>
    loadConfig({ configPath: globals.config, env, overrides: { dataDir: globals.dataDir, ...overrides } });
  const open = (config = load(), options: { verbose?: boolean } = {}): Promise<Runtime> => {
    // One-shot commands log warnings only: their output is the result.
    const level =
      options.verbose || config.logLevel === 'silent' || config.logLevel === 'error' ? config.logLevel : 'warn';
    return openRuntime(config, createLogger(level));
  };
  return {
    args,
    globals,
    env,
    loadConfig: load,
    openRuntime: open,
    async withRuntime(fn, config) {
      const runtime = await open(config);
      try {
        return await fn(runtime);
      } finally {
        await runtime.close();
      }
    },
  };
}

/** An option that takes a value, and one that is a flag (false unless given), for parseCommandArgs. */
export const STRING = { type: 'string' } as const;
export const FLAG = { type: 'boolean', default: false } as const;
/** The --json flag most commands take. */
export const JSON_FLAG = { json: FLAG } as const;

/** How many positional arguments a command takes, and the usage error when it gets another number. */
export type Arity = [count: number, message: string];

/** parseArgs with goldmirror's conventions: strict, and usage errors (options, or positionals against `arity`) as USAGE AppErrors. */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  arity?: Arity,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>> {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new AppError('USAGE', (err as Error).message);
  }
  if (arity && parsed.positionals.length !== arity[0]) throw new AppError('USAGE', arity[1]);
  return parsed;
}

/** Options that only some subcommands take, refused elsewhere so that a misplaced one is never silently ignored. */
export function refuseOptions(values: Record<string, unknown>, options: readonly string[], subcommand: string): void {
  const given = options.find((o) => values[o] !== undefined);
  if (given !== undefined) throw new AppError('USAGE', `--${given} does not go with ${subcommand}`);
}
