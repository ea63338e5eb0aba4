#!/usr/bin/env bash
# goldmirror download benchmark: goldmirror vs a private nginx (sendfile) serving
# the same file, measured in one run with alternating repetitions.
#
#   npm run bench                      full run (~5-7 min on 2 cores, 1 GiB file)
#   npm run bench -- --quick           fewer repetitions, shorter wrk runs (~2-3 min)
#   npm run bench -- --phases ab       only some phases (a b c d e)
#   npm run bench -- --workers 2       goldmirror as `serve --workers 2` (MIRROR_WORKERS; N or auto); the
#                                      report names it, and CPU and RSS are of the whole process tree
#   npm run bench -- --serve-only 600  start both servers, check them, print their URLs
#                                      and PIDs (also in work/serve.env), keep them up for
#                                      600 s (or until this script is stopped), then clean up
#
# Phases (ratio = goldmirror / nginx, median of per-pair ratios):
#   (a) one full download, MB/s (curl)
#   (b) N parallel full downloads, aggregate MB/s, server peak RSS, server CPU s/GB
#   (c) random 1 MiB Range windows, req/s (wrk -c16)
#   (d) Range: bytes=0-0, req/s (wrk -c64)
#   (e) stalled clients: BENCH_STALL_CLIENTS (1000) connections that request the whole
#       file and never read; server RSS before and after (lib/stalled.mjs, bounded to 60 s)
#
# Environment: BENCH_SIZE_MIB (1024), BENCH_SEED, BENCH_RUNS, BENCH_ROUNDS,
# BENCH_DURATION, BENCH_CONCURRENCY (16), BENCH_STALL_CLIENTS (1000), BENCH_WORK_DIR (test/bench/work),
# BENCH_RESULTS_DIR (test/bench/results), BENCH_KEEP_RUN=1 (keep the run dir),
# BENCH_GOLDMIRROR_ROOT (another goldmirror checkout/build to measure, e.g. an experiment),
# BENCH_WAIT_QUIET (30: seconds to wait for other CPU load to stop before measuring).
#
# Loopback only. Every process started here is stopped by PID on exit,
# including on failure or Ctrl-C. Exit status: 0 = measured (targets may be
# missed, see the report), 1 = setup or correctness failure, 2 = usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LIB=$HERE/lib
GM_ROOT=${BENCH_GOLDMIRROR_ROOT:-$ROOT}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# ------------------------------------------------------------------ options
MODE=full PHASES=abcde SERVE_ONLY="" WORKERS=1
while (($#)); do
  case $1 in
    --quick) MODE=quick; shift ;;
    --phases) [[ ${2:-} =~ ^[abcde]+$ ]] || usage; PHASES=$2; shift 2 ;;
    --serve-only) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; SERVE_ONLY=$2; shift 2 ;;
    --workers) [[ ${2:-} =~ ^([1-9][0-9]*|auto)$ ]] || usage; WORKERS=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done

SIZE_MIB=${BENCH_SIZE_MIB:-1024}
[[ $WORKERS != auto ]] || WORKERS=$(nproc)
SEED=${BENCH_SEED:-goldmirror-bench-1}
WORK=${BENCH_WORK_DIR:-$HERE/work}
OUT=${BENCH_RESULTS_DIR:-$HERE/results}
if [[ $MODE == quick ]]; then RUNS=3 ROUNDS=2 DURATION=5; else RUNS=7 ROUNDS=5 DURATION=8; fi
RUNS=${BENCH_RUNS:-$RUNS}
ROUNDS=${BENCH_ROUNDS:-$ROUNDS}
DURATION=${BENCH_DURATION:-$DURATION}
CONC=${BENCH_CONCURRENCY:-16}
STALL_CLIENTS=${BENCH_STALL_CLIENTS:-1000}
if [[ $MODE == quick ]]; then STALL_ROUNDS=1; else STALL_ROUNDS=2; fi
RANGE_BYTES=1048576 RANGE_CONNS=16 SMALL_CONNS=64
THREADS=$(nproc)
MAX_TIME=300 # seconds, any single curl

