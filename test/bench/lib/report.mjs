#!/usr/bin/env node
// Turns the raw samples of test/bench/run.sh into the A/B report.
//
//   node report.mjs RUN_DIR OUT_DIR
//
// RUN_DIR holds samples.jsonl (one JSON object per measurement), checks.jsonl
// (correctness checks) and params.json (what run.sh measured with). Writes
// OUT_DIR/latest[-quick].{md,json} and a dated copy of both, and prints the
// markdown summary. Ratios are goldmirror / nginx; the headline figure is the
// median of the per-pair ratios (pair i = repetition i of both servers, run
// back to back in alternating order), which cancels most machine drift.
// With `--storage s3` a third server, goldmirror-s3 (the blob in s3rver), runs
// in every pair too, and is paired with nginx and with goldmirror (fs store).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const [runDir, outDir] = process.argv.slice(2);
if (!runDir || !outDir) {
  process.stderr.write('usage: report.mjs RUN_DIR OUT_DIR\n');
  process.exit(2);
}

const readJsonl = (file) =>
  fs.existsSync(file)
    ? fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l))
    : [];

const params = JSON.parse(fs.readFileSync(path.join(runDir, 'params.json'), 'utf8'));
/** goldmirror's `serve --workers` (1 = one process, as before the setting existed). */
const workers = params.workers ?? 1;
/** The goldmirror reading its blob from S3 (`--storage s3`), or null. */
const S = (params.targets ?? '').split(' ').includes('goldmirror-s3') ? 'goldmirror-s3' : null;
const samples = readJsonl(path.join(runDir, 'samples.jsonl')).map(derive);
const checks = readJsonl(path.join(runDir, 'checks.jsonl'));
const extras = readJsonl(path.join(runDir, 'extras.jsonl'));

/** Adds the derived figures (MB/s, req/s, ms, MiB, CPU per unit) to a raw sample from run.sh. */
function derive(s) {
  const d = { ...s };
  if (s.phase === 'a' || s.phase === 'b') {
    d.mbps = s.bytes / s.seconds / 1e6;
    d.cpu_s_per_gb = s.cpu_s / (s.bytes / 1e9);
    if (s.peak_rss_kib !== undefined) d.peak_rss_mib = s.peak_rss_kib / 1024;
    if (s.store_cpu_s !== undefined) d.store_cpu_s_per_gb = s.store_cpu_s / (s.bytes / 1e9);
    d.errors = 0;
  } else if (s.phase === 'e') {
    const st = s.stalled;
    d.clients = st.clients;
    d.streaming = st.streaming;
    d.rss_before_mib = st.rss_before_kib / 1024;
    d.rss_after_mib = st.rss_after_kib / 1024;
    d.added_rss_mib = (st.rss_after_kib - st.rss_before_kib) / 1024;
    d.added_kib_per_client = (st.rss_after_kib - st.rss_before_kib) / st.clients;
    d.errors = st.clients - st.streaming;
  } else if (s.wrk) {
    const w = s.wrk;
    const seconds = w.duration_us / 1e6;
    d.requests = w.requests;
    d.rps = w.requests / seconds;
    d.mbps = w.bytes / seconds / 1e6;
    d.bytes_per_request = w.requests ? w.bytes / w.requests : null;
    d.lat_p50_ms = w.lat_p50_us / 1000;
    d.lat_p99_ms = w.lat_p99_us / 1000;
    d.cpu_ms_per_req = w.requests ? (s.cpu_s * 1000) / w.requests : null;
    if (s.store_cpu_s !== undefined) d.store_cpu_ms_per_req = w.requests ? (s.store_cpu_s * 1000) / w.requests : null;
    d.errors = w.err_connect + w.err_read + w.err_write + w.err_status + w.err_timeout;
  }
  return d;
}

const A = 'goldmirror';
const B = 'nginx';

// ------------------------------------------------------------------ machine
function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    return String(err.stderr ?? '').trim() || 'unknown';
  }
}
function firstLine(text) {
  return text.split('\n')[0] ?? '';
}
const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
const machine = {
  nproc: Number(run('nproc', [])),
  cpu_model: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
  mem_total_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  kernel: `${os.type()} ${os.release()}`,
  node: process.version,
  nginx: run('sh', ['-c', 'nginx -v 2>&1']).replace(/^nginx version:\s*/, ''),
  wrk: firstLine(run('sh', ['-c', 'wrk -v 2>&1 || true'])).replace(/\s+Copyright.*$/, ''),
  curl: firstLine(run('curl', ['--version']))
    .split(' ')
    .slice(0, 2)
    .join(' '),
  hostname: os.hostname(),
};

