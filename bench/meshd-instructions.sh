#!/usr/bin/env bash
# Instructions meshd executes per proxied request, counted by callgrind: exact and repeatable
# whatever else the machine does, so a change to the request path can be measured on a shared
# host where timings swing. Green node of the walkthrough in front of a release demo-app;
# meshload sends N1 then N2 requests in two runs and the difference is divided by N2-N1, which
# removes startup and shutdown.
#
#   cargo build --release -p meshd -p meshload -p mesh-examples --bins
#   bench/meshd-instructions.sh              # green logs to a file (the walkthrough)
#   NOLOG=1 bench/meshd-instructions.sh      # green without an access log
#   ALLOCATORS="glibc jemalloc mimalloc" bench/meshd-instructions.sh   # builds meshd with each
#                                            # allocator feature (glibc: none) and measures each
#
# Needs valgrind and curl. Env: N1 (default 1000), N2 (5000), TARGET_DIR, KEEP (a path to keep
# the N2 run's callgrind output at, for callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}
R="$TARGET_DIR/release"
N1=${N1:-1000}
N2=${N2:-5000}
MESHD=${MESHD:-$R/meshd}
for b in meshd meshload demo-app; do
  [[ -x "$R/$b" ]] || { echo "no $R/$b: run the cargo build line above first" >&2; exit 1; }
done

run() { # N -> instructions collected by meshd
  local W app m admin lis
  W=$(mktemp -d)
  cp -r examples/walkthrough "$W/config"
  if [[ "${NOLOG:-}" == 1 ]]; then
    python3 - "$W/config/vn-green.json" <<'P'
import json, sys
p = sys.argv[1]; d = json.load(open(p)); d["spec"].pop("logging", None); json.dump(d, open(p, "w"))
P
  fi
  sed -i "s#/dev/stdout#$W/access.log#" "$W"/config/*.json
  "$R/demo-app" --color green --listen 127.0.0.1:0 >"$W/app.out" & app=$!
  for _ in $(seq 100); do [[ -s "$W/app.out" ]] && break; sleep 0.05; done
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$MESHD" --config-dir "$W/config" --state-dir "$W/state" \
    --admin 127.0.0.1:0 --admin-address-path "$W/admin" --socket "$W/sock" --node green \
    --listen green=127.0.0.1:0 --app "green=$(sed -n 's/^listening on //p' "$W/app.out")" \
    2>"$W/meshd.err" & m=$!
  for _ in $(seq 300); do [[ -s "$W/admin" ]] && break; sleep 0.1; done
  admin=$(cat "$W/admin")
  lis=$(curl -s "http://$admin/listeners" | sed -n 's/^green-ingress:://p')
  "$R/meshload" -c 4 -qps 0 -n "$1" -loglevel Error "http://$lis/" >/dev/null 2>&1
  kill -INT $m; wait $m 2>/dev/null || true
  kill $app; wait $app 2>/dev/null || true
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$W/meshd.err"
  [[ -n "${KEEP:-}" ]] && cp "$W/cg.out" "$KEEP"; rm -rf "$W"
}

measure() { # label
  local a b
  a=$(run "$N1")
  b=$(run "$N2")
  awk -v a="$a" -v b="$b" -v n=$((N2 - N1)) -v note="${NOLOG:+ (no access log)}" -v l="$1" \
    'BEGIN {printf "meshd%s: %.0f instructions per proxied request%s\n", l, (b - a) / n, note}'
}

if [[ -z "${ALLOCATORS:-}" ]]; then
  measure ""
  exit
fi
B=$(mktemp -d)
for alloc in $ALLOCATORS; do
  if [[ "$alloc" == glibc ]]; then
    cargo build --release -q -p meshd --bin meshd --no-default-features
  else
    cargo build --release -q -p meshd --bin meshd --no-default-features --features "$alloc"
  fi
  cp "$R/meshd" "$B/meshd-$alloc"
done
for alloc in $ALLOCATORS; do
  MESHD="$B/meshd-$alloc" measure " ($alloc)"
done
cargo build --release -q -p meshd --bin meshd # leave the default build in place
rm -rf "$B"
