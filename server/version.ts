/** goldmirror's own version, from its package.json (a source checkout or the built dist/). */
import { readFile } from 'node:fs/promises';

let cached: Promise<string> | null = null;

export function packageVersion(): Promise<string> {
  return (cached ??= readVersion());
}

async function readVersion(): Promise<string> {
  // server/ in a source checkout, dist/server/ when built.
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(await readFile(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'goldmirror' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return 'unknown';
}
