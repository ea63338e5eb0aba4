#!/usr/bin/env bash
# goldmirror download benchmark: goldmirror vs a private nginx (sendfile) serving
# the same file, measured in one run with alternating repetitions.
#
#   npm run bench                      full run (~5-7 min on 2 cores, 1 GiB file)
#   npm run bench -- --quick           fewer repetitions, shorter wrk runs (~2-3 min)
#   npm run bench -- --phases ab       only some phases (a b c d e)
#   npm run bench -- --workers 2       goldmirror as `serve --workers 2` (MIRROR_WORKERS; N or auto); the
#                                      report names it, and CPU and RSS are of the whole process tree
#   npm run bench -- --storage s3      also measures goldmirror-s3: a second goldmirror with MIRROR_STORAGE=s3
#                                      (proxy downloads) whose blob lies in an s3rver this script starts, put
#                                      there by `goldmirror migrate-storage --to s3`; each pair then runs all
#                                      three servers (report: latest[-quick]-s3.*)
#   npm run bench -- --serve-only 600  start both servers, check them, print their URLs
#                                      and PIDs (also in work/serve.env), keep them up for
#                                      600 s (or until this script is stopped), then clean up
#
# Phases (ratio = goldmirror / nginx, median of per-pair ratios; with --storage s3 also goldmirror-s3 / nginx
# and goldmirror-s3 / goldmirror):
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
MODE=full PHASES=abcde SERVE_ONLY="" WORKERS=1 STORAGE=fs
while (($#)); do
  case $1 in
    --quick) MODE=quick; shift ;;
    --phases) [[ ${2:-} =~ ^[abcde]+$ ]] || usage; PHASES=$2; shift 2 ;;
    --serve-only) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; SERVE_ONLY=$2; shift 2 ;;
    --workers) [[ ${2:-} =~ ^([1-9][0-9]*|auto)$ ]] || usage; WORKERS=$2; shift 2 ;;
    --storage) [[ ${2:-} =~ ^(fs|s3)$ ]] || usage; STORAGE=$2; shift 2 ;;
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
# The servers measured, in the order of the first pair; later pairs rotate it.
TARGETS="goldmirror nginx"
[[ $STORAGE == fs ]] || TARGETS="goldmirror nginx goldmirror-s3"
S3_BUCKET=goldmirror-bench
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
RUN_DIR="" GM_PID="" NG_PID="" NG_WORKERS="" GS_PID="" S3_PID=""
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
  stop_pid "$GS_PID"
  stop_pid "$S3_PID"
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

PORTS_TAKEN=" "
new_port() { # a free port on 127.0.0.1 that no server of this run has been given yet
  local port
  for _ in $(seq 20); do
    port=$(node "$LIB/proc.mjs" port)
    [[ $PORTS_TAKEN == *" $port "* ]] || { PORTS_TAKEN="$PORTS_TAKEN$port "; echo "$port"; return 0; }
  done
  die "no free port found"
}