for v in SIZE_MIB RUNS ROUNDS DURATION CONC STALL_CLIENTS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer (got '${!v}')" >&2; exit 2; }
done
[[ $SEED =~ ^[A-Za-z0-9._-]+$ ]] || { echo "BENCH_SEED: letters, digits, . _ - only" >&2; exit 2; }

# Settings of the developer's own shell must not leak into the server under test.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^MIRROR_' || true)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
# jnum JSON KEY: a numeric field of a flat JSON object
jnum() { sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" <<<"$1"; }

# ------------------------------------------------------------------ cleanup
RUN_DIR="" GM_PID="" NG_PID="" NG_WORKERS=""
BG_PIDS=()

stop_pid() { # PID [SIGNAL]: signal, wait up to 5 s, then SIGKILL
  local pid=$1 sig=${2:-TERM}
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  for pid in "${BG_PIDS[@]}"; do stop_pid "$pid"; done
  stop_pid "$GM_PID"
  if [[ -n $NG_PID ]]; then
    NG_WORKERS="$NG_WORKERS $(pgrep -P "$NG_PID" 2>/dev/null | tr '\n' ' ')"
    stop_pid "$NG_PID" QUIT
    for pid in $NG_WORKERS; do stop_pid "$pid"; done
  fi
  wait 2>/dev/null
  if [[ -n $RUN_DIR && -d $RUN_DIR ]]; then
    if [[ ${BENCH_KEEP_RUN:-0} == 1 ]]; then log "run dir kept: $RUN_DIR"; else rm -rf "$RUN_DIR"; fi
  fi
  rm -f "$WORK/serve.env"
  ((rc == 0)) || log "exit status $rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ 1. tools and build
ensure_tools() {
  local missing=() cmd
  for cmd in nginx wrk curl openssl awk; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
  ((${#missing[@]} == 0)) && return 0
  local pkgs=("${missing[@]/awk/mawk}")
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing tools: ${missing[*]} (install: apt-get install ${pkgs[*]})"
  fi
  log "installing ${pkgs[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  for cmd in "${missing[@]}"; do command -v "$cmd" >/dev/null || die "$cmd still missing after apt-get"; done
}
ensure_tools
# Keep the packaged nginx service (if the package just started one) out of the way? We never
# touch it: our nginx has its own conf/pid/port, so a system nginx can keep running.

if [[ ! -f $GM_ROOT/dist/server/cli/run.js ]]; then
  log "dist/ missing: building goldmirror in $GM_ROOT"
  [[ -d $GM_ROOT/node_modules ]] || (cd "$GM_ROOT" && npm ci --no-audit --no-fund >&2)
  (cd "$GM_ROOT" && npm run build >&2)
fi

# The benchmark measures dist/, not the sources: say so when they differ.
STALE=$(cd "$GM_ROOT" && find server storage config -name '*.ts' -newer dist/server/serve.js 2>/dev/null | head -n 3 | tr '\n' ' ' || true)
[[ -z $STALE ]] || log "WARNING: sources newer than dist/ ($STALE...): measuring the last build; run 'npm run build' first"
GIT_REV=${BENCH_GIT_REV:-$(git -C "$GM_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
GIT_DIRTY=$({ git -C "$GM_ROOT" status --porcelain -- server storage config 2>/dev/null || true; } | wc -l)

mkdir -p "$WORK" "$OUT"
RUN_DIR=$(mktemp -d "$WORK/run.XXXXXX")
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
SAMPLES=$RUN_DIR/samples.jsonl CHECKS=$RUN_DIR/checks.jsonl EXTRAS=$RUN_DIR/extras.jsonl
: >"$SAMPLES"; : >"$CHECKS"; : >"$EXTRAS"
CHECK_FAILED=0
check() { # NAME OK(0/1) [DETAIL]
  local ok=false
  [[ $2 == 1 ]] && ok=true || CHECK_FAILED=1
  printf '{"name":"%s","ok":%s,"detail":"%s"}\n' "$1" "$ok" "${3:-}" >>"$CHECKS"
  log "check $([[ $ok == true ]] && echo ok || echo FAILED): $1 ${3:-}"
}
extra() { printf '{"name":"%s","value":"%s"}\n' "$1" "$2" >>"$EXTRAS"; }

# ------------------------------------------------------------------ 2. test file
FILE_BYTES=$((SIZE_MIB * 1048576))
FILE=$WORK/goldmirror-bench-${SIZE_MIB}m.pvmp
META=$FILE.meta # "<bytes> <seed> <sha256>" once the file is complete
if [[ -f $FILE && -f $META && $(stat -c %s "$FILE") == "$FILE_BYTES" ]] &&
  read -r m_bytes m_seed FILE_SHA <"$META" && [[ $m_bytes == "$FILE_BYTES" && $m_seed == "$SEED" && ${#FILE_SHA} == 64 ]]; then
  log "reusing $FILE ($SIZE_MIB MiB, seed $SEED)"
else
  log "writing $FILE: $SIZE_MIB MiB of AES-256-CTR keystream (seed $SEED)"
  rm -f "$FILE" "$META"
  key=$(printf 'key:%s' "$SEED" | openssl dgst -sha256 -r | cut -c1-64)
  iv=$(printf 'iv:%s' "$SEED" | openssl dgst -sha256 -r | cut -c1-32)
  head -c "$FILE_BYTES" /dev/zero | openssl enc -aes-256-ctr -nosalt -K "$key" -iv "$iv" >"$FILE.tmp"
  [[ $(stat -c %s "$FILE.tmp") == "$FILE_BYTES" ]] || die "generated file has the wrong size"
  FILE_SHA=$(openssl dgst -sha256 -r "$FILE.tmp" | cut -c1-64)
  mv "$FILE.tmp" "$FILE"
  echo "$FILE_BYTES $SEED $FILE_SHA" >"$META"
fi

# ------------------------------------------------------------------ 3. servers
DATA=$RUN_DIR/data
log "importing into a fresh data dir"
IMPORT_JSON=$(MIRROR_DATA_DIR=$DATA MIRROR_LOG_LEVEL=warn node "$GM_ROOT/bin/goldmirror.js" import "$FILE" --json)
SHA=$(sed -n 's/.*"sha256": *"\([0-9a-f]\{64\}\)".*/\1/p' <<<"$IMPORT_JSON")
NAME=$(sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' <<<"$IMPORT_JSON")
[[ ${#SHA} == 64 && -n $NAME ]] || die "unexpected import output: $IMPORT_JSON"
check "import sha256 = openssl sha256 of the file" "$([[ $SHA == "$FILE_SHA" ]] && echo 1 || echo 0)" "$SHA"
BLOB=$(find "$DATA" -type f -name "$SHA" -print -quit)
[[ -n $BLOB ]] || die "blob file for $SHA not found under $DATA"

GM_PORT=$(node "$LIB/proc.mjs" port)
log "starting goldmirror on 127.0.0.1:$GM_PORT ($WORKERS worker(s))"
MIRROR_DATA_DIR=$DATA MIRROR_HOST=127.0.0.1 MIRROR_PORT=$GM_PORT MIRROR_LOG_LEVEL=warn MIRROR_WORKERS=$WORKERS \
  node "$GM_ROOT/bin/goldmirror.js" serve >"$RUN_DIR/goldmirror.log" 2>&1 &
GM_PID=$!
GM_URL="http://127.0.0.1:$GM_PORT/d/$SHA/$NAME"

# nginx serves the very same blob file (symlink), so both read the same page cache.
NGX=$RUN_DIR/nginx
mkdir -p "$NGX/www" "$NGX/temp"
ln -s "$BLOB" "$NGX/www/$NAME"
NG_PORT=$(node "$LIB/proc.mjs" port)
[[ $NG_PORT != "$GM_PORT" ]] || NG_PORT=$(node "$LIB/proc.mjs" port)
cat >"$NGX/nginx.conf" <<EOF
# private nginx for test/bench/run.sh (reference static file server, loopback only)
$([[ $EUID -eq 0 ]] && echo "user root root;")
daemon off;
worker_processes auto;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
  types { }
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  # node:http has no per-connection request limit; do not make nginx reconnect every 1000 requests in (d)
  keepalive_requests 10000000;
  client_body_temp_path $NGX/temp/body;
  proxy_temp_path $NGX/temp/proxy;
  fastcgi_temp_path $NGX/temp/fastcgi;
  uwsgi_temp_path $NGX/temp/uwsgi;
  scgi_temp_path $NGX/temp/scgi;
  server {
    listen 127.0.0.1:$NG_PORT;
    root $NGX/www;
    location = /healthz { return 204; }
  }
}
EOF
log "starting nginx on 127.0.0.1:$NG_PORT"
nginx -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" -t -q || die "nginx config test failed"
nginx -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" &
NG_PID=$!
NG_URL="http://127.0.0.1:$NG_PORT/$NAME"

wait_healthy() { # NAME PID URL
  for _ in $(seq 200); do
    kill -0 "$2" 2>/dev/null || die "$1 exited during start-up (logs in $RUN_DIR)"
    curl -sf -o /dev/null --max-time 2 "$3" && return 0
    sleep 0.1
  done
  die "$1 not healthy after 20 s: $3"
}
# With --workers the port answers once the first worker listens: wait until every worker has answered
# (X-Goldmirror-Worker on fresh connections), or the first phases would measure fewer of them.
wait_all_workers() {
  ((WORKERS > 1)) || return 0
  local seen=" " w
  for _ in $(seq 300); do
    w=$(curl -sf -o /dev/null -D - --max-time 2 "http://127.0.0.1:$GM_PORT/healthz" |
      tr -d '\r' | awk -F': ' 'tolower($1) == "x-goldmirror-worker" { print $2 }') || true
    [[ -z $w || $seen == *" $w "* ]] || seen="$seen$w "
    (($(wc -w <<<"$seen") >= WORKERS)) && return 0
    kill -0 "$GM_PID" 2>/dev/null || die "goldmirror exited during start-up (logs in $RUN_DIR)"
    sleep 0.1
  done
  die "only workers$seen of $WORKERS answered after 30 s"
}
wait_healthy goldmirror "$GM_PID" "http://127.0.0.1:$GM_PORT/healthz"
wait_all_workers
wait_healthy nginx "$NG_PID" "http://127.0.0.1:$NG_PORT/healthz"
NG_WORKERS=$(pgrep -P "$NG_PID" | tr '\n' ' ')
GM_PROCS=$(($(node "$LIB/proc.mjs" count "$GM_PID")))
log "goldmirror pid $GM_PID ($GM_PROCS processes: $WORKERS worker(s)$( ((WORKERS > 1)) && echo ' + primary')) $GM_URL"
log "nginx      pid $NG_PID (workers $NG_WORKERS) $NG_URL"

url_of() { if [[ $1 == goldmirror ]]; then echo "$GM_URL"; else echo "$NG_URL"; fi; }
pid_of() { if [[ $1 == goldmirror ]]; then echo "$GM_PID"; else echo "$NG_PID"; fi; }
cpu_of() { node "$LIB/proc.mjs" cpu "$(pid_of "$1")"; }
rss_mib() { awk -v k="$(node "$LIB/proc.mjs" rss "$(pid_of "$1")")" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ------------------------------------------------------------------ 4a. correctness
log "correctness checks"
extra "goldmirror RSS after start-up (MiB)" "$(rss_mib goldmirror)"
extra "nginx RSS after start-up, master + workers (MiB)" "$(rss_mib nginx)"
for t in goldmirror nginx; do
  url=$(url_of "$t")
  hdrs=$(curl -sS -I --max-time 10 "$url" | tr -d '\r')
  code=$(awk 'NR == 1 { print $2 }' <<<"$hdrs")
  len=$(awk -F': ' 'tolower($1) == "content-length" { print $2 }' <<<"$hdrs")
  check "$t HEAD: 200 with Content-Length = file size" "$([[ $code == 200 && $len == "$FILE_BYTES" ]] && echo 1 || echo 0)" "status $code, length $len"
  hdrs=$(curl -sS --max-time 10 -o /dev/null -D - -H 'Range: bytes=0-0' "$url" | tr -d '\r')
  code=$(awk 'NR == 1 { print $2 }' <<<"$hdrs")
  cr=$(awk -F': ' 'tolower($1) == "content-range" { print $2 }' <<<"$hdrs")
  check "$t Range bytes=0-0: 206, Content-Range bytes 0-0/size" "$([[ $code == 206 && $cr == "bytes 0-0/$FILE_BYTES" ]] && echo 1 || echo 0)" "status $code, $cr"
done
win=$((FILE_BYTES < RANGE_BYTES ? FILE_BYTES : RANGE_BYTES))
for off in 0 $((FILE_BYTES / 3)) $((FILE_BYTES / 2 + 12345)) $((FILE_BYTES - win)); do
  last=$((off + win - 1))
  want=$(dd if="$FILE" bs=64K iflag=skip_bytes,count_bytes skip="$off" count="$win" status=none | openssl dgst -sha256 -r | cut -c1-64)
  detail="bytes=$off-$last:"
  ok=1
  for t in goldmirror nginx; do
    code=$(curl -sS --max-time 30 -o "$RUN_DIR/window" -w '%{http_code}' -r "$off-$last" "$(url_of "$t")")
    got=$(openssl dgst -sha256 -r "$RUN_DIR/window" | cut -c1-64)
    [[ $code == 206 && $got == "$want" ]] || ok=0
    detail="$detail $t $code ${got:0:12}"
  done
  check "window $off-$last identical on both and equal to the file" "$ok" "$detail"
done
rm -f "$RUN_DIR/window"
# One full download per server, hashed: also warms the page cache and both servers.
for t in goldmirror nginx; do
  t0=$(now)
  got=$(curl -sS --max-time "$MAX_TIME" "$(url_of "$t")" | openssl dgst -sha256 -r | cut -c1-64) || got=curl-failed
  check "$t full download sha256 matches" "$([[ $got == "$SHA" ]] && echo 1 || echo 0)" "$(calc "$(now) - $t0") s incl. hashing"
done
extra "goldmirror RSS after the warm-up downloads (MiB)" "$(rss_mib goldmirror)"
# Background work in the server (jobs, verification) would skew everything: measure it idle.
c0=$(cpu_of goldmirror); sleep 2; extra "goldmirror CPU while idle for 2 s (s)" "$(calc "$(cpu_of goldmirror) - $c0")"

write_params() {
  cat >"$RUN_DIR/params.json" <<EOF
{"mode":"$MODE","started_at":"$STARTED_AT","phases":"$PHASES","file_bytes":$FILE_BYTES,"sha256":"$SHA",
 "seed":"$SEED","file_name":"$NAME","runs":$RUNS,"rounds":$ROUNDS,"duration":$DURATION,"concurrency":$CONC,
 "range_bytes":$RANGE_BYTES,"range_conns":$RANGE_CONNS,"small_conns":$SMALL_CONNS,"threads":$THREADS,
 "stall_clients":$STALL_CLIENTS,"stall_rounds":$STALL_ROUNDS,
 "workers":$WORKERS,"goldmirror_processes":$GM_PROCS,"nginx_workers":$(wc -w <<<"$NG_WORKERS"),
 "goldmirror_url":"$GM_URL","nginx_url":"$NG_URL","goldmirror_root":"$GM_ROOT",
 "git_rev":"$GIT_REV","git_dirty_files":$GIT_DIRTY,"dist_stale":$([[ -n $STALE ]] && echo true || echo false)}
EOF
}
write_params

if [[ -n $SERVE_ONLY ]]; then
  cat >"$WORK/serve.env" <<EOF
GM_URL=$GM_URL
GM_PID=$GM_PID
NG_URL=$NG_URL
NG_PID=$NG_PID
SHA256=$SHA
FILE=$FILE
BENCH_PID=$$
EOF
  cat "$WORK/serve.env"
  ((CHECK_FAILED == 0)) || die "correctness checks failed"
  log "serving for $SERVE_ONLY s (stop early: kill $$)"
  sleep "$SERVE_ONLY" &
  BG_PIDS+=($!)
  wait $! || true
  exit 0
fi

if ((CHECK_FAILED)); then
  log "correctness checks failed: no measurements"
  node "$LIB/report.mjs" "$RUN_DIR" "$OUT" >/dev/null || true
  exit 1
fi

# ------------------------------------------------------------------ 4b. measurements
# Other work on the machine (builds, test suites) ruins the figures: wait a bounded
# time for it to calm down, and record what was seen either way.
quiet_wait=${BENCH_WAIT_QUIET:-30}
for ((waited = 0; ; waited++)); do
  busy=$(node "$LIB/proc.mjs" busy 1000)
  awk -v b="$busy" 'BEGIN { exit !(b < 0.25) }' && break
  if ((waited >= quiet_wait)); then log "machine still busy ($busy cores used by others): measuring anyway"; break; fi
  ((waited % 10)) || log "machine busy ($busy cores used by other processes): waiting up to $quiet_wait s"
done
extra "seconds waited for a quiet machine" "$waited"
order_of() { if (($1 % 2 == 0)); then echo "goldmirror nginx"; else echo "nginx goldmirror"; fi; }

# (a) one full download
phase_a() { # TARGET REP ORDER
  local url c0 c1 out code size secs
  url=$(url_of "$1")
  c0=$(cpu_of "$1")
  out=$(curl -sS -o /dev/null --max-time "$MAX_TIME" -w '%{http_code} %{size_download} %{time_total}' "$url") || out="000 0 0"
  c1=$(cpu_of "$1")
  read -r code size secs <<<"$out"
  [[ $code == 200 && $size == "$FILE_BYTES" ]] || die "(a) $1: status $code, $size of $FILE_BYTES bytes"
  printf '{"phase":"a","target":"%s","rep":%d,"order":%d,"bytes":%s,"seconds":%s,"cpu_s":%s}\n' \
    "$1" "$2" "$3" "$size" "$secs" "$(calc "$c1 - $c0")" >>"$SAMPLES"
  log "(a) pair $(($2 + 1)) $1: $(calc "$size / $secs / 1e6") MB/s"
}

# (b) CONC parallel full downloads
phase_b() { # TARGET REP ORDER
  local url pid c0 c1 t0 t1 k watcher fails=0 code size
  url=$(url_of "$1")
  pid=$(pid_of "$1")
  c0=$(cpu_of "$1")
  node "$LIB/proc.mjs" watch "$pid" "$RUN_DIR/rss.json" 100 &
  watcher=$!
  BG_PIDS+=("$watcher")
  sleep 0.3 # let the watcher take its first samples
  local curls=()
  t0=$(now)
  for ((k = 0; k < CONC; k++)); do
    curl -sS -o /dev/null --max-time "$MAX_TIME" -w '%{http_code} %{size_download}\n' "$url" >"$RUN_DIR/b.$k" &
    curls+=($!)
  done
  BG_PIDS+=("${curls[@]}")
  for k in "${curls[@]}"; do wait "$k" || fails=$((fails + 1)); done
  t1=$(now)
  kill -TERM "$watcher"
  wait "$watcher" || true
  c1=$(cpu_of "$1")
  for ((k = 0; k < CONC; k++)); do
    read -r code size <"$RUN_DIR/b.$k" || true
    [[ $code == 200 && $size == "$FILE_BYTES" ]] || fails=$((fails + 1))
  done
  ((fails == 0)) || die "(b) $1: $fails of $CONC downloads failed or were short"
  printf '{"phase":"b","target":"%s","rep":%d,"order":%d,"downloads":%d,"bytes":%s,"seconds":%s,"cpu_s":%s,"peak_rss_kib":%s}\n' \
    "$1" "$2" "$3" "$CONC" "$((CONC * FILE_BYTES))" "$(calc "$t1 - $t0")" "$(calc "$c1 - $c0")" \
    "$(jnum "$(cat "$RUN_DIR/rss.json")" peak_kib)" >>"$SAMPLES"
  log "(b) pair $(($2 + 1)) $1: $(calc "$CONC * $FILE_BYTES / ($t1 - $t0) / 1e6") MB/s, peak RSS $(jnum "$(cat "$RUN_DIR/rss.json")" peak_kib) KiB, CPU $(calc "$c1 - $c0") s"
}

# (c), (d) wrk
run_wrk() { # PHASE TARGET REP ORDER CONNS SCRIPT [SCRIPT ARGS...]
  local phase=$1 target=$2 rep=$3 order=$4 conns=$5 script=$6 c0 c1 out json
  shift 6
  c0=$(cpu_of "$target")
  out=$(BENCH_LIB=$LIB timeout $((DURATION + 60)) wrk -t "$THREADS" -c "$conns" -d "${DURATION}s" --timeout 10s \
    -s "$LIB/$script" "$(url_of "$target")" ${1+-- "$@"} 2>&1) || die "($phase) wrk failed against $target: $out"
  c1=$(cpu_of "$target")
  json=$(sed -n 's/^BENCHJSON //p' <<<"$out")
  [[ -n $json ]] || die "($phase) no result from wrk: $out"
  printf '{"phase":"%s","target":"%s","rep":%d,"order":%d,"cpu_s":%s,"wrk":%s}\n' \
    "$phase" "$target" "$rep" "$order" "$(calc "$c1 - $c0")" "$json" >>"$SAMPLES"
  log "($phase) pair $((rep + 1)) $target: $(calc "$(jnum "$json" requests) / ($(jnum "$json" duration_us) / 1e6)") req/s, errors status=$(jnum "$json" err_status) read=$(jnum "$json" err_read) timeout=$(jnum "$json" err_timeout)"
}
phase_c() { run_wrk c "$1" "$2" "$3" "$RANGE_CONNS" wrk-window.lua "$FILE_BYTES" "$RANGE_BYTES" $((4242 + $2)); }
phase_d() { run_wrk d "$1" "$2" "$3" "$SMALL_CONNS" wrk-first-byte.lua; }

# (e) STALL_CLIENTS clients that never read: what they cost each server in RSS
phase_e() { # TARGET REP ORDER
  local json
  node "$LIB/stalled.mjs" "$(url_of "$1")" "$(pid_of "$1")" "$STALL_CLIENTS" "$RUN_DIR/stalled.json" || die "(e) $1: stalled-clients run failed"
  json=$(cat "$RUN_DIR/stalled.json")
  printf '{"phase":"e","target":"%s","rep":%d,"order":%d,"stalled":%s}\n' "$1" "$2" "$3" "$json" >>"$SAMPLES"
  log "(e) pair $(($2 + 1)) $1: $(jnum "$json" streaming) of $STALL_CLIENTS streaming, RSS $(jnum "$json" rss_before_kib) -> $(jnum "$json" rss_after_kib) KiB"
  sleep 2 # let the server notice the closed connections before anything else runs
}

for phase in a b c d e; do
  [[ $PHASES == *$phase* ]] || continue
  if [[ $phase == a ]]; then reps=$RUNS; elif [[ $phase == e ]]; then reps=$STALL_ROUNDS; else reps=$ROUNDS; fi
  log "phase ($phase): $reps pairs"
  extra "machine CPU busy while the bench is idle, before phase ($phase) (cores of $THREADS; should be ~0)" "$(node "$LIB/proc.mjs" busy 1000)"
  for ((rep = 0; rep < reps; rep++)); do
    pos=0
    for t in $(order_of "$rep"); do
      "phase_$phase" "$t" "$rep" "$pos"
      pos=$((pos + 1))
    done
  done
done

extra "machine CPU busy while the bench is idle, at the end (cores)" "$(node "$LIB/proc.mjs" busy 1000)"
extra "goldmirror RSS at the end (MiB)" "$(rss_mib goldmirror)"
extra "nginx RSS at the end, master + workers (MiB)" "$(rss_mib nginx)"
extra "goldmirror log lines (stdout+stderr, level warn)" "$(wc -l <"$RUN_DIR/goldmirror.log")"

# ------------------------------------------------------------------ 5. report
log "writing report to $OUT"
node "$LIB/report.mjs" "$RUN_DIR" "$OUT"
