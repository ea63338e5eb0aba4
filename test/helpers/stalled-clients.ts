/**
 * Clients that stop reading, in their own process so that their receive buffers do not count against the server's
 * memory in the test that measures it. Usage: `stalled-clients.ts PORT PATH COUNT plain|tls`.
 *
 * Prints `ready` once every socket has sent its GET and paused. On the line `read K` on stdin it reads the first K
 * responses to the end and prints one JSON line with their status, length and sha256, then closes every socket.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import readline from 'node:readline';
import tls from 'node:tls';

interface Answer {
  status: number;
  length: number;
  sha256: string;
}

const [port, urlPath, count, mode] = process.argv.slice(2);

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      mode === 'tls'
        ? tls.connect({ port: Number(port), host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(socket))
        : net.connect({ port: Number(port), host: '127.0.0.1' }, () => resolve(socket));
    socket.once('error', reject);
  });
}

function readResponse(socket: net.Socket): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    let status = 0;
    let length = -1;
    let got = 0;
    const hash = createHash('sha256');
    socket.on('data', (chunk: Buffer) => {
      if (length < 0) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        status = Number(text.slice(9, 12));
        length = Number(/\r\ncontent-length: (\d+)/i.exec(text)?.[1]);
        chunk = head.subarray(end + 4);
      }
      hash.update(chunk);
      got += chunk.length;
      if (got >= length) resolve({ status, length: got, sha256: hash.digest('hex') });
    });
    socket.on('error', reject);
    socket.resume();
  });
}

const sockets: net.Socket[] = [];
for (let i = 0; i < Number(count); i += 1) {
  const socket = await connect();
  socket.pause();
  socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  sockets.push(socket);
}
process.stdout.write('ready\n');

for await (const line of readline.createInterface({ input: process.stdin })) {
  const match = /^read (\d+)$/.exec(line);
  if (!match) continue;
  const answers = await Promise.all(sockets.slice(0, Number(match[1])).map(readResponse));
  process.stdout.write(`${JSON.stringify(answers)}\n`);
  for (const socket of sockets) socket.destroy();
  process.exit(0);
}
