#!/usr/bin/env bash
# Throughput of meshload against wrk (and oha when installed): same upstream, same request, same
# connections, in the same run.
#
# Starts the release-built demo-app on a free loopback port and runs each tool closed-loop (max
# rate) for the same duration with the same connection count. Rounds alternate the tools (wrk,
# meshload, oha, then the next round) so that drift on a shared machine hits all of them alike.
# Prints each round, then per connection count the median requests/s and the median of the
# per-round ratios to wrk. Run from the workspace root:
#
#   cargo build --release -p meshload -p mesh-examples --bins
#   meshload/bench/vs-wrk.sh                      # defaults: C="4 16 64" D=5 ROUNDS=5
#   C=16 D=10 ROUNDS=9 meshload/bench/vs-wrk.sh
#   TLS=1 C=16 meshload/bench/vs-wrk.sh           # https (a throwaway certificate made by openssl)
#
# Env: C (connection counts, space-separated), D (seconds per tool and round), ROUNDS, TARGET_DIR
# (cargo target dir, default $CARGO_TARGET_DIR or ./target). Every tool sends meshload's request:
# wrk and oha get its User-Agent header. Nothing here is asserted by tests; numbers depend on the
# host, and on a shared 2-core machine one round can swing ±10 %: use the medians.
set -euo pipefail

C=${C:-4 16 64}
D=${D:-5}
ROUNDS=${ROUNDS:-5}
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}
REL="$TARGET_DIR/release"
for b in meshload demo-app; do
  [[ -x "$REL/$b" ]] || { echo "vs-wrk: $REL/$b : not built (cargo build --release -p meshload -p mesh-examples --bins)" >&2; exit 2; }
done

tmp=$(mktemp -d)
scheme=http
tls_app=()
tls_load=()
if [[ -n "${TLS:-}" ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 1 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null ||
    { echo "vs-wrk: TLS=1 needs openssl to make a certificate" >&2; exit 2; }
  scheme=https
  tls_app=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem")
  tls_load=(-k) # wrk does not verify certificates either
fi
"$REL/demo-app" --color bench --listen 127.0.0.1:0 "${tls_app[@]}" >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$tmp/demo.out" 2>/dev/null && break
  sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")
[[ -n "$addr" ]] || { echo "vs-wrk: demo-app : did not start" >&2; exit 1; }
url="$scheme://$addr/"
threads=$(nproc)
echo "upstream $url (demo-app, release), connections {$C}, ${D}s per tool, $ROUNDS rounds, $threads cores"

ua="User-Agent: meshload/$("$REL/meshload" --version | awk '{print $2}')"
run_wrk() { wrk -t"$threads" -c"$1" -d"${D}s" -H "$ua" "$url" | awk '/^Requests\/sec:/ {print $2}'; }
run_meshload() {
  "$REL/meshload" -qps 0 -c "$1" -t "${D}s" -loglevel Error -o json "${tls_load[@]}" "$url" 2>/dev/null |
    sed -n 's/^  "qps": \(.*\),$/\1/p'
}
run_oha() { oha --no-tui -c "$1" -z "${D}s" -H "$ua" "$url" | awk '/Requests\/sec:/ {print $2}'; }

tools=(meshload)
if command -v wrk >/dev/null; then
  tools=(wrk meshload)
else
  echo "wrk not installed (apt-get install -y wrk): ratios will be missing"
fi
command -v oha >/dev/null && tools+=(oha)

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A all
for c in $C; do
  for r in $(seq "$ROUNDS"); do
    line="c=$c round $r:"
    for t in "${tools[@]}"; do
      v=$("run_$t" "$c")
      all[$c/$t]+="$v "
      line+=$(printf ' %s %.0f' "$t" "$v")
    done
    echo "$line"
  done
done

printf '\n%-6s %-10s %14s %10s\n' conns tool 'requests/s' 'vs wrk'
for c in $C; do
  for t in "${tools[@]}"; do
    rps=$(median <<<"${all[$c/$t]}")
    ratio=-
    if [[ -n "${all[$c/wrk]:-}" ]]; then
      read -ra mine <<<"${all[$c/$t]}"
      read -ra base <<<"${all[$c/wrk]}"
      ratio=$(for i in "${!mine[@]}"; do awk -v a="${mine[$i]}" -v b="${base[$i]}" 'BEGIN {print a/b}'; done |
        median | awk '{printf "%.2fx", $1}')
    fi
    printf '%-6s %-10s %14.0f %10s\n' "$c" "$t" "$rps" "$ratio"
  done
done
