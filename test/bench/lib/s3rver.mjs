#!/usr/bin/env node
// The S3 server of `run.sh --storage s3`: s3rver (the repository's dev dependency, an S3 emulator in Node that keeps
// objects as files) on 127.0.0.1 and a free port, with one bucket.
//
//   node s3rver.mjs DIR BUCKET
//
// Prints {"endpoint":"http://127.0.0.1:PORT","bucket":"BUCKET","version":"3.x"} on one line once it listens, and
// serves until SIGTERM or SIGINT. Objects go to DIR (credentials: S3RVER / S3RVER).
import fs from 'node:fs';
import { createRequire } from 'node:module';

const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) {
  process.stderr.write('usage: s3rver.mjs DIR BUCKET\n');
  process.exit(2);
}
const require = createRequire(import.meta.url);
let S3rver;
let version;
try {
  S3rver = (await import('s3rver')).default;
  version = JSON.parse(fs.readFileSync(require.resolve('s3rver/package.json'), 'utf8')).version;
} catch (err) {
  process.stderr.write(`s3rver.mjs: cannot load s3rver (a dev dependency: npm ci): ${err.message}\n`);
  process.exit(1);
}
fs.mkdirSync(directory, { recursive: true });
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: [{ name: bucket, configs: [] }],
});
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ endpoint: `http://127.0.0.1:${port}`, bucket, version })}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  server.httpServer?.closeAllConnections?.();
  await server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