# With --storage s3: an s3rver, the package copied into it by migrate-storage (timed, its memory watched), and
# a second data dir with a copy of the catalog for the goldmirror that runs with MIRROR_STORAGE=s3.
S3_ENDPOINT="" S3RVER_VERSION="" DATA_S3=""
if [[ $STORAGE == s3 ]]; then
  log "starting s3rver"
  node "$LIB/s3rver.mjs" "$RUN_DIR/s3" "$S3_BUCKET" >"$RUN_DIR/s3rver.out" 2>"$RUN_DIR/s3rver.log" &
  S3_PID=$!
  for _ in $(seq 200); do
    [[ -s $RUN_DIR/s3rver.out ]] && break
    kill -0 "$S3_PID" 2>/dev/null || die "s3rver exited during start-up: $(cat "$RUN_DIR/s3rver.log")"
    sleep 0.1
  done
  S3_ENDPOINT=$(sed -n 's/.*"endpoint":"\([^"]*\)".*/\1/p' "$RUN_DIR/s3rver.out")
  S3RVER_VERSION=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' "$RUN_DIR/s3rver.out")
  [[ -n $S3_ENDPOINT ]] || die "s3rver did not start in 20 s: $(cat "$RUN_DIR/s3rver.log")"
  PORTS_TAKEN="$PORTS_TAKEN${S3_ENDPOINT##*:} "
  # The AWS SDK's notice that it will want Node 22 from 2027 would otherwise be the only line in the logs.
  S3_ENV=(MIRROR_S3_BUCKET="$S3_BUCKET" MIRROR_S3_ENDPOINT="$S3_ENDPOINT" MIRROR_S3_REGION=us-east-1
    MIRROR_S3_FORCE_PATH_STYLE=true MIRROR_S3_ACCESS_KEY_ID=S3RVER MIRROR_S3_SECRET_ACCESS_KEY=S3RVER
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true)
  log "copying the package into the bucket: goldmirror migrate-storage --to s3"
  t0=$(now)
  env MIRROR_DATA_DIR="$DATA" MIRROR_LOG_LEVEL=warn "${S3_ENV[@]}" \
    node "$GM_ROOT/bin/goldmirror.js" migrate-storage --to s3 --json >"$RUN_DIR/migrate.json" 2>"$RUN_DIR/migrate.log" &
  mig=$!
  node "$LIB/proc.mjs" watch "$mig" "$RUN_DIR/migrate-rss.json" 100 &
  watcher=$!
  BG_PIDS+=("$mig" "$watcher")
  wait "$mig" || die "migrate-storage failed: $(cat "$RUN_DIR/migrate.log" "$RUN_DIR/migrate.json")"
  t1=$(now)
  kill -TERM "$watcher" 2>/dev/null || true
  wait "$watcher" || true
  migrated=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    process.stdout.write(r.ok && r.copied.length === 1 && r.copied[0].sha256 === process.argv[2] ? "1" : "0")' \
    "$RUN_DIR/migrate.json" "$SHA")
  check "migrate-storage --to s3 copied the package into s3rver" "$migrated" "$(calc "$t1 - $t0") s"
  extra "migrate-storage --to s3 of the file (s)" "$(calc "$t1 - $t0")"
  extra "migrate-storage --to s3 throughput (MB/s)" "$(calc "$FILE_BYTES / ($t1 - $t0) / 1e6")"
  extra "migrate-storage --to s3 peak RSS (MiB)" "$(awk -v k="$(jnum "$(cat "$RUN_DIR/migrate-rss.json" 2>/dev/null)" peak_kib)" 'BEGIN { printf "%.1f", k / 1024 }')"
  # The catalog as the fs goldmirror has it (no process has it open now); the blob is only in the bucket.
  DATA_S3=$RUN_DIR/data-s3
  mkdir -p "$DATA_S3"
  chmod 750 "$DATA_S3"
  cp -p "$DATA"/goldmirror.db* "$DATA_S3"/
fi

GM_PORT=$(new_port)
log "starting goldmirror on 127.0.0.1:$GM_PORT ($WORKERS worker(s))"
MIRROR_DATA_DIR=$DATA MIRROR_HOST=127.0.0.1 MIRROR_PORT=$GM_PORT MIRROR_LOG_LEVEL=warn MIRROR_WORKERS=$WORKERS \
  node "$GM_ROOT/bin/goldmirror.js" serve >"$RUN_DIR/goldmirror.log" 2>&1 &
GM_PID=$!
GM_URL="http://127.0.0.1:$GM_PORT/d/$SHA/$NAME"

GS_URL="" GS_PORT=""
if [[ $STORAGE == s3 ]]; then
  GS_PORT=$(new_port)
  log "starting goldmirror-s3 (MIRROR_STORAGE=s3, bucket at $S3_ENDPOINT) on 127.0.0.1:$GS_PORT ($WORKERS worker(s))"
  env MIRROR_DATA_DIR="$DATA_S3" MIRROR_STORAGE=s3 "${S3_ENV[@]}" MIRROR_HOST=127.0.0.1 MIRROR_PORT="$GS_PORT" \
    MIRROR_LOG_LEVEL=warn MIRROR_WORKERS="$WORKERS" \
    node "$GM_ROOT/bin/goldmirror.js" serve >"$RUN_DIR/goldmirror-s3.log" 2>&1 &
  GS_PID=$!
  GS_URL="http://127.0.0.1:$GS_PORT/d/$SHA/$NAME"
