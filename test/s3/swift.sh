#!/usr/bin/env bash
# A throwaway one-node OpenStack Swift cluster with its S3 API (s3api + tempauth), for goldmirror's S3 tests.
#
#   test/s3/swift.sh install       apt-get installs Swift and memcached if missing (root or sudo)
#   test/s3/swift.sh start <dir>   builds and starts the cluster under <dir>, prints the MIRROR_TEST_S3_* lines
#   test/s3/swift.sh stop <dir>    stops every process start left running (by pid file); idempotent
#
# Usage: eval "$(test/s3/swift.sh start /tmp/gm-swift)"; ...; test/s3/swift.sh stop /tmp/gm-swift
#
# Everything lives under <dir>: etc/ (configs, rings), srv/node/d1 (storage, needs user xattrs: ext4 and xfs
# have them, tmpfs only from Linux 6.6), log/, run/ (pid files). Every server listens on 127.0.0.1 on a port
# the kernel picked free, runs in the foreground with workers = 0 (one process each, so its pid file is exact)
# and, when this script runs as root, as the `swift` user the Debian packages create.
#
# Swift hard-codes /etc/swift/swift.conf (hash path salt, storage policies, constraints) with no option to
# move it, so the servers run through etc/run-server.py, which calls swift's own set_swift_dir() (what
# swift-recon --swiftdir does) before loading anything; every other path comes from the configs' swift_dir.
#
# Only the library (python3-swift), swift-ring-builder (swift) and memcached are installed: swift-proxy,
# swift-account, swift-container and swift-object add only /usr/bin wrappers, /etc/swift samples and systemd
# units that start on boot against /etc/swift, none of which this cluster uses.
set -euo pipefail

readonly PYTHON=/usr/bin/python3
readonly PACKAGES=(python3-swift swift memcached)
readonly SERVERS=(memcached account-server container-server object-server proxy-server)
readonly ACCESS_KEY_ID=test:tester
readonly SECRET_ACCESS_KEY=testing
readonly REGION=us-east-1
readonly START_TIMEOUT_SECONDS=90

log() { echo "swift.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

usage() {
  echo "usage: $0 install | start <dir> | stop <dir>" >&2
  exit 2
}

install_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "packages already installed: ${PACKAGES[*]}"
    return
  fi
  local sudo=() output
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  local install=("${apt[@]}" install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}")
  log "installing ${missing[*]}"
  # apt's progress goes to a temp file that is shown only when the install fails.
  output=$(mktemp)
  if ! "${install[@]}" >"$output" 2>&1; then
    log "apt-get install failed; running apt-get update once and retrying"
    if ! { "${apt[@]}" update -qq && "${install[@]}"; } >"$output" 2>&1; then
      cat "$output" >&2
      rm -f "$output"
      die "apt-get install ${missing[*]} failed"
    fi
  fi
  rm -f "$output"
  log "installed ${missing[*]}"
}

# Prints "<pid> <start time>" for a live process, so a stale pid file never names a recycled pid; a zombie
# (dead, not yet reaped by whatever init adopted it) counts as gone.
process_identity() {
  local pid=$1 stat
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  [ "$1" != Z ] || return 1
  echo "$pid ${20}"
}

# True when the pid file names a process that is still the one this script started.
pid_file_alive() {
  local file=$1 pid recorded
  [ -f "$file" ] || return 1
  read -r pid recorded <"$file" || return 1
  [ -n "$pid" ] && [ "$(process_identity "$pid" 2>/dev/null)" = "$pid $recorded" ]
}

