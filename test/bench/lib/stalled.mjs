#!/usr/bin/env node
// Phase (e) of test/bench/run.sh: clients that request the whole file and never read.
//
//   node stalled.mjs URL PID CLIENTS OUT
//
// Opens CLIENTS connections to URL (loopback), each sending one GET and never
// reading a byte, from source addresses 127.0.1.1, 127.0.1.2, … (at most 16
// connections per address, so a per-client cap of 16 is not what is measured).
// Waits until every connection has response bytes queued in the kernel (the
// server is streaming to it) and the server's RSS (PID and its descendants)
// settles, all bounded by 60 s, then writes
//   {"clients":N,"streaming":N,"rss_before_kib":N,"rss_after_kib":N,"rss_peak_kib":N,"seconds":N}
// to OUT and closes every connection. Linux only (/proc, ss).
import fs from 'node:fs';
import net from 'node:net';
import { execFileSync } from 'node:child_process';

const [url, pidArg, clientsArg, out] = process.argv.slice(2);
if (!url || !pidArg || !clientsArg || !out) {
  process.stderr.write('usage: stalled.mjs URL PID CLIENTS OUT\n');
  process.exit(2);
}
const target = new URL(url);
const port = Number(target.port);
const clients = Number(clientsArg);
const PER_ADDRESS = 16;
const DEADLINE_MS = 60_000;
const started = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** PID plus its live descendants (nginx workers). */
function tree(root) {
  const children = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  const all = [];
  const todo = [Number(root)];
  while (todo.length) {
    const pid = todo.pop();
    all.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return all;
}
function rssKib(pids) {
  let kib = 0;
  for (const pid of pids) {
    try {
      kib += Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return kib;
}
/** Server-side connections on the port with bytes waiting in their send queue. */
function streaming() {
  const text = execFileSync('ss', ['-tnH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return text.split('\n').filter((l) => l.trim() !== '' && Number(l.trim().split(/\s+/)[1]) > 0).length;
}

const pids = tree(pidArg);
const before = rssKib(pids);
let peak = before;
const sockets = [];
const request = `GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nUser-Agent: goldmirror-bench-stalled\r\n\r\n`;
for (let i = 0; i < clients; i += 1) {
  const n = Math.floor(i / PER_ADDRESS) + 1;
  const socket = net.connect({ port, host: target.hostname, localAddress: `127.0.${1 + (n >> 8)}.${n & 255}` });
  socket.on('error', () => undefined);
  socket.pause(); // never started reading: every byte the server sends stays in the kernel
  socket.write(request);
  sockets.push(socket);
  if (i % 100 === 99) {
    await sleep(5);
    peak = Math.max(peak, rssKib(pids));
  }
}
let live = 0;
while (Date.now() - started < DEADLINE_MS) {
  live = streaming();
  peak = Math.max(peak, rssKib(pids));
  if (live >= clients) break;
  await sleep(200);
}
// Settle: RSS stable (within 1 MiB) over a second, bounded by the deadline.
let last = rssKib(pids);
while (Date.now() - started < DEADLINE_MS) {
  await sleep(1000);
  const now = rssKib(pids);
  peak = Math.max(peak, now);
  if (Math.abs(now - last) < 1024) break;
  last = now;
}
const after = rssKib(pids);
const result = {
  clients,
  streaming: streaming(),
  rss_before_kib: before,
  rss_after_kib: after,
  rss_peak_kib: Math.max(peak, after),
  seconds: (Date.now() - started) / 1000,
};
for (const socket of sockets) socket.destroy();
fs.writeFileSync(out, `${JSON.stringify(result)}\n`);
await sleep(500);
process.exit(0);
