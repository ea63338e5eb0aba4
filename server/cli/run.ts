// Process entry: runs the CLI and exits with its code.
import { main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`goldmirror: error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
