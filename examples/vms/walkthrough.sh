#!/usr/bin/env bash
# The App Mesh "connection pools" walkthrough across four namespace VMs (examples/vms/vms.sh):
# VM 1 serves the gateway ingress-gw, VM 2 the node red and its app, VM 3 the node green and its
# app, VM 4 is where the load comes from. Every VM gets the same copy of examples/walkthrough/,
# and its meshd is started as systemd/meshd.service starts it: the same flags (--config-dir,
# --state-dir), MESHD_NODE from the VM's environment file (its /etc/default/meshd).
#
#   walkthrough.sh up   --id ID [--bin DIR]   start it; prints the addresses and what to run
#   walkthrough.sh down --id ID               stop it (vms.sh down) and remove its files
#
# DIR holds meshd, demo-app, meshload and meshstat (default: target/release). Needs root.
# Exit codes as vms.sh: 0 ok, 1 failure, 2 usage or a missing requirement.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
vms=$here/vms.sh
die() { echo "walkthrough.sh: $2" >&2; exit "$1"; }

[[ $# -ge 1 ]] || die 2 "usage: walkthrough.sh up|down --id ID [--bin DIR]"
cmd=$1; shift
id= bin=$repo/target/release
while [[ $# -gt 0 ]]; do
  case $1 in
  --id) id=${2:?}; shift 2 ;;
  --bin) bin=$(cd "${2:?}" && pwd); shift 2 ;;
  *) die 2 "unknown argument '$1'" ;;
  esac
done
[[ -n $id ]] || die 2 "$cmd: --id is required"
run=/run/mvm-walkthrough/$id

case $cmd in
down)
  "$vms" down --id "$id"
  rm -rf "$run"
  ;;
up)
  for b in meshd demo-app meshload meshstat; do
    [[ -x $bin/$b ]] || die 2 "no $bin/$b: build with cargo build --release --workspace --bins, or give --bin"
  done
  out=$("$vms" up --id "$id" --count 4 --zone color-mesh.local)
  addr() { awk -v i="$1" '$1 == "vm" && $2 == i { print $4 }' <<<"$out"; }
  gw=$(addr 1) red=$(addr 2) green=$(addr 3) load=$(addr 4)
  "$vms" dns-set --id "$id" red "$red"
  "$vms" dns-set --id "$id" green "$green"
  mkdir -p "$run"
  start() { # VM NODE: the VM's own /etc/meshd, /etc/default/meshd and state, then meshd in it
    local d=$run/vm-$1
    mkdir -p "$d/etc/meshd" "$d/etc/default" "$d/var/lib/meshd" "$d/run/meshd"
    cp "$repo"/examples/walkthrough/*.json "$d/etc/meshd/"
    sed -i "s#/dev/stdout#$d/access.log#" "$d"/etc/meshd/*.json
    echo "MESHD_NODE=$2" >"$d/etc/default/meshd"
    "$vms" run --id "$id" "$1" sh -c "set -a; . '$d/etc/default/meshd'; set +a;
      exec '$bin/meshd' --config-dir '$d/etc/meshd' --state-dir '$d/var/lib/meshd' \
        --socket '$d/run/meshd/meshd.sock'" >"$d/meshd.log" 2>&1 &
  }
  "$vms" run --id "$id" 2 "$bin/demo-app" --color red --listen 127.0.0.1:8080 >/dev/null 2>&1 &
  "$vms" run --id "$id" 3 "$bin/demo-app" --color green --listen 127.0.0.1:8080 >/dev/null 2>&1 &
  start 1 ingress-gw
  start 2 red
  start 3 green
  for i in 1 2 3; do
    for _ in $(seq 100); do
      "$vms" run --id "$id" "$i" "$bin/meshstat" server.live >/dev/null 2>&1 && break
      sleep 0.1
    done
    "$vms" run --id "$id" "$i" "$bin/meshstat" server.live >/dev/null 2>&1 ||
      die 1 "meshd in VM $i did not start: $(tail -3 "$run/vm-$i/meshd.log")"
  done
  # Live is not routable yet: the gateway finds red and green by DNS after it starts, and until
  # then answers 503 UH. Wait until every cluster of VMs 1-3 has a usable host.
  healthy() { # VM -> whether every membership_healthy of its meshd is above 0
    local m
    m=$("$vms" run --id "$id" "$1" "$bin/meshstat" membership_healthy 2>/dev/null) || return 1
    [[ -n $m ]] && ! grep -q ': 0$' <<<"$m"
  }
  for i in 1 2 3; do
    for _ in $(seq 100); do
      healthy "$i" && break
      sleep 0.1
    done
    healthy "$i" || die 1 "meshd in VM $i has a cluster without a usable host: $("$vms" run --id "$id" "$i" "$bin/meshstat" membership_healthy 2>&1 | tr '\n' ' ')"
  done
  cat <<MSG
vm 1 gateway $gw
vm 2 red $red
vm 3 green $green
vm 4 load $load
The walkthrough runs across four VMs (files in $run). From the load VM:
  $vms run --id $id 4 $bin/meshload -c 10 -qps 100 -t 10s 'http://$gw:8088/paths/red?sleep=200'
  $vms run --id $id 1 $bin/meshstat 'self_redirect.*(upstream_cx_active|cx_open)'
  $vms run --id $id 4 $bin/meshload -c 20 -qps 500 -t 10s 'http://$green:8080/?sleep=200'
  $vms run --id $id 3 $bin/meshstat 'http.ingress.downstream_cx_active|green_http_8080.*(upstream_cx_active|cx_open)'
Stop it: $0 down --id $id
MSG
  ;;
*) die 2 "unknown command '$cmd'" ;;
esac
