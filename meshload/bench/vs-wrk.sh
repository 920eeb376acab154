#!/usr/bin/env bash
# Throughput of meshload against wrk (and oha when installed), same upstream, same connections.
#
# Starts the release-built demo-app on a free loopback port, runs each tool closed-loop (max
# rate) for the same duration with the same connection count, and prints requests/s and the
# ratio to wrk. Run from the workspace root:
#
#   cargo build --release -p meshload -p mesh-examples --bins
#   meshload/bench/vs-wrk.sh            # defaults: C=16 D=10
#   C=64 D=20 meshload/bench/vs-wrk.sh
#
# Env: C (connections), D (seconds per tool), TARGET_DIR (cargo target dir, default
# $CARGO_TARGET_DIR or ./target). Nothing here is asserted by tests; numbers depend on the host.
set -euo pipefail

C=${C:-16}
D=${D:-10}
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}
REL="$TARGET_DIR/release"
for b in meshload demo-app; do
  [[ -x "$REL/$b" ]] || { echo "vs-wrk: $REL/$b : not built (cargo build --release -p meshload -p mesh-examples --bins)" >&2; exit 2; }
done

tmp=$(mktemp -d)
"$REL/demo-app" --color bench --listen 127.0.0.1:0 >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$tmp/demo.out" 2>/dev/null && break
  sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")
[[ -n "$addr" ]] || { echo "vs-wrk: demo-app : did not start" >&2; exit 1; }
url="http://$addr/"
threads=$(nproc)
echo "upstream $url (demo-app, release), $C connections, ${D}s per tool, $threads cores"

declare -A rps
if command -v wrk >/dev/null; then
  out=$(wrk -t"$threads" -c"$C" -d"${D}s" "$url")
  rps[wrk]=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
else
  echo "wrk not installed (apt-get install -y wrk): ratios will be missing"
fi

out=$("$REL/meshload" -qps 0 -c "$C" -t "${D}s" -loglevel Error -o json "$url" 2>/dev/null)
rps[meshload]=$(sed -n 's/^  "qps": \(.*\),$/\1/p' <<<"$out")

if command -v oha >/dev/null; then
  out=$(oha --no-tui -c "$C" -z "${D}s" "$url")
  rps[oha]=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
fi

printf '%-10s %14s %10s\n' tool 'requests/s' 'vs wrk'
for t in wrk meshload oha; do
  [[ -n "${rps[$t]:-}" ]] || continue
  if [[ -n "${rps[wrk]:-}" ]]; then
    ratio=$(awk -v a="${rps[$t]}" -v b="${rps[wrk]}" 'BEGIN {printf "%.2fx", a/b}')
  else
    ratio=-
  fi
  printf '%-10s %14.0f %10s\n' "$t" "${rps[$t]}" "$ratio"
done
