#!/usr/bin/env bash
# Starts the App Mesh "connection pools" walkthrough on this machine: the red and green demo
# apps and one meshd serving the gateway ingress-gw and the virtual nodes red and green.
# Everything listens on loopback; Ctrl-C stops it all. The config is copied to a temporary
# directory: nothing under examples/ is modified.
#
#   examples/walkthrough.sh [--admin-port N] [--gateway-port N] [--green-port N] [--red-port N]
#
# Ports also come from MESH_ADMIN_PORT, MESH_GATEWAY_PORT, MESH_GREEN_PORT, MESH_RED_PORT
# (defaults 9901, 8088, 18082, 18081; the apps take 9081 and 9082, or MESH_RED_APP_PORT and
# MESH_GREEN_APP_PORT). MESH_BIN=DIR uses the binaries in DIR instead of building them.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN=${MESH_ADMIN_PORT:-9901} GW=${MESH_GATEWAY_PORT:-8088}
GREEN=${MESH_GREEN_PORT:-18082} RED=${MESH_RED_PORT:-18081}
RED_APP=${MESH_RED_APP_PORT:-9081} GREEN_APP=${MESH_GREEN_APP_PORT:-9082}
while [ $# -gt 0 ]; do
  case "$1" in
    --admin-port) ADMIN=$2; shift 2 ;;
    --gateway-port) GW=$2; shift 2 ;;
    --green-port) GREEN=$2; shift 2 ;;
    --red-port) RED=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "walkthrough.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# A port something already listens on (Envoy's admin on 9901, another walkthrough, ...).
busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "admin:$ADMIN:--admin-port or MESH_ADMIN_PORT" "gateway:$GW:--gateway-port or MESH_GATEWAY_PORT" \
         "green:$GREEN:--green-port or MESH_GREEN_PORT" "red:$RED:--red-port or MESH_RED_PORT" \
         "red app:$RED_APP:MESH_RED_APP_PORT" "green app:$GREEN_APP:MESH_GREEN_APP_PORT"; do
  IFS=: read -r what port how <<<"$p"
  if busy "$port"; then
    echo "walkthrough.sh: port $port ($what) is in use on 127.0.0.1; pick another with $how" >&2
    exit 1
  fi
done

if [ -n "${MESH_BIN:-}" ]; then
  B=$MESH_BIN
else
  echo "Building the release binaries (cargo build --release; the first build takes a few minutes)..."
  cargo build --release -q -p meshd -p mesh-examples -p meshload -p meshstat -p meshctl
  B=$PWD/target/release
fi
RUN=$(mktemp -d /tmp/mesh-walkthrough.XXXXXX)
mkdir -p "$RUN/config"
cp examples/walkthrough/*.json "$RUN/config/"
# Access logs to a file instead of the terminal.
sed -i "s#/dev/stdout#$RUN/access.log#" "$RUN"/config/*.json

echo "Starting the demo apps red (127.0.0.1:$RED_APP) and green (127.0.0.1:$GREEN_APP) and meshd (logs in $RUN)..."
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
trap 'exit 130' INT TERM
"$B/demo-app" --color red --listen "127.0.0.1:$RED_APP" >/dev/null & pids+=($!)
"$B/demo-app" --color green --listen "127.0.0.1:$GREEN_APP" >/dev/null & pids+=($!)
"$B/meshd" --config-dir "$RUN/config" --state-dir "$RUN/state" --admin "127.0.0.1:$ADMIN" --socket "$RUN/meshd.sock" \
  --admin-address-path "$RUN/admin.addr" \
  --listen "ingress-gw=127.0.0.1:$GW" \
  --listen "red=127.0.0.1:$RED" --app "red=127.0.0.1:$RED_APP" \
  --listen "green=127.0.0.1:$GREEN" --app "green=127.0.0.1:$GREEN_APP" \
  2>"$RUN/meshd.log" & pids+=($!)
for _ in $(seq 100); do [ -s "$RUN/admin.addr" ] && break; sleep 0.1; done
[ -s "$RUN/admin.addr" ] || { echo "meshd did not start:"; cat "$RUN/meshd.log"; exit 1; }

cat <<MSG
The walkthrough runs (files in $RUN):
  gateway ingress-gw  http://127.0.0.1:$GW/paths/red, /paths/green  (pool 5 connections / 5 pending)
  node green          http://127.0.0.1:$GREEN/                       (pool 10 / 10)
  admin               http://127.0.0.1:$ADMIN/stats

In another terminal (each load holds more requests than the pool admits, so the breakers trip):
  export PATH=$B:\$PATH MESHD_ADMIN=127.0.0.1:$ADMIN MESHD_SOCKET=$RUN/meshd.sock
  meshload -c 20 -qps 100 -t 10s 'http://127.0.0.1:$GW/paths/red?sleep=200'
  meshstat 'self_redirect.*(upstream_cx_active|cx_open|rq_pending_active|pending_overflow)'
  meshload -c 30 -qps 500 -t 10s 'http://127.0.0.1:$GREEN/?sleep=200'
  meshstat 'http.ingress.downstream_cx_active|green_http_8080.*(upstream_cx_active|cx_open|pending_overflow)'
  meshstat why
  meshstat log $RUN/access.log

Ctrl-C stops everything.
MSG
wait
