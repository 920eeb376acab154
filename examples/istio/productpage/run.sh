#!/usr/bin/env bash
# Experiment 3: meshload (fortio's flags and output) from the client VM through its meshd to
# productpage, whose app takes 200 ms per request: -c 1 -n 20, then -c 3 -n 21 and -c 3 -n 20.
#   run.sh [--service-ms MS]
# Needs root; binaries from target/release (or MESH_BIN).
here=$(cd "$(dirname "$0")" && pwd)
ms=200
[[ ${1:-} == --service-ms ]] && ms=${2:?}
. "$here/../lib.sh"
vms_up 2
cp "$here/productpage.yaml" "$run/config/"
workload client-1 "${ADDR[1]}" "app: client"
workload productpage-1 "${ADDR[2]}" "app: productpage" 8080
app 2 --color productpage --sleep-ms "$ms"
meshd_in 2
meshd_in 1
for args in "-c 1 -n 20" "-c 3 -n 21" "-c 3 -n 20"; do
  echo "== meshload -qps 0 $args"
  # shellcheck disable=SC2086
  in_vm 1 "$bin/meshload" -qps 0 $args -H "Host: productpage" http://127.0.0.1:15001/productpage 2>&1 |
    grep -E '^(Starting|Code|All done)'
done
