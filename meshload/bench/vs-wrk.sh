#!/usr/bin/env bash
# Throughput of meshload against wrk (and oha when installed): same upstream, same request, same
# connections, in the same run.
#
# Starts the release-built demo-app on a free loopback port and runs each tool closed-loop (max
# rate) for the same duration with the same connection count. Rounds alternate the tools (wrk,
# meshload, oha, then the next round) so that drift on a shared machine hits all of them alike.
# Prints each round, then per connection count the median requests/s, the median of the
# per-round ratios to wrk, the median client CPU (user + system) per request and its ratio to
# wrk's. Run from the workspace root:
#
#   cargo build --release -p meshload -p mesh-examples --bins
#   meshload/bench/vs-wrk.sh                      # defaults: C="4 16 64" D=5 ROUNDS=5 CPUS=split
#   C=16 D=10 ROUNDS=9 meshload/bench/vs-wrk.sh
#   CPUS=shared meshload/bench/vs-wrk.sh          # tools and upstream share every core
#   TLS=1 C=16 meshload/bench/vs-wrk.sh           # https (a throwaway certificate made by openssl)
#
# CPUS=split (the default, with 2 or more cores) pins the upstream to the first half of the cores
# and the tools to the rest, each tool running one thread per core it has (wrk -t, meshload
# -gomaxprocs): the usual way to run a load test, where the generator does not compete with its
# target. CPUS=shared runs everything on every core, each tool with one thread per core: then
# whatever CPU one client saves goes to the upstream's scheduler (measured: the upstream's CPU per
# request rises by as much), so requests/s mostly measure how the two sides share the cores.
#
# Env: C (connection counts, space-separated), D (seconds per tool and round), ROUNDS, CPUS,
# TARGET_DIR (cargo target dir, default $CARGO_TARGET_DIR or ./target). Every tool sends
# meshload's request: wrk and oha get its User-Agent header. Nothing here is asserted by tests;
# numbers depend on the host, and on a shared 2-core machine one round can swing ±10 %: use the
# medians.
set -euo pipefail

C=${C:-4 16 64}
D=${D:-5}
ROUNDS=${ROUNDS:-5}
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}
REL="$TARGET_DIR/release"
for b in meshload demo-app; do
  [[ -x "$REL/$b" ]] || { echo "vs-wrk: $REL/$b : not built (cargo build --release -p meshload -p mesh-examples --bins)" >&2; exit 2; }
done

cores=$(nproc)
CPUS=${CPUS:-split}
[[ $cores -ge 2 ]] || CPUS=shared
app_pin=()
tool_pin=()
threads=$cores
pinned=""
case $CPUS in
  split)
    half=$((cores / 2))
    app_pin=(taskset -c "0-$((half - 1))")
    tool_pin=(taskset -c "$half-$((cores - 1))")
    threads=$((cores - half))
    pinned=" (upstream on cpus 0-$((half - 1)), tools on $half-$((cores - 1)), $threads thread(s) each)"
    ;;
  shared) ;;
  *) echo "vs-wrk: CPUS=$CPUS : expected split or shared" >&2; exit 2 ;;