// ------------------------------------------------------------------ stats
function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}
const min = (v) => (v.length ? Math.min(...v) : null);
const max = (v) => (v.length ? Math.max(...v) : null);
const round = (x, digits = 3) => (x === null || !Number.isFinite(x) ? null : Number(x.toFixed(digits)));

/** metric name → how to read it from a sample, its unit and which direction is better. */
const METRICS = {
  a: [
    { key: 'mbps', label: 'one download', unit: 'MB/s', better: 'higher' },
    { key: 'cpu_s_per_gb', label: 'server CPU', unit: 's/GB', better: 'lower' },
  ],
  b: [
    { key: 'mbps', label: `${params.concurrency} parallel downloads`, unit: 'MB/s', better: 'higher' },
    { key: 'peak_rss_mib', label: 'server peak RSS', unit: 'MiB', better: 'lower' },
    { key: 'cpu_s_per_gb', label: 'server CPU', unit: 's/GB', better: 'lower' },
  ],
  c: [
    { key: 'rps', label: 'random 1 MiB ranges', unit: 'req/s', better: 'higher' },
    { key: 'mbps', label: 'random ranges throughput', unit: 'MB/s', better: 'higher' },
    { key: 'lat_p50_ms', label: 'latency p50', unit: 'ms', better: 'lower' },
    { key: 'lat_p99_ms', label: 'latency p99', unit: 'ms', better: 'lower' },
    { key: 'cpu_ms_per_req', label: 'server CPU', unit: 'ms/req', better: 'lower' },
  ],
  d: [
    { key: 'rps', label: '1-byte ranges', unit: 'req/s', better: 'higher' },
    { key: 'lat_p50_ms', label: 'latency p50', unit: 'ms', better: 'lower' },
    { key: 'lat_p99_ms', label: 'latency p99', unit: 'ms', better: 'lower' },
    { key: 'cpu_ms_per_req', label: 'server CPU', unit: 'ms/req', better: 'lower' },
  ],
  e: [
    { key: 'added_rss_mib', label: 'RSS added by stalled clients', unit: 'MiB', better: 'lower' },
    { key: 'rss_after_mib', label: 'server RSS with them', unit: 'MiB', better: 'lower' },
    { key: 'added_kib_per_client', label: 'RSS added per client', unit: 'KiB', better: 'lower' },
    { key: 'streaming', label: 'clients being streamed to', unit: 'connections', better: 'higher' },
  ],
};
if (S) {
  const storeCpu = (unit) => ({ key: unit === 's/GB' ? 'store_cpu_s_per_gb' : 'store_cpu_ms_per_req', unit });
  for (const [phase, unit] of [
    ['a', 's/GB'],
    ['b', 's/GB'],
    ['c', 'ms/req'],
    ['d', 'ms/req'],
  ])
    METRICS[phase].push({ ...storeCpu(unit), label: 'S3 server (s3rver) CPU', better: 'lower' });
}
const PHASE_TITLES = {
  a: '(a) one full download (curl)',
  b: `(b) ${params.concurrency} parallel full downloads (curl)`,
  c: `(c) random ${params.range_bytes}-byte Range windows (wrk -c${params.range_conns}, ${params.duration}s)`,
  d: `(d) 1-byte Range: bytes=0-0 (wrk -c${params.small_conns}, ${params.duration}s)`,
  e: `(e) ${params.stall_clients} clients that request the whole file and never read (RSS of the server's process tree)`,
};

/** Samples of one target and their spread. */
function spread(values) {
  const f = values.filter((x) => x !== null);
  return { samples: values, median: median(f), min: min(f), max: max(f) };
}
/** x / y per pair, their median, and the ratio of the two medians. */
function paired(vx, vy) {
  const pairs = vx.map((x, i) => (x !== null && vy[i] !== null && vy[i] !== 0 ? x / vy[i] : null));
  const mx = median(vx.filter((x) => x !== null));
  const my = median(vy.filter((x) => x !== null));
  return {
    ratio_pairs: pairs.map((x) => round(x, 4)),
    ratio_paired_median: round(median(pairs.filter((x) => x !== null)), 4),
    ratio_of_medians: mx !== null && my ? round(mx / my, 4) : null,
  };
}

