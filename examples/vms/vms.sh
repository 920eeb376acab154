#!/usr/bin/env bash
# vms.sh: N "VMs" as network namespaces on one machine, joined by a bridge, with a DNS server
# (dnsmasq) for their zone. Used by people to try a mesh across VMs, and by the tests
# (tests/src/vms.rs).
#
#   vms.sh up       --id ID --count N [--zone ZONE]   create VMs 1..N and the zone's DNS server
#   vms.sh dns-set  --id ID NAME [ADDR...]           NAME's records are exactly ADDR... (none:
#                                                    NAME no longer exists, NXDOMAIN)
#   vms.sh dns-stop --id ID / dns-start --id ID      stop or start the DNS server
#   vms.sh run      --id ID I CMD...                 run CMD in VM I
#   vms.sh down     --id ID                          remove everything `up` made
#
# What `up` makes, all named after ID (letters and digits, at most 12):
#   namespaces  mvm-ID-1 .. mvm-ID-N  (the VMs: `eth0` with 198.<a>.<b>.<i>/24, `lo` up)
#               mvm-ID-sw             (the switch: bridge `br0` holding one veth end per VM,
#                                      with 198.<a>.<b>.254/24, where dnsmasq listens)
#   files       /etc/netns/mvm-ID-I/{resolv.conf,hosts,nsswitch.conf}  (`ip netns exec` mounts
#               them over /etc: the VM's names come from the zone's DNS server only)
#               /run/mvm/ID/          (the zone's records, dnsmasq's pid file and log)
# <a>.<b> is derived from ID (198.18.0.0/15 has 512 /24s), so two harnesses with different IDs
# use different subnets; they could not reach each other anyway: each has its own switch.
# Every VM has the name vmI.ZONE in the zone (ZONE defaults to mesh.test).
#
# Nothing is created in the host's namespace and the host's interfaces, routes, DNS and /etc
# files (other than /etc/netns/mvm-ID-*) are never touched. `down` kills what runs inside
# those namespaces by PID and deletes the namespaces and files by name; it is idempotent and
# also cleans up after a partial `up`. Needs root, `ip` (iproute2) and dnsmasq (dnsmasq-base).
#
# Exit codes: 0 ok, 1 failure, 2 usage or a missing requirement. Errors are one line on stderr.
set -euo pipefail

prog=vms.sh
die() { # CODE MESSAGE
  echo "$prog: $2" >&2
  exit "$1"
}
usage() {
  die 2 "$1 (usage: $prog up|down|dns-set|dns-stop|dns-start|run --id ID ...; see the top of $0)"
}

need_root_tools() { # what needs: ip, and dnsmasq unless $1 is "no-dns"
  [[ $(id -u) -eq 0 ]] || die 2 "$cmd: must run as root (network namespaces need CAP_SYS_ADMIN)"
  command -v ip >/dev/null 2>&1 || die 2 "$cmd: no 'ip' command: install iproute2"
  if [[ ${1:-} != no-dns ]]; then
    command -v dnsmasq >/dev/null 2>&1 || die 2 "$cmd: no 'dnsmasq' command: install dnsmasq-base"
  fi
}