stop_cluster() {
  local dir=$1 file pid name pids=() files=()
  [ -d "$dir/run" ] || return 0
  for name in "${SERVERS[@]}"; do
    file="$dir/run/$name.pid"
    [ -f "$file" ] || continue
    if pid_file_alive "$file"; then
      read -r pid _ <"$file"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      files+=("$file")
    else
      rm -f "$file"
    fi
  done
  local deadline=$((SECONDS + 10)) still
  while :; do
    still=()
    for file in "${files[@]}"; do
      pid_file_alive "$file" && still+=("$file")
    done
    [ ${#still[@]} -eq 0 ] && break
    if [ $SECONDS -ge $deadline ]; then
      for file in "${still[@]}"; do
        read -r pid _ <"$file"
        log "pid $pid ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
      done
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  rm -f "${files[@]}" "$dir/run/proxy-port"
  [ ${#pids[@]} -eq 0 ] || log "stopped pids ${pids[*]} of $dir"
}

# Prints one kernel-chosen free port per argument, all distinct because every socket stays bound until the end.
free_ports() {
  "$PYTHON" - "$@" <<'EOF'
import socket, sys
socks = []
for _ in sys.argv[1:]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

write_configs() {
  local dir=$1 user=$2 proxy_port=$3 account_port=$4 container_port=$5 object_port=$6 memcached_port=$7
  local salt
  salt=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')

  cat >"$dir/etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = ${salt:0:16}
swift_hash_path_suffix = ${salt:16}

[storage-policy:0]
name = Policy-0
default = yes
EOF

  cat >"$dir/etc/run-server.py" <<'EOF'
import sys

from swift.common import utils

swift_dir, server, conf_file = sys.argv[1:4]
# Swift reads swift.conf from the hard-coded /etc/swift; this is the hook swift-recon uses to read another one.
utils.set_swift_dir(swift_dir)

from swift.common import constraints, storage_policy  # noqa: E402

storage_policy.reload_storage_policies()
constraints.reload_constraints()

from swift.common.wsgi import run_wsgi  # noqa: E402

options = {"verbose": True}
if server == "object-server":
    from swift.obj import server as object_server

    options["global_conf_callback"] = object_server.global_conf_callback
sys.exit(run_wsgi(conf_file, server, **options))
EOF

  # log_udp_* sends the servers' syslog copy to the discard port instead of the host's /dev/log; -v (verbose)
  # keeps a copy on stderr, which goes to log/<server>.log.
  local common
  common="bind_ip = 127.0.0.1
bind_timeout = 3
workers = 0
user = $user
swift_dir = $dir/etc
devices = $dir/srv/node
mount_check = false
recon_cache_path = $dir/cache
log_udp_host = 127.0.0.1
log_udp_port = 9
log_level = INFO"

  local kind port
  for kind in account container object; do
    case $kind in
      account) port=$account_port ;;
      container) port=$container_port ;;
      object) port=$object_port ;;
    esac
    cat >"$dir/etc/$kind-server.conf" <<EOF
[DEFAULT]
bind_port = $port
$common

[pipeline:main]
pipeline = healthcheck $kind-server

[app:$kind-server]
use = egg:swift#$kind

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
  done

  # The pipeline is Swift's sample (proxy-server.conf-sample) with s3api right before tempauth, as the s3api
  # docs ask, and slo/dlo/copy after the auth, which s3api needs for multipart uploads and copies.
  cat >"$dir/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_port = $proxy_port
$common

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl ratelimit s3api tempauth copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = $REGION

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $SECRET_ACCESS_KEY .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$memcached_port

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:tempurl]
use = egg:swift#tempurl

[filter:ratelimit]
use = egg:swift#ratelimit

[filter:copy]
use = egg:swift#copy

[filter:container-quotas]
use = egg:swift#container_quotas

[filter:account-quotas]
use = egg:swift#account_quotas

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes

[filter:symlink]
use = egg:swift#symlink
EOF
}

# Runs swift-ring-builder's own main() for all nine commands in one Python process: nine separate
# swift-ring-builder runs cost ~1 s of start-up each. Part power 8 keeps rebalance instant; 1 replica because
# there is one device.
build_rings() {
  local dir=$1 account_port=$2 container_port=$3 object_port=$4
  "$PYTHON" - "$dir/etc" "$account_port" "$container_port" "$object_port" >"$dir/log/rings.log" 2>&1 <<'EOF' ||
import sys

from swift.cli.ringbuilder import main

etc, ports = sys.argv[1], dict(zip(("account", "container", "object"), sys.argv[2:5]))
for kind, port in ports.items():
    builder = f"{etc}/{kind}.builder"
    for command in (
        ["create", "8", "1", "1"],
        ["add", "--region", "1", "--zone", "1", "--ip", "127.0.0.1", "--port", port, "--device", "d1",
         "--weight", "100"],
        ["rebalance"],
    ):
        try:
            main(["swift-ring-builder", builder, *command])
            status = 0
        except SystemExit as exit:
            status = exit.code or 0
        if status != 0:
            sys.exit(f"swift-ring-builder {builder} {' '.join(command)} exited {status}")
EOF
    die "swift-ring-builder failed; see $dir/log/rings.log"
}

# Waits until every server answers /healthcheck and a SigV4-signed ListBuckets succeeds through s3api.
wait_ready() {
  local dir=$1 proxy_port=$2 account_port=$3 container_port=$4 object_port=$5
  "$PYTHON" - "$dir" "$START_TIMEOUT_SECONDS" "$ACCESS_KEY_ID" "$SECRET_ACCESS_KEY" "$REGION" \
    "$proxy_port" "$account_port" "$container_port" "$object_port" <<'EOF'
import datetime, hashlib, hmac, os, sys, time, urllib.error, urllib.request

run_dir, timeout, access, secret, region = sys.argv[1] + "/run", float(sys.argv[2]), *sys.argv[3:6]
proxy, *backends = sys.argv[6:]
deadline = time.monotonic() + timeout


def alive():
    for name in os.listdir(run_dir):
        pid, start = open(os.path.join(run_dir, name)).read().split()
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
        except OSError:
            stat = None
        if stat is None or stat[19] != start or stat[0] == "Z":
            sys.exit(f"{name[:-4]} exited during start; see its log")


def get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return None, str(e).encode()


def list_buckets():
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    host, payload = f"127.0.0.1:{proxy}", hashlib.sha256(b"").hexdigest()
    signed = "host;x-amz-content-sha256;x-amz-date"
    canonical = f"GET\n/\n\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\n{signed}\n{payload}"
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return get(f"http://{host}/", {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={signature}",
    })


last = b""
while time.monotonic() < deadline:
    alive()
    statuses = [get(f"http://127.0.0.1:{port}/healthcheck")[0] for port in [proxy, *backends]]
    if statuses == [200] * 4:
        status, body = list_buckets()
        if status == 200 and b"ListAllMyBucketsResult" in body:
            sys.exit(0)
        last = f"ListBuckets answered {status}: {body[:300]!r}".encode()
    else:
        last = f"healthcheck statuses (proxy, account, container, object): {statuses}".encode()
    time.sleep(0.1)
sys.exit(f"not ready after {timeout:.0f} s; last: {last.decode()}")
EOF
}

# Starts one server in its own session, as the run user, with a pid file holding "<pid> <start time>".
launch() {
  local dir=$1 user=$2 name=$3
  shift 3
  local as_user=()
  [ "$(id -u)" -ne 0 ] || as_user=(setpriv --reuid="$user" --regid="$user" --init-groups --)
  # setsid does not fork here (a background job of a script is no process group leader), so $! is the server.
  setsid "${as_user[@]}" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$dir" TMPDIR="$dir/tmp" LANG=C.UTF-8 \
    PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 "$@" </dev/null >>"$dir/log/$name.log" 2>&1 &
  local pid=$!
  process_identity "$pid" >"$dir/run/$name.pid" || die "$name exited at once; see $dir/log/$name.log"
}

start_once() {
  local dir=$1 user=$2
  local ports proxy_port account_port container_port object_port memcached_port
  ports=$(free_ports proxy account container object memcached)
  read -r proxy_port account_port container_port object_port memcached_port <<<"$ports"
  log "ports: proxy $proxy_port, account $account_port, container $container_port, object $object_port, memcached $memcached_port"

  mkdir -p "$dir"/{etc,srv/node/d1,log,run,cache,tmp}
  touch "$dir/.goldmirror-swift"
  write_configs "$dir" "$user" "$proxy_port" "$account_port" "$container_port" "$object_port" "$memcached_port"
  build_rings "$dir" "$account_port" "$container_port" "$object_port"
  log "rings built after $SECONDS s; starting memcached and the account, container, object and proxy servers"
  [ "$(id -u)" -ne 0 ] || chown -R "$user:" "$dir"

  local as_user=()
  [ "$(id -u)" -ne 0 ] || as_user=(setpriv --reuid="$user" --regid="$user" --init-groups --)
  "${as_user[@]}" test -w "$dir/srv/node/d1" ||
    die "user $user cannot write under $dir (a parent dir it may not enter?); use a dir under /tmp"
  if ! "${as_user[@]}" "$PYTHON" -c 'import os, sys; os.setxattr(sys.argv[1], "user.swift.probe", b"1")' \
    "$dir/srv/node/d1" 2>>"$dir/log/xattr-probe.log"; then
    die "$dir/srv/node/d1 has no user xattrs (Swift stores object metadata in them); use a dir on ext4 or xfs"
  fi

  launch "$dir" "$user" memcached memcached -l 127.0.0.1 -p "$memcached_port" -U 0 -m 64
  local server
  for server in account-server container-server object-server proxy-server; do
    launch "$dir" "$user" "$server" "$PYTHON" "$dir/etc/run-server.py" "$dir/etc" "$server" "$dir/etc/$server.conf"
  done
  wait_ready "$dir" "$proxy_port" "$account_port" "$container_port" "$object_port"
  echo "$proxy_port" >"$dir/run/proxy-port"
}

start_cluster() {
  local dir=$1
  command -v swift-ring-builder >/dev/null && command -v memcached >/dev/null &&
    [ -f /usr/lib/python3/dist-packages/swift/common/middleware/s3api/s3api.py ] ||
    die "Swift is not installed; run: $0 install"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  if [ -n "$(ls -A "$dir")" ]; then
    [ -f "$dir/.goldmirror-swift" ] || die "$dir is not empty and holds no cluster of this script; refusing to use it"
    local name
    for name in "${SERVERS[@]}"; do
      ! pid_file_alive "$dir/run/$name.pid" || die "a cluster is already running in $dir; stop it first"
    done
    find "$dir" -mindepth 1 -delete
  fi

  local user
  if [ "$(id -u)" -eq 0 ]; then
    user=swift
    getent passwd "$user" >/dev/null || die "user $user is missing (python3-swift creates it); run: $0 install"
  else
    user=$(id -un)
  fi

  local began=$SECONDS attempt status
  for attempt in 1 2 3; do
    # A subshell outside any condition keeps errexit on inside start_once.
    set +e
    (set -e; start_once "$dir" "$user")
    status=$?
    set -e
    if [ $status -eq 0 ]; then
      log "ready in $((SECONDS - began)) s (attempt $attempt); logs in $dir/log"
      local port
      port=$(cat "$dir/run/proxy-port")
      echo "MIRROR_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
      echo "MIRROR_TEST_S3_ACCESS_KEY_ID=$ACCESS_KEY_ID"
      echo "MIRROR_TEST_S3_SECRET_ACCESS_KEY=$SECRET_ACCESS_KEY"
      echo "MIRROR_TEST_S3_REGION=$REGION"
      return 0
    fi
    stop_cluster "$dir"
    # Only a port taken between picking and binding is worth another try with fresh ports.
    if ! grep -qs 'Could not bind\|Address already in use\|failed to listen' "$dir"/log/*.log; then
      tail -n 30 "$dir"/log/*.log >&2 || true
      die "start failed; logs in $dir/log"
    fi
    log "a port was taken meanwhile; retrying with new ports"
    find "$dir" -mindepth 1 -delete
  done
  die "start failed $attempt times on port collisions"
}

[ $# -ge 1 ] || usage
case $1 in
  install)
    [ $# -eq 1 ] || usage
    install_packages
    ;;
  start)
    [ $# -eq 2 ] || usage
    start_cluster "$2"
    ;;
  stop)
    [ $# -eq 2 ] || usage
    [ -d "$2" ] || exit 0
    stop_cluster "$(cd "$2" && pwd -P)"
    ;;
  *) usage ;;
esac
