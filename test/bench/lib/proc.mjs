#!/usr/bin/env node
// Small /proc helpers for test/bench/run.sh (Linux only).
//
//   node proc.mjs port                  print a free TCP port on 127.0.0.1
//   node proc.mjs cpu PID               CPU seconds (utime+stime) of PID and all its descendants
//   node proc.mjs rss PID               current VmRSS (KiB) of PID and all its descendants
//   node proc.mjs count PID             how many processes PID and its descendants are
//   node proc.mjs busy [MS]             cores kept busy by the whole machine over MS ms (default 1000)
//   node proc.mjs watch PID OUT [MS]    sample the tree's VmRSS every MS ms (default 100) until
//                                       SIGTERM/SIGINT (or 30 min), then write
//                                       {"peak_kib":N,"samples":N,"last_kib":N} to OUT
import fs from 'node:fs';
import net from 'node:net';
import { execFileSync } from 'node:child_process';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Fields of /proc/PID/stat after the command name, so field 3 (state) is index 0. */
function statFields(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** PID plus every live descendant (walks the ppid links of all processes). */
function tree(root) {
  const children = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let ppid;
    try {
      ppid = Number(statFields(name)[1]);
    } catch {
      continue; // exited meanwhile
    }
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(name));
  }
  const out = [];
  const todo = [Number(root)];
  while (todo.length > 0) {
    const pid = todo.pop();
    out.push(pid);
    for (const child of children.get(pid) ?? []) todo.push(child);
  }
  return out;
}

function cpuSeconds(root) {
  let ticks = 0;
  for (const pid of tree(root)) {
    try {
      const f = statFields(pid);
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {
      // exited meanwhile
    }
  }
  return ticks / CLK_TCK;
}

function rssKib(pids) {
  let kib = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {
      // exited meanwhile
    }
  }
  return kib;
}

function needPid(value) {
  if (!/^\d+$/.test(value ?? '') || !fs.existsSync(`/proc/${value}`)) {
    process.stderr.write(`proc.mjs: no such process: ${value}\n`);
    process.exit(2);
  }
  return Number(value);
}

const [cmd, ...args] = process.argv.slice(2);
switch (cmd) {
  case 'port': {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => process.stdout.write(`${port}\n`));
    });
    break;
  }
  case 'cpu':
    process.stdout.write(`${cpuSeconds(needPid(args[0])).toFixed(2)}\n`);
    break;
  case 'rss':
    process.stdout.write(`${rssKib(tree(needPid(args[0])))}\n`);
    break;
  case 'count':
    process.stdout.write(`${tree(needPid(args[0])).length}\n`);
    break;
  case 'busy': {
    const snap = () => {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      const idle = f[3] + (f[4] ?? 0); // idle + iowait
      return { idle, total: f.reduce((a, b) => a + b, 0) };
    };
    const ms = Number(args[0] ?? 1000);
    const a = snap();
    setTimeout(() => {
      const b = snap();
      const total = b.total - a.total;
      const cores = total > 0 ? (total - (b.idle - a.idle)) / CLK_TCK / (ms / 1000) : 0;
      process.stdout.write(`${cores.toFixed(2)}\n`);
    }, ms);
    break;
  }
  case 'watch': {
    const pid = needPid(args[0]);
    const out = args[1];
    const everyMs = Number(args[2] ?? 100);
    if (!out) {
      process.stderr.write('usage: proc.mjs watch PID OUT [MS]\n');
      process.exit(2);
    }
    let peak = 0;
    let last = 0;
    let samples = 0;
    let pids = tree(pid);
    const sample = () => {
      if (samples % 10 === 0) pids = tree(pid); // pick up new workers now and then
      last = rssKib(pids);
      peak = Math.max(peak, last);
      samples += 1;
    };
    sample();
    const timer = setInterval(sample, everyMs);
    const finish = () => {
      clearInterval(timer);
      sample();
      fs.writeFileSync(out, `${JSON.stringify({ peak_kib: peak, samples, last_kib: last })}\n`);
      process.exit(0);
    };
    process.on('SIGTERM', finish);
    process.on('SIGINT', finish);
    setTimeout(finish, 30 * 60 * 1000).unref(); // bounded even if nobody stops it
    break;
  }
  default:
    process.stderr.write('usage: proc.mjs port | cpu PID | rss PID | count PID | busy [MS] | watch PID OUT [MS]\n');
    process.exit(2);
}