# ---- arguments ----------------------------------------------------------------------------
[[ $# -ge 1 ]] || usage "no command"
cmd=$1
shift
id= count= zone=mesh.test
rest=()
while [[ $# -gt 0 ]]; do
  case $1 in
  --id) [[ $# -ge 2 ]] || usage "$cmd: --id needs a value"; id=$2; shift 2 ;;
  --count) [[ $# -ge 2 ]] || usage "$cmd: --count needs a value"; count=$2; shift 2 ;;
  --zone) [[ $# -ge 2 ]] || usage "$cmd: --zone needs a value"; zone=$2; shift 2 ;;
  --) shift; rest+=("$@"); break ;;
  *) rest+=("$1"); shift
     # everything after `run I` belongs to the command
     if [[ $cmd == run && ${#rest[@]} -ge 1 ]]; then rest+=("$@"); break; fi ;;
  esac
done
[[ -n $id ]] || usage "$cmd: --id is required"
[[ $id =~ ^[A-Za-z0-9]{1,12}$ ]] || usage "$cmd: --id '$id': letters and digits only, at most 12"

sw=mvm-$id-sw
state=/run/mvm/$id
# The /24 of this ID: one of the 512 in 198.18.0.0/15.
n=$(( $(printf '%s' "$id" | cksum | cut -d' ' -f1) % 512 ))
net=198.$((18 + n / 256)).$((n % 256))
dns_addr=$net.254

vm_ns() { echo "mvm-$id-$1"; }

# ---- the DNS server -------------------------------------------------------------------------
dns_running() { # true if the pid file names a live dnsmasq
  local pid
  pid=$(cat "$state/dnsmasq.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dnsmasq ]]
}

# True while PID runs (a zombie waiting for its parent to reap it has ended).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${stat##*) } != Z* ]]
}

dns_start() {
  dns_running && return 0
  rm -f "$state/dnsmasq.pid"
  # --local: the zone is answered from the records file only (a name not there is NXDOMAIN);
  # --no-resolv/--no-hosts: no upstream servers, not the host's /etc/hosts; no DHCP range, so
  # no DHCP. dnsmasq forks once listening and its parent exits 0, so it is ready on return.
  ip netns exec "$sw" dnsmasq --conf-file=/dev/null --no-resolv --no-hosts \
    --addn-hosts="$state/records" --local="/$zone/" --domain-needed \
    --listen-address="$dns_addr" --bind-dynamic --pid-file="$state/dnsmasq.pid" \
    --log-facility="$state/dnsmasq.log" ||
    die 1 "$cmd: dnsmasq did not start (see $state/dnsmasq.log)"
}

dns_stop() {
  local pid i
  dns_running || { rm -f "$state/dnsmasq.pid"; return 0; }
  pid=$(cat "$state/dnsmasq.pid")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.05
  done
  alive "$pid" && kill -9 "$pid" 2>/dev/null || true
  rm -f "$state/dnsmasq.pid"
}

# Waits (bounded) until VM 1 resolves NAME to exactly the addresses given (none: not found).
dns_wait() {
  local name=$1 i got
  shift
  local want=
  (($# == 0)) || want=$(printf '%s\n' "$@" | sort -u | tr '\n' ' ')
  for ((i = 0; i < 100; i++)); do
    got=$(ip netns exec "$(vm_ns 1)" getent ahosts "$name" 2>/dev/null |
      awk '$2 == "STREAM" { print $1 }' | sort -u | tr '\n' ' ') || true
    [[ $got == "$want" ]] && return 0
    sleep 0.05
  done
  die 1 "$cmd: VM 1 resolves $name to '${got}' instead of '${want}' after 5 s"
}

# ---- commands -------------------------------------------------------------------------------
up() {
  need_root_tools
  [[ $count =~ ^[0-9]+$ ]] && ((count >= 1 && count <= 250)) ||
    usage "up: --count N is required, 1 to 250"
  [[ $zone =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || usage "up: --zone '$zone' is not a domain name"
  [[ -e /run/netns/$sw || -d $state ]] && die 1 "up: VMs with id $id exist: run '$prog down --id $id' first"
  # A failed `up` leaves nothing behind.
  trap 'rc=$?; ((rc == 0)) || down_quiet; exit $rc' EXIT
  mkdir -p "$state"
  chmod 755 /run/mvm "$state"
  echo "$zone" >"$state/zone"
  echo "$count" >"$state/count"

  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" addr add "$dns_addr/24" dev br0
  ip -n "$sw" link set br0 up

  local i ns records=
  for ((i = 1; i <= count; i++)); do
    ns=$(vm_ns "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Made inside the switch's namespace, its peer inside the VM's: never in the host's.
    ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$ns"
    ip -n "$sw" link set "p$i" master br0 up
    ip -n "$ns" addr add "$net.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    mkdir -p "/etc/netns/$ns"
    printf 'nameserver %s\nsearch %s\noptions timeout:1 attempts:2\n' "$dns_addr" "$zone" \
      >"/etc/netns/$ns/resolv.conf"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
      >"/etc/netns/$ns/hosts"
    printf 'hosts: files dns\n' >"/etc/netns/$ns/nsswitch.conf"
    records+="$net.$i vm$i.$zone"$'\n'
  done
  printf '%s' "$records" >"$state/records"
  chmod 644 "$state/records" "$state/zone" "$state/count"
  dns_start
  dns_wait "vm1.$zone" "$net.1"

  echo "dns $dns_addr $zone"
  for ((i = 1; i <= count; i++)); do
    echo "vm $i $(vm_ns "$i") $net.$i"
  done
}

dns_set() {
  need_root_tools no-dns
  [[ -f $state/records ]] || die 1 "dns-set: no VMs with id $id"
  [[ ${#rest[@]} -ge 1 ]] || usage "dns-set: NAME is required"
  local name=${rest[0]} addrs=("${rest[@]:1}") a tmp
  zone=$(cat "$state/zone")
  [[ $name =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || usage "dns-set: '$name' is not a host name"
  [[ $name == *.* ]] || name=$name.$zone
  for a in "${addrs[@]}"; do
    [[ $a =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $a =~ ^[0-9A-Fa-f:]+$ ]] ||
      usage "dns-set: '$a' is not an IP address"
  done
  tmp=$(mktemp "$state/records.XXXXXX")
  awk -v n="$name" '$2 != n' "$state/records" >"$tmp"
  for a in "${addrs[@]}"; do printf '%s %s\n' "$a" "$name" >>"$tmp"; done
  chmod 644 "$tmp"
  mv -f "$tmp" "$state/records"
  if dns_running; then
    kill -HUP "$(cat "$state/dnsmasq.pid")" # re-reads the records file
    dns_wait "$name" "${addrs[@]}"
  fi
}

# Kills every process left in the namespaces (by PID), stops dnsmasq, deletes the namespaces
# and files by name. Never fails on what is already gone.
down_quiet() {
  local ns pid
  dns_stop 2>/dev/null || true
  for ns in $(ls /run/netns 2>/dev/null | grep -E "^mvm-$id-(sw|[0-9]+)\$" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      kill -9 "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
  for ns in /etc/netns/mvm-"$id"-*; do
    [[ -d $ns && ${ns##*/} =~ ^mvm-$id-[0-9]+$ ]] && rm -rf -- "$ns"
  done
  rm -rf -- "$state"
  rmdir /run/mvm 2>/dev/null || true
}

down() {
  need_root_tools no-dns
  down_quiet
  local left
  left=$(ls /run/netns 2>/dev/null | grep -E "^mvm-$id-(sw|[0-9]+)\$" || true)
  [[ -z $left ]] || die 1 "down: namespaces still there: $left"
}

run() {
  need_root_tools no-dns
  [[ ${#rest[@]} -ge 2 ]] || usage "run: VM number and command are required"
  local i=${rest[0]}
  [[ $i =~ ^[0-9]+$ && -e /run/netns/$(vm_ns "$i") ]] || die 1 "run: no VM $i with id $id"
  exec ip netns exec "$(vm_ns "$i")" "${rest[@]:1}"
}

case $cmd in
up) up ;;
down) down ;;
dns-set) dns_set ;;
dns-stop) need_root_tools no-dns; dns_stop ;;
dns-start)
  need_root_tools
  [[ -f $state/zone ]] || die 1 "dns-start: no VMs with id $id"
  zone=$(cat "$state/zone")
  dns_start
  ;;
run) run ;;
*) usage "unknown command '$cmd'" ;;
esac
