#!/usr/bin/env bash
# How long a large config reload delays requests on another listener, against the same run
# without a reload (the peer). meshd serves the walkthrough's gateway and green; meshload sends
# a steady 1000 requests/s to green's listener for D seconds; in the "reload" run, ROUTES routes
# (in files of at most 8 MiB, meshd's limit) are dropped into the config directory a second in
# and applied meanwhile. meshload's max and p99.9 latency show the stall; RSS before, at the
# peak and after the reload shows what a reload costs in memory.
#
#   cargo build --release -p meshd -p meshload -p mesh-examples --bins
#   bench/reload-stall.sh                  # ROUTES=20000 (4.4 MB, one file)
#   ROUTES=70000 bench/reload-stall.sh     # about the largest config meshd accepts (16 MiB)
#
# Env: ROUTES (20000), D (8, seconds), ROUNDS (3), TARGET_DIR. Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}
R="$TARGET_DIR/release"
ROUTES=${ROUTES:-20000}
D=${D:-8}
ROUNDS=${ROUNDS:-3}

run() { # mode (base|reload) -> "max_ms p999_ms rss_before_MB rss_peak_MB rss_after_MB applied ok total"
  local mode=$1 W app m admin lis load rss0 peak rss1 applied
  W=$(mktemp -d)
  cp -r examples/walkthrough "$W/config"
  sed -i "s#/dev/stdout#$W/access.log#" "$W"/config/*.json
  python3 - "$W/routes" "$ROUTES" <<'P'
import json, os, sys
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out)
route = lambda i: {"meshName": "color-mesh", "virtualRouterName": "color-paths",
    "routeName": f"bulk-{i}", "spec": {"httpRoute": {"match": {"prefix": f"/bulk/{i}"},
    "action": {"weightedTargets": [{"virtualNode": "green", "weight": 1}]}}}}
per_file = 30000  # about 6.8 MB: under the 8 MiB per-file limit
for f, start in enumerate(range(0, n, per_file)):
    with open(f"{out}/routes-bulk-{f}.json", "w") as fh:
        json.dump([route(i) for i in range(start, min(n, start + per_file))], fh)
P
  "$R/demo-app" --color green --listen 127.0.0.1:0 >"$W/app.out" & app=$!
  for _ in $(seq 100); do [[ -s "$W/app.out" ]] && break; sleep 0.05; done
  "$R/meshd" --config-dir "$W/config" --state-dir "$W/state" \
    --admin 127.0.0.1:0 --admin-address-path "$W/admin" --socket "$W/sock" \
    --node green --listen green=127.0.0.1:0 --node ingress-gw --listen ingress-gw=127.0.0.1:0 \
    --app "green=$(sed -n 's/^listening on //p' "$W/app.out")" \
    2>"$W/meshd.err" & m=$!
  for _ in $(seq 300); do [[ -s "$W/admin" ]] && break; sleep 0.1; done
  admin=$(cat "$W/admin")
  lis=$(curl -s "http://$admin/listeners" | sed -n 's/^green-ingress:://p')
  "$R/meshload" -c 1 -qps 1000 -t "${D}s" -json "$W/load.json" -loglevel Error "http://$lis/" \
    >/dev/null 2>&1 & load=$!
  sleep 1
  rss0=$(awk '/VmRSS/ {print $2}' /proc/$m/status)
  if [[ "$mode" == reload ]]; then
    for f in "$W"/routes/*.json; do cp "$f" "$W/config/.$(basename "$f").tmp"; done
    for f in "$W"/routes/*.json; do mv "$W/config/.$(basename "$f").tmp" "$W/config/$(basename "$f")"; done
  fi
  wait $load
  peak=$(awk '/VmHWM/ {print $2}' /proc/$m/status)
  rss1=$(awk '/VmRSS/ {print $2}' /proc/$m/status)
  applied=$(curl -s "http://$admin/stats?filter=config_reload_success" | awk '{print $2}')
  kill -INT $m; wait $m 2>/dev/null || true
  kill $app; wait $app 2>/dev/null || true
  python3 - "$W/load.json" "$rss0" "$peak" "$rss1" "$applied" <<'P'
import json, sys
d = json.load(open(sys.argv[1]))
h = d["DurationHistogram"]
p999 = next((p["Value"] for p in h["Percentiles"] if p["Percentile"] == 99.9), float("nan"))
mb = lambda kb: f"{int(kb) / 1024:.1f}"
print(f'{h["Max"]*1000:.2f} {p999*1000:.2f} {mb(sys.argv[2])} {mb(sys.argv[3])} {mb(sys.argv[4])} {sys.argv[5]} {d["RetCodes"].get("200", 0)} {h["Count"]}')
P
  grep -o 'config applied.*' "$W/meshd.err" | tail -1 >&2 || true
  rm -rf "$W"
}

printf '%-7s %-6s %10s %10s %10s %10s %10s %8s %s\n' round mode max_ms p99.9_ms rss0_MB peak_MB after_MB applied ok/total
for r in $(seq "$ROUNDS"); do
  for mode in base reload; do
    read -r max p999 rss0 peak rss1 applied ok total < <(run "$mode")
    printf '%-7s %-6s %10s %10s %10s %10s %10s %8s %s/%s\n' "$r" "$mode" "$max" "$p999" \
      "$rss0" "$peak" "$rss1" "$applied" "$ok" "$total"
  done
done
