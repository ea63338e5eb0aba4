#!/usr/bin/env node
// Runs the compiled CLI. `npm install` builds it (the prepare script); from a
// source checkout without a build, run `npm run build` first.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/server/cli/run.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('goldmirror: not built yet; run `npm run build` in the goldmirror directory\n');
  process.exit(1);
}
await import(entry.href);