const phases = {};
for (const phase of Object.keys(METRICS)) {
  const mine = samples.filter((s) => s.phase === phase);
  if (mine.length === 0) continue;
  const reps = [...new Set(mine.map((s) => s.rep))].sort((p, q) => p - q);
  const byTarget = (t) => reps.map((r) => mine.find((s) => s.rep === r && s.target === t) ?? null);
  const a = byTarget(A);
  const b = byTarget(B);
  const c = S ? byTarget(S) : [];
  const metrics = {};
  for (const m of METRICS[phase]) {
    const valuesOf = (list) => list.map((s) => (s && Number.isFinite(s[m.key]) ? s[m.key] : null));
    const [va, vb, vc] = [valuesOf(a), valuesOf(b), valuesOf(c)];
    metrics[m.key] = {
      label: m.label,
      unit: m.unit,
      better: m.better,
      [A]: spread(va),
      [B]: spread(vb),
      ...paired(va, vb),
      ...(S ? { [S]: spread(vc), s3_vs_nginx: paired(vc, vb), s3_vs_fs: paired(vc, va) } : {}),
    };
  }
  const orderOf = (i) =>
    S
      ? [A, B, S]
          .map((t) => ({ t, order: byTarget(t)[i]?.order ?? 9 }))
          .sort((p, q) => p.order - q.order)
          .map((x) => x.t)
          .join(' → ')
      : a[i]?.order === 0
        ? `${A} first`
        : `${B} first`;
  phases[phase] = {
    title: PHASE_TITLES[phase],
    reps: reps.length,
    order: reps.map((_, i) => orderOf(i)),
    errors: mine.reduce((n, s) => n + (s.errors ?? 0), 0),
    raw: mine,
    metrics,
  };
}

// ------------------------------------------------------------------ targets
const T = [
  { id: 'single', text: 'one download, paired ratio ≥ 0.95', phase: 'a', key: 'mbps', kind: 'ratio_min', limit: 0.95 },
  {
    id: 'parallel',
    text: `${params.concurrency} parallel, paired ratio ≥ 1.0`,
    phase: 'b',
    key: 'mbps',
    kind: 'ratio_min',
    limit: 1.0,
  },
  {
    id: 'ranges',
    text: 'random 1 MiB ranges req/s, paired ratio ≥ 0.8',
    phase: 'c',
    key: 'rps',
    kind: 'ratio_min',
    limit: 0.8,
  },
  // One Node thread reaches about a third of nginx on tiny requests; with two or more workers the target is half.
  {
    id: 'small',
    text: `1-byte ranges req/s, paired ratio ≥ ${workers > 1 ? 0.5 : 0.3}${workers > 1 ? ` (${workers} workers)` : ''}`,
    phase: 'd',
    key: 'rps',
    kind: 'ratio_min',
    limit: workers > 1 ? 0.5 : 0.3,
  },
  // The budget is per worker: the tree of N workers and the primary gets N × 120 MiB.
  {
    id: 'rss',
    text: `goldmirror peak RSS during ${params.concurrency} parallel ≤ ${120 * workers} MiB${workers > 1 ? ` (120 per worker, whole process tree)` : ''} (max over rounds)`,
    phase: 'b',
    key: 'peak_rss_mib',
    kind: 'abs_max',
    limit: 120 * workers,
  },
  {
    id: 'cpu',
    text: 'goldmirror CPU s/GB during parallel ≤ 1.5× nginx (paired ratio)',
    phase: 'b',
    key: 'cpu_s_per_gb',
    kind: 'ratio_max',
    limit: 1.5,
  },
  {
    id: 'stalled',
    text: `goldmirror RSS added by ${params.stall_clients} stalled clients ≤ 64 MiB (max over rounds)`,
    phase: 'e',
    key: 'added_rss_mib',
    kind: 'abs_max',
    limit: 64,
  },
];
const targets = T.map((t) => {
  const m = phases[t.phase]?.metrics[t.key];
  let value = null;
  if (m && t.kind === 'abs_max') value = m[A].max;
  else if (m) value = m.ratio_paired_median;
  const status =
    value === null ? 'not measured' : (t.kind === 'ratio_min' ? value >= t.limit : value <= t.limit) ? 'met' : 'missed';
  return { id: t.id, target: t.text, limit: t.limit, value: round(value, 3), status };
});

const checksOk = checks.every((c) => c.ok);
const totalErrors = Object.values(phases).reduce((n, p) => n + p.errors, 0);

