#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind, for meshd, HAProxy and nginx as the
# same HTTP/1.1 reverse proxy (bench/lib.sh: one worker, keep-alive to one upstream, a one-worker
# nginx answering 200 "ok\n" run natively), with the same client (meshload -c 4 -qps 0). Exact
# and repeatable on a noisy host. Each figure is two runs, N1 and N2 requests, the difference
# of the proxy's instruction counts divided by N2-N1 (startup and shutdown cancel out).
# Rows: without and with an access log (to a file), and for meshd a refusal (503 UO): its
# listener allows 1 connection and 1 pending request, both held by two slow requests
# (demo-app ?sleep) while meshload's requests are all refused.
#
#   bench/instructions.sh
#   N1=500 N2=2500 bench/instructions.sh
#   KEEP=/tmp/cg.out bench/instructions.sh     # keeps meshd's N2 callgrind output (no log) for
#   callgrind_annotate --inclusive=yes /tmp/cg.out | head -40
#   KEEP_REFUSE=/tmp/cg-refuse.out bench/instructions.sh   # the same for the refusal run
#
# Env: N1 (1000), N2 (5000), PEERS (haproxy nginx; empty: meshd alone), MODES (plain log:
# the proxied rows measured; the refusal is always measured), MESHD (a meshd binary, default the release
# build), KEEP, TARGET_DIR. Needs valgrind, haproxy, nginx, curl, python3 (bench/peers.sh
# installs the peers).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}
R="$TARGET_DIR/release"
N1=${N1:-1000}
N2=${N2:-5000}
PEERS=${PEERS-haproxy nginx} # PEERS="" measures meshd alone
for tool in valgrind haproxy nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/instructions.sh needs $tool" >&2; exit 2; }
done
cargo build --release -q -p meshd -p meshload -p mesh-examples --bins
MESHD_BIN=${MESHD:-$R/meshd}
# shellcheck source=bench/lib.sh
. bench/lib.sh
W=$(mktemp -d)
trap 'stop_all; rm -rf "$W"' EXIT
start_upstream
UP=$START_ADDR
"$R/demo-app" --listen 127.0.0.1:0 >"$W/slow.out" & PIDS+=($!)
for _ in $(seq 100); do [[ -s "$W/slow.out" ]] && break; sleep 0.05; done
SLOW=$(sed -n 's/^listening on //p' "$W/slow.out")
export WAIT_TRIES=1200 # startup under callgrind: up to a minute

start_meshd_bin() { # like start_meshd, with $MESHD_BIN
  local saved=$R
  mkdir -p "$W/bin"
  ln -sf "$(realpath "$MESHD_BIN")" "$W/bin/meshd"
  R=$W/bin
  start_meshd "$@"
  R=$saved
}

run() { # TARGET MODE N -> instructions the target executed
  local t=$1 mode=$2 n=$3 name up=$UP conns="" pending="" held=() c out
  name="$t-$mode-$n"
  LOG=0
  EXTRA_LISTENER=""
  case $mode in
    log) LOG=1 ;;
    refuse)
      up=$SLOW conns=1 pending=1
      EXTRA_LISTENER='"timeout": {"http": {"perRequest": {"unit": "s", "value": 3600}}}'
      ;;
  esac
  out=$W/$name.cg
  if [[ $t == meshd ]]; then
    start_meshd_bin "$name" 1 "$up" "$conns" "$pending" valgrind --tool=callgrind --callgrind-out-file="$out"
    wait_port "$START_ADDR"
  elif [[ $t == nginx ]]; then
    start_nginx "$name" 0 "$up" "$conns" "$pending" valgrind --tool=callgrind --callgrind-out-file="$out" --trace-children=no
  else
    start_haproxy "$name" 1 "$up" "$conns" "$pending" valgrind --tool=callgrind --callgrind-out-file="$out"
  fi
  local pid=$START_PID addr=$START_ADDR
  if [[ $mode == refuse ]]; then
    for c in 1 2; do # hold the one connection and the one pending place
      curl -s -o /dev/null "http://$addr/?sleep=3600000" & held+=($!)
      PIDS+=("${held[-1]}")
      : "$c"
    done
    local i
    for i in $(seq 600); do
      [[ $(stat_sum "$MESHD_ADMIN" downstream_rq_active) -ge 2 ]] && break
      sleep 0.1
    done
  fi
  "$R/meshload" -c 4 -qps 0 -n "$n" -loglevel Error "http://$addr/" >"$W/$name.load" 2>&1 || true
  for c in "${held[@]}"; do stop_pid "$c"; done
  # SIGTERM, not SIGINT: a non-interactive shell starts background jobs with SIGINT ignored,
  # and HAProxy keeps it so (it waited forever); all three exit cleanly on SIGTERM, so
  # callgrind writes its totals.
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [[ -n "${KEEP:-}" && $t == meshd && $mode == plain && $n == "$N2" ]] && cp "$out" "$KEEP"
  [[ -n "${KEEP_REFUSE:-}" && $t == meshd && $mode == refuse && $n == "$N2" ]] && cp "$out" "$KEEP_REFUSE"
  # callgrind's total: the "summary:" (or "totals:") line of its output file
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

per_request() { # TARGET MODE -> instructions per request
  local a b
  a=$(run "$1" "$2" "$N1")
  b=$(run "$1" "$2" "$N2")
  awk -v a="$a" -v b="$b" -v n=$((N2 - N1)) 'BEGIN { printf "%.0f", (b - a) / n }'
}

declare -A I
MODES=${MODES:-plain log}
for t in meshd $PEERS; do
  for mode in plain log; do
    if [[ " $MODES " == *" $mode "* ]]; then
      I[$t-$mode]=$(per_request "$t" "$mode")
    else
      I[$t-$mode]=0
    fi
  done
done
I[meshd-refuse]=$(per_request meshd refuse)

echo "# bench/instructions.sh: N1=$N1 N2=$N2, meshload -c 4 -qps 0, callgrind; instructions per request"
echo "| target | proxied, no log | proxied, access log | meshd/peer no log | meshd/peer log |"
echo "|---|---|---|---|---|"
for t in meshd $PEERS; do
  awk -v t="$t" -v a="${I[$t-plain]}" -v b="${I[$t-log]}" -v ma="${I[meshd-plain]}" -v mb="${I[meshd-log]}" \
    'function r(m, p) { return p > 0 ? sprintf("%.2f", m / p) : "-" }
     BEGIN { printf "| %s | %d | %d | %s | %s |\n", t, a, b, r(ma, a), r(mb, b) }'
done
awk -v r="${I[meshd-refuse]}" -v p="${I[meshd-plain]}" \
  'BEGIN { printf "\nmeshd refusal (503 UO, no log): %d instructions", r
          if (p > 0) printf " = %.0f %% of a proxied request", 100 * r / p
          print "" }'
