/**
 * Loads settings once: schema defaults < JSON file (`--config PATH` or
 * MIRROR_CONFIG; comments allowed) < MIRROR_* environment variables.
 * Every problem is collected and reported together (CONFIG_INVALID, the list in
 * its details); the result is frozen.
 */
import { readFileSync } from 'node:fs';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { AppError } from '../server/errors.js';
import { configSchema, envVars, keyKinds, type Config } from './schema.js';
import { parseBoolean, parseBytes, parseDuration, parseInteger } from './units.js';

export type { Config } from './schema.js';

export interface LoadOptions {
  /** Path from --config; falls back to env.MIRROR_CONFIG. */
  configPath?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Values that win over everything (command-line flags such as --bandwidth-limit). */
  overrides?: Record<string, unknown>;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const problems: string[] = [];
  // Where each key's value came from, so a schema error names the right thing.
  const origin = new Map<string, string>();
  const raw: Record<string, unknown> = {};

  const configPath = options.configPath ?? nonEmpty(env.MIRROR_CONFIG);
  if (configPath !== undefined) {
    for (const [key, value] of Object.entries(readConfigFile(configPath, problems))) {
      raw[key] = typeof value === 'string' ? convert(key, value, `${configPath}: ${key}`, problems) : value;
      origin.set(key, `${configPath}: ${key}`);
    }
  }
  for (const [name, { key }] of Object.entries(envVars)) {
    const text = env[name];
    if (text === undefined) continue;
    raw[key] = convert(key, text, name, problems);
    origin.set(key, name);
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    raw[key] = value;
    origin.set(key, `--${key}`);
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = String(issue.path[0] ?? '');
      if (issue.code === 'unrecognized_keys') {
        for (const unknown of issue.keys) problems.push(`${origin.get(unknown) ?? unknown}: unknown setting`);
        continue;
      }
      problems.push(`${origin.get(key) ?? key}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !result.success) {
    throw new AppError('CONFIG_INVALID', `invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
      problems,
    });
  }
  return Object.freeze(result.data);
}

function readConfigFile(file: string, problems: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    problems.push(`${file}: cannot read config file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    return {};
  }
  const errors: ParseError[] = [];
  const value: unknown = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    for (const e of errors) {
      const { line, column } = position(text, e.offset);
      problems.push(`${file}:${line}:${column}: ${printParseErrorCode(e.error)}`);
    }
    return {};
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${file}: must hold a JSON object`);
    return {};
  }
  return value as Record<string, unknown>;
}

/** Reads a textual value according to its key's kind; leaves unknown keys and plain strings alone. */
function convert(key: string, text: string, source: string, problems: string[]): unknown {
  const kind = keyKinds[key as keyof Config];
  const parsers: Record<string, (t: string) => unknown> = {
    int: parseInteger,
    bytes: parseBytes,
    duration: parseDuration,
    boolean: parseBoolean,
  };
  const parsed = kind && parsers[kind] ? parsers[kind](text) : text;
  if (parsed === null) {
    const what = {
      int: 'an integer',
      bytes: 'a byte count such as 1048576 or 10GiB',
      duration: 'a duration such as 30s, 24h or 7d',
      boolean: 'true or false',
    }[kind as string];
    problems.push(`${source}: must be ${what}, got ${JSON.stringify(text)}`);
    return undefined;
  }
  return parsed;
}

function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