// ------------------------------------------------------------------ output
const stamp = params.started_at.replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z');
const variant = `${workers > 1 ? `-workers${workers}` : ''}${S ? '-s3' : ''}`;
const suffix = `${params.mode === 'quick' ? '-quick' : ''}${variant}`;
const dated = `${stamp}-${params.mode}${variant}`;
const result = {
  tool: 'goldmirror test/bench/run.sh',
  mode: params.mode,
  workers,
  servers: S ? [A, B, S] : [A, B],
  started_at: params.started_at,
  finished_at: new Date().toISOString(),
  machine,
  params,
  file: { bytes: params.file_bytes, mib: params.file_bytes / 2 ** 20, sha256: params.sha256 },
  ratio: `${A} / ${B}`,
  ...(S ? { s3_ratios: { s3_vs_nginx: `${S} / ${B}`, s3_vs_fs: `${S} / ${A}` } } : {}),
  checks,
  checks_ok: checksOk,
  request_errors: totalErrors,
  targets,
  phases,
  extras,
};

const fmt = (x, digits = 1) => (x === null || x === undefined ? '–' : Number(x).toFixed(digits));
const digitsFor = (unit) =>
  unit === 'ms/req' ? 3 : unit === 's/GB' ? 3 : unit === 'ms' ? 2 : unit === 'connections' ? 0 : 1;
const lines = [];
lines.push(
  `# goldmirror vs nginx — ${params.mode} benchmark${workers > 1 ? `, goldmirror with ${workers} workers` : ''}${S ? ', and goldmirror on S3 (s3rver)' : ''}`,
  '',
);
lines.push(
  `Started ${params.started_at}, finished ${result.finished_at}. Ratios are **${A} / ${B}**; the headline is the`,
  'median of per-pair ratios (repetition i of each server, back to back, order alternating).',
  'Higher is better for MB/s and req/s; lower is better for RSS, latency and CPU.',
  ...(S
    ? [
        `Every pair also runs **${S}** (the same build with MIRROR_STORAGE=s3, proxy downloads), paired the same way`,
        `with ${B} (**s3 / nginx**) and with ${A} on its filesystem store (**s3 / fs**); the order rotates.`,
      ]
    : []),
  '',
);
lines.push('## Machine', '', '| | |', '| --- | --- |');
lines.push(
  `| nproc | ${machine.nproc} |`,
  `| CPU | ${machine.cpu_model} |`,
  `| memory | ${machine.mem_total_gib} GiB |`,
);
lines.push(`| kernel | ${machine.kernel} |`, `| node | ${machine.node} |`, `| nginx | ${machine.nginx} |`);
lines.push(`| wrk | ${machine.wrk} |`, `| curl | ${machine.curl} |`, '');
lines.push('## Setup', '');
lines.push(
  `- file: ${params.file_bytes} bytes (${(params.file_bytes / 2 ** 20).toFixed(0)} MiB), AES-256-CTR keystream, seed \`${params.seed}\`, sha256 \`${params.sha256}\``,
  `- goldmirror: \`node bin/goldmirror.js serve${workers > 1 ? ` --workers ${workers}` : ''}\` (${workers > 1 ? `${params.goldmirror_processes ?? workers + 1} processes: ${workers} workers sharing the port by node:cluster round robin, and the primary; CPU and RSS are of the whole tree; ` : 'one process; '}log level warn), commit ${params.git_rev}${params.git_dirty_files ? ` + ${params.git_dirty_files} uncommitted server files` : ''}${params.dist_stale ? ' (**dist/ older than the sources**)' : ''}, link \`/d/<sha256>/${params.file_name}\``,
  `- nginx: private instance, sendfile on, tcp_nopush on, access_log off, worker_processes auto (${params.nginx_workers ?? '?'} workers here, plus its master), same file on disk`,
  ...(S
    ? [
        `- ${S}: \`MIRROR_STORAGE=s3\` (downloads proxied: ranged GETs to the bucket, streamed through), same settings otherwise; the blob was copied into the bucket by \`goldmirror migrate-storage --to s3\` (see Other observations) and the catalog copied over; its CPU and RSS are goldmirror's alone`,
        `- S3 server: s3rver ${params.s3rver_version || '?'} (a Node S3 emulator keeping objects as files on the same disk) on loopback, one process sharing the cores with everything else; its CPU while ${S} is measured is the "S3 server (s3rver) CPU" row. A real object store is another machine: its latency and bandwidth are not what is measured here`,
      ]
    : []),
  `- (a) ${params.runs} pairs; (b) ${params.rounds} pairs × ${params.concurrency} curls; (c) ${params.rounds} pairs × ${params.duration}s wrk -t${params.threads} -c${params.range_conns}; (d) ${params.rounds} pairs × ${params.duration}s wrk -t${params.threads} -c${params.small_conns}; (e) ${params.stall_rounds} pair(s) × ${params.stall_clients} connections that never read (16 per loopback source address, default caps)`,
  '- warm page cache (the file is read in full by both servers before measuring); client and servers share the cores',
  '- "machine CPU busy while the bench is idle" (Other observations) shows other work on the machine, which widens the ranges',
  '',
);
lines.push('## Correctness checks', '');
for (const c of checks) lines.push(`- ${c.ok ? 'ok' : '**FAILED**'}: ${c.name}${c.detail ? ` — ${c.detail}` : ''}`);
if (totalErrors > 0) lines.push(`- **${totalErrors} request errors** counted during the measurements (see samples)`);
lines.push('');
lines.push('## Targets', '', '| target | value | status |', '| --- | --- | --- |');
for (const t of targets)
  lines.push(`| ${t.target} | ${t.value ?? '–'} | ${t.status === 'met' ? 'met' : `**${t.status}**`} |`);
