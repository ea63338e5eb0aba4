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
import { Readable } from 'node:stream';

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
// s3rver reads the end of `Range: bytes=0-0` as "to the end" (`end || Infinity`) and answers with the whole object,
// where S3 answers one byte; goldmirror's reader rightly refuses that, so a 1-byte range at 0 is cut to one byte here.
const getObject = server.store.getObject.bind(server.store);
server.store.getObject = async (bucketName, key, options) => {
  const object = await getObject(bucketName, key, options);
  if (options?.end !== 0 || options.start !== 0 || !object?.content || !object.range) return object;
  const whole = object.content;
  object.range = { start: 0, end: 0 };
  object.content = Readable.from(
    (async function* () {
      for await (const chunk of whole) {
        yield chunk.subarray(0, 1);
        break;
      }
    })(),
  );
  return object;
};
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
