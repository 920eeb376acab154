#!/usr/bin/env bash
# Starts the App Mesh "connection pools" walkthrough on this machine: the red and green demo
# apps and one meshd serving the gateway ingress-gw and the virtual nodes red and green.
# Everything listens on loopback; Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p meshd -p mesh-examples -p meshload -p meshstat -p meshctl
B=$PWD/target/release
RUN=$(mktemp -d /tmp/mesh-walkthrough.XXXXXX)
cp examples/walkthrough/*.json "$RUN/"
mkdir -p "$RUN/config" && mv "$RUN"/*.json "$RUN/config/"
# Access logs to a file instead of the terminal.
sed -i "s#/dev/stdout#$RUN/access.log#" "$RUN"/config/*.json

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
"$B/demo-app" --color red --listen 127.0.0.1:9081 >/dev/null & pids+=($!)
"$B/demo-app" --color green --listen 127.0.0.1:9082 >/dev/null & pids+=($!)
"$B/meshd" --config-dir "$RUN/config" --state-dir "$RUN/state" --admin 127.0.0.1:9901 --socket "$RUN/meshd.sock" \
  --admin-address-path "$RUN/admin.addr" \
  --listen ingress-gw=127.0.0.1:8088 \
  --listen red=127.0.0.1:18081 --app red=127.0.0.1:9081 \
  --listen green=127.0.0.1:18082 --app green=127.0.0.1:9082 \
  2>"$RUN/meshd.log" & pids+=($!)
for _ in $(seq 100); do [ -s "$RUN/admin.addr" ] && break; sleep 0.1; done
[ -s "$RUN/admin.addr" ] || { echo "meshd did not start:"; cat "$RUN/meshd.log"; exit 1; }

cat <<MSG
The walkthrough runs (files in $RUN):
  gateway ingress-gw  http://127.0.0.1:8088/paths/red, /paths/green  (pool 5 connections / 5 pending)
  node green          http://127.0.0.1:18082/                       (pool 10 / 10)
  admin               http://127.0.0.1:9901/stats

In another terminal:
  export PATH=$B:\$PATH MESHD_ADMIN=127.0.0.1:9901 MESHD_SOCKET=$RUN/meshd.sock
  meshload -c 10 -qps 100 -t 10s 'http://127.0.0.1:8088/paths/red?sleep=200'
  meshstat 'self_redirect.*(upstream_cx_active|cx_open|rq_pending_active)'
  meshload -c 20 -qps 500 -t 10s 'http://127.0.0.1:18082/?sleep=200'
  meshstat 'http.ingress.downstream_cx_active|green_http_8080.*(upstream_cx_active|cx_open)'
  meshstat why
  meshstat log $RUN/access.log

Ctrl-C stops everything.
MSG
wait
