#!/usr/bin/env bash
# meshd's memory with many idle keep-alive clients, and whether it is returned once they close,
# per global allocator. For each allocator a release meshd is built (cargo feature), started on
# loopback as the walkthrough's green node in front of a release demo-app, and
# bench/idle-clients.py opens N keep-alive connections through the listener (one GET
# each), leaves them idle, closes them, ROUNDS times. VmRSS/VmHWM from /proc/PID/status, in KiB.
#
#   bench/idle-rss.sh                          # every allocator below
#   ALLOCATORS="glibc mimalloc" N=2000 bench/idle-rss.sh
#   N=500 BODY=1048576 bench/idle-rss.sh       # each client first sends 1 MiB (echoed back)
#
# Needs python3 and curl; raises its own open-file limit to N+200 (the hard limit must allow
# it). Env: ALLOCATORS, N (default 10000), ROUNDS (5), SETTLE (seconds after the last close
# before the "settled" column, default 10), BODY (bytes each client POSTs, default 0: a GET),
# TARGET_DIR.
# Allocators: glibc (no feature), glibc-a2 (MALLOC_ARENA_MAX=2), jemalloc (meshd's default: with
# its background purging thread), jemalloc-nobg (without it: _RJEM_MALLOC_CONF=
# background_thread:false), mimalloc.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}
R="$TARGET_DIR/release"
ALLOCATORS=${ALLOCATORS:-glibc glibc-a2 jemalloc jemalloc-nobg mimalloc}
N=${N:-10000}
ROUNDS=${ROUNDS:-5}
SETTLE=${SETTLE:-10}
BODY=${BODY:-0}
ulimit -n $((N + 200))

W=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

cargo build --release -q -p mesh-examples --bins
feature_of() { echo "${1%-*}"; } # glibc-a2 -> glibc, jemalloc-nobg -> jemalloc
env_of() {
  case "$1" in
    glibc-a2) echo MALLOC_ARENA_MAX=2 ;;
    jemalloc-nobg) echo _RJEM_MALLOC_CONF=background_thread:false ;;
  esac
}

for a in $ALLOCATORS; do
  feature=$(feature_of "$a")
  [[ -x "$W/meshd-$feature" ]] && continue
  if [[ "$feature" == glibc ]]; then
    cargo build --release -q -p meshd --bin meshd --no-default-features
  else
    cargo build --release -q -p meshd --bin meshd --no-default-features --features "$feature"
  fi
  cp "$R/meshd" "$W/meshd-$feature"
done

cp -r examples/walkthrough "$W/config"
sed -i "s#/dev/stdout#$W/access.log#" "$W"/config/*.json
"$R/demo-app" --color green --listen 127.0.0.1:0 >"$W/app.out" & pids+=($!)
for _ in $(seq 100); do [[ -s "$W/app.out" ]] && break; sleep 0.05; done
app=$(sed -n 's/^listening on //p' "$W/app.out")

printf '%-10s %5s %8s %10s %7s %8s %8s %8s\n' allocator round before connected "per cx" closed settled HWM
for a in $ALLOCATORS; do
  rm -f "$W/admin"
  # shellcheck disable=SC2046 # env_of prints nothing or one NAME=VALUE
  env $(env_of "$a") "$W/meshd-$(feature_of "$a")" --config-dir "$W/config" --admin 127.0.0.1:0 \
    --admin-address-path "$W/admin" --socket "$W/sock-$a" --node green \
    --listen green=127.0.0.1:0 --app "green=$app" 2>"$W/meshd-$a.err" & m=$!
  pids+=("$m")
  for _ in $(seq 300); do [[ -s "$W/admin" ]] && break; sleep 0.1; done
  admin=$(cat "$W/admin")
  lis=$(curl -s "http://$admin/listeners" | sed -n 's/^green-ingress:://p')
  python3 bench/idle-clients.py "$m" "$lis" "$admin" "$N" "$ROUNDS" "$SETTLE" "$a" "$BODY"
  kill -INT $m; wait $m 2>/dev/null || true
done
cargo build --release -q -p meshd --bin meshd # leave the default build in place
echo "(KiB; per cx in bytes; closed: right after meshd closed the last connection; settled: ${SETTLE}s later)"
