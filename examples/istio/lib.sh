# lib.sh: what the experiments' run.sh share. Sourced, not run. One namespace VM per client and
# per server replica (examples/vms/vms.sh), one config directory read by every VM's meshd (as
# rsync would give each VM the same /etc/meshd), each meshd started as the systemd unit starts
# it, with Istio's JSON access log. Everything is torn down on exit, Ctrl-C or failure.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vms=$repo/examples/vms/vms.sh
bin=${MESH_BIN:-$repo/target/release}
id=istio$$
run=/run/mvm-istio/$id
die() { echo "$(basename "$0"): $2" >&2; exit "$1"; }
[[ $(id -u) -eq 0 ]] || die 2 "must run as root (network namespaces)"
for b in meshd demo-app meshload; do
  [[ -x $bin/$b ]] || die 2 "no $bin/$b: cargo build --release --workspace --bins, or set MESH_BIN"
done
cleanup() { "$vms" down --id "$id" >/dev/null 2>&1 || true; rm -rf "$run"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$run/config"
declare -a ADDR
# vms_up N: VMs 1..N; ADDR[i] is VM i's address.
vms_up() {
  local out
  out=$("$vms" up --id "$id" --count "$1")
  for ((i = 1; i <= $1; i++)); do
    ADDR[i]=$(awk -v i="$i" '$1 == "vm" && $2 == i { print $4 }' <<<"$out")
  done
}
in_vm() { local i=$1; shift; "$vms" run --id "$id" "$i" "$@"; }
# workload NAME ADDR LABELS [PORT]: a WorkloadEntry into the config.
workload() {
  local ports=
  [[ -n ${4:-} ]] && ports=", ports: { http: $4 }"
  cat >>"$run/config/workloads.yaml" <<Y
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: $1 }
spec: { address: $2, labels: { $3 }$ports }
Y
}
# app VM ARGS...: a demo app in VM on 127.0.0.1:8080 (where its meshd's inbound cluster sends);
# APP_PID[VM] is its PID (vms.sh run execs the command).
declare -a APP_PID
app() {
  local i=$1; shift
  "$vms" run --id "$id" "$i" "$bin/demo-app" --listen 127.0.0.1:8080 "$@" >/dev/null 2>&1 &
  APP_PID[i]=$!
  disown
}
# meshd_in VM: meshd in VM as the unit starts it; waits (bounded) for /ready. MESHD_PID[VM].
declare -a MESHD_PID
meshd_in() {
  local d=$run/vm-$1
  mkdir -p "$d/state"
  "$vms" run --id "$id" "$1" "$bin/meshd" --config-dir "$run/config" --state-dir "$d/state" \
    --socket "$d/meshd.sock" --access-log "$d/access.log" --access-log-encoding JSON \
    >/dev/null 2>"$d/meshd.log" &
  MESHD_PID[$1]=$!
  disown
  for _ in $(seq 100); do
    in_vm "$1" curl -sf -o /dev/null http://127.0.0.1:9901/ready && return 0
    sleep 0.1
  done
  die 1 "meshd in VM $1 did not start: $(tail -3 "$d/meshd.log")"
}
# admin VM PATH: GET on VM's meshd admin.
admin() { in_vm "$1" curl -s "http://127.0.0.1:9901$2"; }