fi

# nginx serves the very same blob file (symlink), so both read the same page cache.
NGX=$RUN_DIR/nginx
mkdir -p "$NGX/www" "$NGX/temp"
ln -s "$BLOB" "$NGX/www/$NAME"
NG_PORT=$(new_port)
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
wait_all_workers() { # NAME PID PORT
  ((WORKERS > 1)) || return 0
  local seen=" " w
  for _ in $(seq 300); do
    w=$(curl -sf -o /dev/null -D - --max-time 2 "http://127.0.0.1:$3/healthz" |
      tr -d '\r' | awk -F': ' 'tolower($1) == "x-goldmirror-worker" { print $2 }') || true
    [[ -z $w || $seen == *" $w "* ]] || seen="$seen$w "
    (($(wc -w <<<"$seen") >= WORKERS)) && return 0
    kill -0 "$2" 2>/dev/null || die "$1 exited during start-up (logs in $RUN_DIR)"
    sleep 0.1
  done
  die "only workers$seen of $WORKERS of $1 answered after 30 s"
}
wait_healthy goldmirror "$GM_PID" "http://127.0.0.1:$GM_PORT/healthz"
wait_all_workers goldmirror "$GM_PID" "$GM_PORT"
if [[ $STORAGE == s3 ]]; then
  wait_healthy goldmirror-s3 "$GS_PID" "http://127.0.0.1:$GS_PORT/healthz"
  wait_all_workers goldmirror-s3 "$GS_PID" "$GS_PORT"
fi
wait_healthy nginx "$NG_PID" "http://127.0.0.1:$NG_PORT/healthz"
NG_WORKERS=$(pgrep -P "$NG_PID" | tr '\n' ' ')
GM_PROCS=$(($(node "$LIB/proc.mjs" count "$GM_PID")))
log "goldmirror pid $GM_PID ($GM_PROCS processes: $WORKERS worker(s)$( ((WORKERS > 1)) && echo ' + primary')) $GM_URL"
log "nginx      pid $NG_PID (workers $NG_WORKERS) $NG_URL"
[[ $STORAGE == fs ]] || log "goldmirror-s3 pid $GS_PID $GS_URL; s3rver $S3RVER_VERSION pid $S3_PID $S3_ENDPOINT"

