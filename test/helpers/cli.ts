/** Runs the real CLI (TypeScript sources through tsx) as a child process. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { withTestDatabase } from './database.js';
import { withTestStorage } from './s3.js';
import { waitFor } from './wait.js';

export const repoRoot = path.resolve(import.meta.dirname, '../..');
const entry = path.join(repoRoot, 'server/cli/run.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function cliArgs(args: string[]): string[] {
  return ['--import', 'tsx', entry, ...args];
}

/** Runs the CLI to its end; with `input`, that text is its stdin (a pipe, so not a TTY), then closed. */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  cwd = repoRoot,
  input?: string,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, cliArgs(args), {
      cwd,
      env: { ...process.env, ...withTestStorage(withTestDatabase(env)) },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    // Both are pipes (the stdio above); the typings cannot tell once the first entry is chosen at run time.
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}

export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, cliArgs(args), {
    cwd: repoRoot,
    env: { ...process.env, ...withTestStorage(withTestDatabase(env)) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Polls until `url` answers 200, or fails after timeoutMs. */
export async function waitForOk(url: string, timeoutMs = 20_000): Promise<void> {
  const ok = async (): Promise<boolean> => {
    try {
      return (await fetch(url)).status === 200;
    } catch {
      return false; // not listening yet
    }
  };
  await waitFor(ok, { what: `${url} to answer 200`, timeoutMs, intervalMs: 100 });
}