esac
command -v taskset >/dev/null || [[ $CPUS == shared ]] ||
  { echo "vs-wrk: CPUS=split needs taskset (util-linux)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "vs-wrk: needs GNU time at /usr/bin/time (apt-get install -y time)" >&2; exit 2; }

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
"${app_pin[@]}" "$REL/demo-app" --color bench --listen 127.0.0.1:0 "${tls_app[@]}" >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$tmp/demo.out" 2>/dev/null && break
  sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$tmp/demo.out")
[[ -n "$addr" ]] || { echo "vs-wrk: demo-app : did not start" >&2; exit 1; }
url="$scheme://$addr/"
echo "upstream $url (demo-app, release), connections {$C}, ${D}s per tool, $ROUNDS rounds, $cores cores, CPUS=$CPUS$pinned"

ua="User-Agent: meshload/$("$REL/meshload" --version | awk '{print $2}')"
# Each run_<tool> runs the tool pinned as CPUS says, under GNU time (its CPU into $tmp/time), and
# prints "<requests/s> <requests>".
timed() { "${tool_pin[@]}" /usr/bin/time -f '%U %S' -o "$tmp/time" "$@"; }
run_wrk() {
  timed wrk -t"$threads" -c"$1" -d"${D}s" -H "$ua" "$url" |
    awk '/requests in/ {n=$1} /^Requests\/sec:/ {r=$2} END {print r, n}'
}
run_meshload() {
  timed "$REL/meshload" -gomaxprocs "$threads" -qps 0 -c "$1" -t "${D}s" -loglevel Error -o json \
    "${tls_load[@]}" "$url" 2>/dev/null |
    awk '/^  "qps": / {gsub(",", "", $2); r=$2} /^  "calls": / {gsub(",", "", $2); n=$2} END {print r, n}'
}
run_oha() {
  timed oha --no-tui -c "$1" -z "${D}s" -H "$ua" "$url" |
    awk '/Requests\/sec:/ {r=$2} /\[200\]/ {n=$2} END {print r, n}'
}
# "<busy> <total>" jiffies of the upstream's cores (CPUS=split), from /proc/stat.
app_ticks() {
  awk -v hi="$((${half:-0} - 1))" '$1 ~ /^cpu[0-9]+$/ && substr($1, 4) + 0 <= hi {
    b += $2 + $3 + $4 + $7 + $8; t += $2 + $3 + $4 + $5 + $6 + $7 + $8 } END {print b + 0, t + 0}' /proc/stat
}
# measure TOOL C: "<requests/s> <client CPU µs per request> <upstream cores busy %>".
measure() {
  local out b0 t0 b1 t1
  read -r b0 t0 <<<"$(app_ticks)"
  out=$("run_$1" "$2")
  read -r b1 t1 <<<"$(app_ticks)"
  awk -v cpu="$(awk '{print $1 + $2}' "$tmp/time")" -v b=$((b1 - b0)) -v t=$((t1 - t0)) \
    '{printf "%s %.2f %.0f\n", $1, ($2 > 0 ? cpu * 1e6 / $2 : 0), (t > 0 ? 100 * b / t : 0)}' <<<"$out"
}

tools=(meshload)
if command -v wrk >/dev/null; then
  tools=(wrk meshload)
else
  echo "wrk not installed (apt-get install -y wrk): ratios will be missing"
fi
command -v oha >/dev/null && tools+=(oha)

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Median of the per-round ratios a/b (b = wrk's) of two space-separated series.
ratio() {
  local -a mine base
  read -ra mine <<<"$1"
  read -ra base <<<"$2"
  for i in "${!mine[@]}"; do awk -v a="${mine[$i]}" -v b="${base[$i]}" 'BEGIN {print (b > 0 ? a / b : 0)}'; done |
    median | awk '{printf "%.2fx", $1}'
}

declare -A rps cpu busy app
for c in $C; do
  for r in $(seq "$ROUNDS"); do
    line="c=$c round $r:"
    for t in "${tools[@]}"; do
      read -r v u a <<<"$(measure "$t" "$c")"
      app[$c/$t]+="$a "
      rps[$c/$t]+="$v "
      cpu[$c/$t]+="$u "
      busy[$c/$t]+="$(awk -v r="$v" -v u="$u" -v n="$threads" 'BEGIN {print r * u / n / 1e4}') "
      line+=$(printf ' %s %.0f (%s µs)' "$t" "$v" "$u")
    done
    echo "$line"
  done
done

# "client busy": the share of its cores the tool kept busy (CPU time / wall time / threads);
# "upstream busy" (CPUS=split): the same for the upstream's cores, kernel work included. A tool
# well below 100 % while the upstream's cores are full is waiting on the upstream: there,
# requests/s measure the upstream, and client µs/req the tool.
printf '\n%-6s %-10s %12s %8s %16s %8s %12s %14s\n' conns tool 'requests/s' 'vs wrk' 'client µs/req' \
  'vs wrk' 'client busy' 'upstream busy'
for c in $C; do
  for t in "${tools[@]}"; do
    r1=- r2=-
    if [[ -n "${rps[$c/wrk]:-}" ]]; then
      r1=$(ratio "${rps[$c/$t]}" "${rps[$c/wrk]}")
      r2=$(ratio "${cpu[$c/$t]}" "${cpu[$c/wrk]}")
    fi
    up=-
    [[ $CPUS == split ]] && up="$(median <<<"${app[$c/$t]}")%"
    printf '%-6s %-10s %12.0f %8s %16.2f %8s %11.0f%% %14s\n' "$c" "$t" "$(median <<<"${rps[$c/$t]}")" \
      "$r1" "$(median <<<"${cpu[$c/$t]}")" "$r2" "$(median <<<"${busy[$c/$t]}")" "$up"
  done
done
