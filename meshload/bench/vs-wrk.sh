#!/usr/bin/env bash
# Throughput of meshload against wrk (and oha when installed), same upstream, same connections.
#
# Starts the release-built demo-app on a free loopback port, runs each tool closed-loop (max
# rate) for the same duration with the same connection count, and prints requests/s and the
# ratio to wrk. Run from the workspace root:
#
#   cargo build --release -p meshload -p mesh-examples --bins
#   meshload/bench/vs-wrk.sh            # defaults: C=16 D=10
#   C=64 D=20 ROUNDS=5 meshload/bench/vs-wrk.sh
#
# Env: C (connections), D (seconds per tool and round), ROUNDS (default 3), TARGET_DIR (cargo target dir, default
# $CARGO_TARGET_DIR or ./target). Nothing here is asserted by tests; numbers depend on the host.
set -euo pipefail

C=${C:-16}
D=${D:-10}
ROUNDS=${ROUNDS:-3}
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
echo "upstream $url (demo-app, release), $C connections, ${D}s per tool, $ROUNDS rounds, $threads cores"

# Rounds alternate the tools (wrk, meshload, oha, then the next round) so that drift on a shared
# machine hits all of them alike; the ratio printed is the median of the per-round ratios.
# Every tool sends the same request: wrk and oha get meshload's (fortio's) User-Agent header.
ua="User-Agent: meshload/$("$REL/meshload" --version | awk '{print $2}')"
run_wrk() { wrk -t"$threads" -c"$C" -d"${D}s" -H "$ua" "$url" | awk '/^Requests\/sec:/ {print $2}'; }
run_meshload() {
  "$REL/meshload" -qps 0 -c "$C" -t "${D}s" -loglevel Error -o json "$url" 2>/dev/null |
    sed -n 's/^  "qps": \(.*\),$/\1/p'
}
run_oha() { oha --no-tui -c "$C" -z "${D}s" -H "$ua" "$url" | awk '/Requests\/sec:/ {print $2}'; }

tools=(meshload)
command -v wrk >/dev/null && tools=(wrk meshload) ||
  echo "wrk not installed (apt-get install -y wrk): ratios will be missing"
command -v oha >/dev/null && tools+=(oha)

declare -A all
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for t in "${tools[@]}"; do
    v=$("run_$t")
    all[$t]+="$v "
    line+=$(printf ' %s %.0f' "$t" "$v")
  done
  echo "$line"
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '%-10s %14s %10s\n' tool 'requests/s' 'vs wrk'
for t in "${tools[@]}"; do
  rps=$(median <<<"${all[$t]}")
  ratio=-
  if [[ -n "${all[wrk]:-}" ]]; then
    read -ra mine <<<"${all[$t]}"
    read -ra base <<<"${all[wrk]}"
    ratio=$(for i in "${!mine[@]}"; do awk -v a="${mine[$i]}" -v b="${base[$i]}" 'BEGIN {print a/b}'; done |
      median | awk '{printf "%.2fx", $1}')
  fi
  printf '%-10s %14.0f %10s\n' "$t" "$rps" "$ratio"
done
