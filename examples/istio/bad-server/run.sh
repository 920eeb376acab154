#!/usr/bin/env bash
# Experiment 4: 50/50 between v1 (200) and v2 (always 502) with retries and outlier detection;
# prints v2's /clusters health flags at the client and what the client got; then v2 healthy,
# weights 90/10, what 200 requests get.   run.sh   (root; binaries from target/release or MESH_BIN)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
vms_up 3
cp "$here/pyserver.yaml" "$run/config/"
workload client-1 "${ADDR[1]}" "app: client"
workload pyserver-v1 "${ADDR[2]}" "app: pyserver, version: v1" 8080
workload pyserver-v2 "${ADDR[3]}" "app: pyserver, version: v2" 8080
app 2 --color v1
app 3 --color v2 --fail-every 1 --fail-status 502
for i in 2 3 1; do meshd_in "$i"; done
calls() { # N: N requests from the client, counted by status and body
  in_vm 1 bash -c "for k in \$(seq $1); do
    curl -s -w ' %{http_code}\n' -H 'Host: pyserver' http://127.0.0.1:15001/; done" |
    sort | uniq -c
}
echo "== 20 requests, 50/50, v2 answers 502:"
calls 20
echo "== /clusters of the client, v2's host:"
admin 1 /clusters | grep '^outbound|8080|v2|pyserver::.*::health_flags::'
echo "== 40 more requests (v2 ejected: its share goes to v1):"
calls 40
echo "== v2 healthy again, weights 90/10, 200 requests:"
kill "${APP_PID[3]}"; sleep 0.5
app 3 --color v2
awk '/weight: 50/ { n++; sub(/weight: 50/, n == 1 ? "weight: 90" : "weight: 10") } { print }' \
  "$here/pyserver.yaml" >"$run/pyserver.yaml" && mv "$run/pyserver.yaml" "$run/config/"
# v2's host stays ejected for baseEjectionTime (60 s) whatever the config says: restart the
# client's meshd (ejections are not kept across restarts); the servers reload the file.
kill "${MESHD_PID[1]}"; sleep 0.5
meshd_in 1
calls 200
