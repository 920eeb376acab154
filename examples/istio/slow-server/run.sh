#!/usr/bin/env bash
# Experiments 1 and 2: clients fire 10 requests at once at pyserver, whose app sleeps SEC per
# request. Prints, per client, the seed's `STATUS START END TIME` lines and the counts.
#   run.sh [--clients C] [--servers S] [--sleep SEC] [--no-pending]
# Defaults: 1 client, 1 server, 5 s. --no-pending drops http1MaxPendingRequests (first step).
# Needs root; binaries from target/release (or MESH_BIN).
here=$(cd "$(dirname "$0")" && pwd)
clients=1 servers=1 sleep=5 pending=yes
while [[ $# -gt 0 ]]; do
  case $1 in
  --clients) clients=${2:?}; shift 2 ;;
  --servers) servers=${2:?}; shift 2 ;;
  --sleep) sleep=${2:?}; shift 2 ;;
  --no-pending) pending=no; shift ;;
  *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
. "$here/../lib.sh"
vms_up $((clients + servers))
cp "$here/pyserver.yaml" "$run/config/"
[[ $pending == yes ]] || sed -i '/http1MaxPendingRequests/d' "$run/config/pyserver.yaml"
for ((c = 1; c <= clients; c++)); do workload "client-$c" "${ADDR[c]}" "app: client"; done
for ((s = 1; s <= servers; s++)); do
  v=$((clients + s))
  workload "pyserver-$s" "${ADDR[v]}" "app: pyserver" 8080
  app "$v" --color "pyserver-$s" --sleep-ms $((sleep * 1000))
  meshd_in "$v"
done
for ((c = 1; c <= clients; c++)); do meshd_in "$c"; done

t0=$(date +%s.%N)
burst() { # client VM: 10 requests at once, one line each
  in_vm "$1" bash -c '
    for k in $(seq 10); do (
      s=$(date +%s.%N)
      code=$(curl -s -o /dev/null -w "%{http_code}" -H "Host: pyserver" http://127.0.0.1:15001/)
      e=$(date +%s.%N)
      awk -v c="$code" -v s="$s" -v e="$e" -v t0="'"$t0"'" \
        "BEGIN { printf \"%s %6.2f %6.2f %6.2f\n\", c, s - t0, e - t0, e - s }"
    ) & done; wait'
}
pids=()
for ((c = 1; c <= clients; c++)); do
  burst "$c" >"$run/client-$c.out" & pids+=($!)
  sleep 0.5 # the next client's burst starts once this one's requests are held
done
wait "${pids[@]}"
for ((c = 1; c <= clients; c++)); do
  echo "client $c (VM ${ADDR[c]}):"
  echo "STATUS  START    END   TIME"
  sort -k3 -n "$run/client-$c.out"
  awk '{ n[$1]++ } END { for (k in n) printf "  %s: %d\n", k, n[k] }' "$run/client-$c.out" | sort
done
echo "all clients:"
cat "$run"/client-*.out | awk '{ n[$1]++ } END { for (k in n) printf "  %s: %d\n", k, n[k] }' | sort