lines.push('');
lines.push('## Summary', '');
if (S) {
  lines.push(
    `| phase | metric | ${A} median [min..max] | ${B} median [min..max] | ${A} / ${B} | ${S} median [min..max] | s3 / nginx | s3 / fs |`,
  );
  lines.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
} else {
  lines.push(`| phase | metric | ${A} median [min..max] | ${B} median [min..max] | paired ratio | ratio of medians |`);
  lines.push('| --- | --- | --- | --- | --- | --- |');
}
for (const [phase, p] of Object.entries(phases)) {
  for (const m of Object.values(p.metrics)) {
    const d = digitsFor(m.unit);
    const cell = (s) => `${fmt(s.median, d)} [${fmt(s.min, d)}..${fmt(s.max, d)}]`;
    const head = `| ${phase} | ${m.label} (${m.unit}, ${m.better} is better) | ${cell(m[A])} | ${cell(m[B])} | ${fmt(m.ratio_paired_median, 3)} |`;
    lines.push(
      S
        ? `${head} ${cell(m[S])} | ${fmt(m.s3_vs_nginx.ratio_paired_median, 3)} | ${fmt(m.s3_vs_fs.ratio_paired_median, 3)} |`
        : `${head} ${fmt(m.ratio_of_medians, 3)} |`,
    );
  }
}
lines.push('');
lines.push('## Samples', '');
for (const p of Object.values(phases)) {
  lines.push(`### ${p.title}`, '');
  const ms = Object.values(p.metrics);
  lines.push(
    S ? `Each cell: ${A} / ${B} / ${S} (ratios ${A} / ${B}; s3 / nginx, s3 / fs).` : `Each cell: ${A} / ${B} (ratio).`,
    '',
  );
  lines.push(`| pair | order | ${ms.map((m) => `${m.label} (${m.unit})`).join(' | ')} |`);
  lines.push(`| --- | --- | ${ms.map(() => '---').join(' | ')} |`);
  for (let i = 0; i < p.reps; i++) {
    const cells = ms.map((m) => {
      const d = digitsFor(m.unit);
      const both = `${fmt(m[A].samples[i], d)} / ${fmt(m[B].samples[i], d)}`;
      if (!S) return `${both} (${fmt(m.ratio_pairs[i], 3)})`;
      const ratios = `${fmt(m.ratio_pairs[i], 3)}; ${fmt(m.s3_vs_nginx.ratio_pairs[i], 3)}, ${fmt(m.s3_vs_fs.ratio_pairs[i], 3)}`;
      return `${both} / ${fmt(m[S].samples[i], d)} (${ratios})`;
    });
    lines.push(`| ${i + 1} | ${p.order[i]} | ${cells.join(' | ')} |`);
  }
  if (p.errors > 0) lines.push('', `Request errors in this phase: ${p.errors}.`);
  lines.push('');
}
if (extras.length > 0) {
  lines.push('## Other observations', '');
  for (const e of extras) lines.push(`- ${e.name}: ${e.value}`);
  lines.push('');
}
lines.push('Raw figures: the JSON file of the same name (`phases.<p>.raw` holds every sample as measured).', '');
const md = lines.join('\n');

fs.mkdirSync(outDir, { recursive: true });
for (const base of [`latest${suffix}`, dated]) {
  fs.writeFileSync(path.join(outDir, `${base}.json`), `${JSON.stringify(result, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, `${base}.md`), md);
}
process.stdout.write(`${md}\n`);
process.stdout.write(`report: ${path.join(outDir, `latest${suffix}.md`)} (+ .json, dated copy ${dated}.*)\n`);
process.exit(checksOk ? 0 : 1);