url_of() { case $1 in goldmirror) echo "$GM_URL" ;; goldmirror-s3) echo "$GS_URL" ;; *) echo "$NG_URL" ;; esac; }
pid_of() { case $1 in goldmirror) echo "$GM_PID" ;; goldmirror-s3) echo "$GS_PID" ;; *) echo "$NG_PID" ;; esac; }
cpu_of() { node "$LIB/proc.mjs" cpu "$(pid_of "$1")"; }
# The S3 server's CPU while goldmirror-s3 is measured (what a real deployment pays on the storage side instead).
store_cpu() { if [[ $1 == goldmirror-s3 ]]; then node "$LIB/proc.mjs" cpu "$S3_PID"; else echo 0; fi; }
store_field() { # TARGET CPU_BEFORE CPU_AFTER: the JSON field of the S3 server's CPU, for goldmirror-s3 only
  [[ $1 != goldmirror-s3 ]] || printf ',"store_cpu_s":%s' "$(calc "$3 - $2")"
}
rss_mib() { awk -v k="$(node "$LIB/proc.mjs" rss "$(pid_of "$1")")" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ------------------------------------------------------------------ 4a. correctness
log "correctness checks"
extra "goldmirror RSS after start-up (MiB)" "$(rss_mib goldmirror)"
extra "nginx RSS after start-up, master + workers (MiB)" "$(rss_mib nginx)"
[[ $STORAGE == fs ]] || extra "goldmirror-s3 RSS after start-up (MiB)" "$(rss_mib goldmirror-s3)"
for t in $TARGETS; do
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
  for t in $TARGETS; do
    code=$(curl -sS --max-time 30 -o "$RUN_DIR/window" -w '%{http_code}' -r "$off-$last" "$(url_of "$t")")
    got=$(openssl dgst -sha256 -r "$RUN_DIR/window" | cut -c1-64)
    [[ $code == 206 && $got == "$want" ]] || ok=0
    detail="$detail $t $code ${got:0:12}"
  done
  check "window $off-$last identical on every server and equal to the file" "$ok" "$detail"
done
rm -f "$RUN_DIR/window"
# One full download per server, hashed: also warms the page cache and the servers.
for t in $TARGETS; do
  t0=$(now)
  got=$(curl -sS --max-time "$MAX_TIME" "$(url_of "$t")" | openssl dgst -sha256 -r | cut -c1-64) || got=curl-failed
  check "$t full download sha256 matches" "$([[ $got == "$SHA" ]] && echo 1 || echo 0)" "$(calc "$(now) - $t0") s incl. hashing"
done
extra "goldmirror RSS after the warm-up downloads (MiB)" "$(rss_mib goldmirror)"
[[ $STORAGE == fs ]] || extra "goldmirror-s3 RSS after the warm-up downloads (MiB)" "$(rss_mib goldmirror-s3)"
# Background work in the server (jobs, verification) would skew everything: measure it idle.
c0=$(cpu_of goldmirror); sleep 2; extra "goldmirror CPU while idle for 2 s (s)" "$(calc "$(cpu_of goldmirror) - $c0")"
if [[ $STORAGE == s3 ]]; then
  c0=$(cpu_of goldmirror-s3)
  sleep 2
  extra "goldmirror-s3 CPU while idle for 2 s (s)" "$(calc "$(cpu_of goldmirror-s3) - $c0")"
fi

write_params() {
  cat >"$RUN_DIR/params.json" <<EOF
{"mode":"$MODE","started_at":"$STARTED_AT","phases":"$PHASES","file_bytes":$FILE_BYTES,"sha256":"$SHA",
 "seed":"$SEED","file_name":"$NAME","runs":$RUNS,"rounds":$ROUNDS,"duration":$DURATION,"concurrency":$CONC,
 "range_bytes":$RANGE_BYTES,"range_conns":$RANGE_CONNS,"small_conns":$SMALL_CONNS,"threads":$THREADS,
 "stall_clients":$STALL_CLIENTS,"stall_rounds":$STALL_ROUNDS,
 "workers":$WORKERS,"goldmirror_processes":$GM_PROCS,"nginx_workers":$(wc -w <<<"$NG_WORKERS"),
 "goldmirror_url":"$GM_URL","nginx_url":"$NG_URL","goldmirror_root":"$GM_ROOT",
 "storage":"$STORAGE","targets":"$TARGETS","goldmirror_s3_url":"$GS_URL","s3_endpoint":"$S3_ENDPOINT",
 "s3rver_version":"$S3RVER_VERSION",
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
  [[ $STORAGE == fs ]] ||
    printf 'GS_URL=%s\nGS_PID=%s\nS3_ENDPOINT=%s\nS3_PID=%s\n' "$GS_URL" "$GS_PID" "$S3_ENDPOINT" "$S3_PID" >>"$WORK/serve.env"
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
order_of() { # REP: the targets rotated by REP (two targets: alternating)
  local -a t=($TARGETS) out=()
  local i
  for ((i = 0; i < ${#t[@]}; i++)); do out+=("${t[$(((i + $1) % ${#t[@]}))]}"); done
  echo "${out[*]}"
}

# (a) one full download
phase_a() { # TARGET REP ORDER
  local url c0 c1 s0 s1 out code size secs
  url=$(url_of "$1")
  c0=$(cpu_of "$1")
  s0=$(store_cpu "$1")
  out=$(curl -sS -o /dev/null --max-time "$MAX_TIME" -w '%{http_code} %{size_download} %{time_total}' "$url") || out="000 0 0"
  c1=$(cpu_of "$1")
  s1=$(store_cpu "$1")
  read -r code size secs <<<"$out"
  [[ $code == 200 && $size == "$FILE_BYTES" ]] || die "(a) $1: status $code, $size of $FILE_BYTES bytes"
  printf '{"phase":"a","target":"%s","rep":%d,"order":%d,"bytes":%s,"seconds":%s,"cpu_s":%s%s}\n' \
    "$1" "$2" "$3" "$size" "$secs" "$(calc "$c1 - $c0")" "$(store_field "$1" "$s0" "$s1")" >>"$SAMPLES"
  log "(a) pair $(($2 + 1)) $1: $(calc "$size / $secs / 1e6") MB/s"
}

# (b) CONC parallel full downloads
phase_b() { # TARGET REP ORDER
  local url pid c0 c1 s0 s1 t0 t1 k watcher fails=0 code size
  url=$(url_of "$1")
  pid=$(pid_of "$1")
  c0=$(cpu_of "$1")
  s0=$(store_cpu "$1")
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
  s1=$(store_cpu "$1")
  for ((k = 0; k < CONC; k++)); do
    read -r code size <"$RUN_DIR/b.$k" || true
    [[ $code == 200 && $size == "$FILE_BYTES" ]] || fails=$((fails + 1))
  done
  ((fails == 0)) || die "(b) $1: $fails of $CONC downloads failed or were short"
  printf '{"phase":"b","target":"%s","rep":%d,"order":%d,"downloads":%d,"bytes":%s,"seconds":%s,"cpu_s":%s,"peak_rss_kib":%s%s}\n' \
    "$1" "$2" "$3" "$CONC" "$((CONC * FILE_BYTES))" "$(calc "$t1 - $t0")" "$(calc "$c1 - $c0")" \
    "$(jnum "$(cat "$RUN_DIR/rss.json")" peak_kib)" "$(store_field "$1" "$s0" "$s1")" >>"$SAMPLES"
  log "(b) pair $(($2 + 1)) $1: $(calc "$CONC * $FILE_BYTES / ($t1 - $t0) / 1e6") MB/s, peak RSS $(jnum "$(cat "$RUN_DIR/rss.json")" peak_kib) KiB, CPU $(calc "$c1 - $c0") s"
}

# (c), (d) wrk
run_wrk() { # PHASE TARGET REP ORDER CONNS SCRIPT [SCRIPT ARGS...]
  local phase=$1 target=$2 rep=$3 order=$4 conns=$5 script=$6 c0 c1 s0 s1 out json
  shift 6
  c0=$(cpu_of "$target")
  s0=$(store_cpu "$target")
  out=$(BENCH_LIB=$LIB timeout $((DURATION + 60)) wrk -t "$THREADS" -c "$conns" -d "${DURATION}s" --timeout 10s \
    -s "$LIB/$script" "$(url_of "$target")" ${1+-- "$@"} 2>&1) || die "($phase) wrk failed against $target: $out"
  c1=$(cpu_of "$target")
  s1=$(store_cpu "$target")
  json=$(sed -n 's/^BENCHJSON //p' <<<"$out")
  [[ -n $json ]] || die "($phase) no result from wrk: $out"
  printf '{"phase":"%s","target":"%s","rep":%d,"order":%d,"cpu_s":%s%s,"wrk":%s}\n' \
    "$phase" "$target" "$rep" "$order" "$(calc "$c1 - $c0")" "$(store_field "$target" "$s0" "$s1")" "$json" >>"$SAMPLES"
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
if [[ $STORAGE == s3 ]]; then
  extra "goldmirror-s3 RSS at the end (MiB)" "$(rss_mib goldmirror-s3)"
  extra "s3rver RSS at the end (MiB)" "$(awk -v k="$(node "$LIB/proc.mjs" rss "$S3_PID")" 'BEGIN { printf "%.1f", k / 1024 }')"
  extra "goldmirror-s3 log lines (stdout+stderr, level warn)" "$(wc -l <"$RUN_DIR/goldmirror-s3.log")"
fi

# ------------------------------------------------------------------ 5. report
log "writing report to $OUT"
node "$LIB/report.mjs" "$RUN_DIR" "$OUT"
