#!/usr/bin/env bash
# The README's "Run on a VM", run as written on a fresh Debian 12 with systemd as PID 1: a
# minimal Debian root (debootstrap) booted as a container (systemd-nspawn --boot, its own network
# namespace with only loopback), the package installed with apt, each step of the README run as
# root inside it, then what the README promises about the units checked with systemd itself:
# enable --now waits for READY=1, the service runs as `meshd`, reload (SIGHUP) applies a change
# and keeps serving after an invalid one, meshctl from a user in the group `meshd`, a port below
# 1024, the watchdog restarting a frozen meshd, exit 2 not restarted, stop drains and exits 0,
# meshd@NODE instances, upgrade (try-restart, conffiles kept), remove and purge.
#
#   packaging/vm-check.sh [DEB [APP]]
#
# DEB: the package (default: packaging/deb.sh builds it). APP: a program standing in for the
# node's app (default: the workspace's demo-app; built if missing). Needs root, debootstrap and
# systemd-container (apt-get install -y debootstrap systemd-container) and the network for
# debootstrap the first time: the fresh root is kept as a tarball in MESH_VM_CACHE (default
# /var/cache/mesh-vm-check) and unpacked anew for every run. Everything it starts it stops;
# the container's files are removed on exit (KEEP=1 keeps them and prints where).
#
# Exit: 0 every step worked; 1 a step failed (its journal is printed); 3 this machine cannot
# run the check (no debootstrap/nspawn, no network for debootstrap, systemd does not boot here).
set -euo pipefail
cd "$(dirname "$0")/.."
prog=vm-check
say() { echo "$prog: $*"; }
skip() { say "cannot run here: $*" >&2; exit 3; }
[[ $(id -u) -eq 0 ]] || skip "must run as root"
for t in debootstrap systemd-nspawn nsenter tar; do
  command -v "$t" >/dev/null || skip "$t not found (apt-get install -y debootstrap systemd-container)"
done

deb=${1:-}
if [[ -z $deb ]]; then deb=$(packaging/deb.sh | tail -n 1); fi
[[ -f $deb ]] || { say "no package at '$deb'" >&2; exit 1; }
app=${2:-${CARGO_TARGET_DIR:-target}/debug/demo-app}
[[ -x $app ]] || cargo build -q -p mesh-examples --bin demo-app
[[ -x $app ]] || { say "no app program at '$app'" >&2; exit 1; }

cache=${MESH_VM_CACHE:-/var/cache/mesh-vm-check}
work=$(mktemp -d /var/tmp/mesh-vm-check.XXXXXX)
root=$work/root
nspawn=
cleanup() {
  if [[ -n $nspawn ]] && kill -0 "$nspawn" 2>/dev/null; then
    kill "$nspawn" 2>/dev/null || true # SIGTERM: nspawn asks the container's systemd to halt
    for _ in $(seq 100); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$nspawn" 2>/dev/null || true
    wait "$nspawn" 2>/dev/null || true
  fi
  if [[ -n ${KEEP:-} ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# 1. A fresh Debian 12: debootstrap's minimal base plus what every installed Debian has (systemd
# as init, procps) and curl for the checks. The container has no network: apt installs the
# package from the file, its dependencies must be there.
mkdir -p "$cache" "$root"
include=systemd,systemd-sysv,dbus,procps,curl,iproute2
tarball=$cache/bookworm-$(echo "$include" | cksum | cut -d' ' -f1).tar
if [[ ! -s $tarball ]]; then
  say "debootstrap bookworm (once; kept in $cache)"
  debootstrap --variant=minbase --include="$include" \
    bookworm "$work/fresh" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -n 5 "$work/debootstrap.log" >&2; skip "debootstrap failed (network?)"; }
  tar -C "$work/fresh" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  rm -rf "$work/fresh"
fi
tar -C "$root" -xf "$tarball"
echo mesh-vm >"$root/etc/hostname"
# The DNS this VM would have: the nodes' hostnames resolve to this VM's addresses.
printf '127.0.0.2 green.color-mesh.local\n127.0.0.3 red.color-mesh.local\n' >>"$root/etc/hosts"
cp "$deb" "$root/root/"
pkg=/root/$(basename "$deb")
install -m 0755 "$app" "$root/usr/local/bin/app"

# 2. Boot it. The container's PID 1 is the child of systemd-nspawn.
setsid systemd-nspawn -D "$root" --register=no --keep-unit --private-network --boot -q \
  --console=read-only >"$work/console.log" 2>&1 </dev/null &
nspawn=$!
leader=
for _ in $(seq 100); do
  leader=$(pgrep -P "$nspawn" -x systemd || true)
  [[ -n $leader ]] && break
  kill -0 "$nspawn" 2>/dev/null || break
  sleep 0.1
done
[[ -n $leader ]] || { tail -n 5 "$work/console.log" >&2; skip "systemd-nspawn did not start systemd"; }
vm() { nsenter -t "$leader" -a -- "$@"; }
# Until systemd has started its manager socket, systemctl cannot connect: ask again (60 s).
state=
for _ in $(seq 600); do
  state=$(vm systemctl is-system-running 2>/dev/null || true)
  [[ $state == running || $state == degraded ]] && break
  sleep 0.1
done
[[ $state == running || $state == degraded ]] ||
  { tail -n 5 "$work/console.log" >&2; skip "the container's systemd did not boot (state '$state')"; }
say "booted Debian $(vm cat /etc/debian_version), systemd $(vm systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p') as PID 1"

fail() {
  say "FAILED: $*" >&2
  vm journalctl -u 'meshd*' --no-pager -n 40 >&2 || true
  exit 1
}
# Runs a README line in the VM as root, failing the check if it fails.
step() {
  say "\$ $*"
  vm sh -c "$*" >"$work/step.out" 2>&1 || { cat "$work/step.out" >&2; fail "$*"; }
}
prop() { vm systemctl show -P "$2" "$1"; }
# Waits (bounded, 60 s) until `vm sh -c CMD` succeeds.
until_ok() {
  local what=$1 cmd=$2
  for _ in $(seq 600); do vm sh -c "$cmd" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "$what (60 s)"
}

# 3. The README's steps, as written ("On the VM (as root)").
vm sh -c 'systemd-run -q --unit=app -p DynamicUser=yes /usr/local/bin/app --color green --listen 127.0.0.1:8080'
step "cd /root && apt-get install -y -q $pkg" # `apt install` is apt-get's interactive face
step 'cp /usr/share/doc/mesh/examples/walkthrough/*.json /etc/meshd/'
step 'echo MESHD_NODE=green >> /etc/default/meshd'
# What an ExecStartPre= would run: the installed config, with the unit's environment file.
step 'set -a && . /etc/default/meshd && meshd --check-config | grep -q "^serve  green"'
step 'systemctl enable --now meshd'
[[ $(prop meshd ActiveState) == active ]] || fail "meshd not active after enable --now"
pid=$(prop meshd MainPID)
user=$(vm stat -c %U "/proc/$pid")
[[ $user == meshd ]] || fail "meshd runs as '$user', not meshd"
say "enable --now returned once meshd said READY=1: active, pid $pid, user meshd, status '$(prop meshd StatusText)'"
step 'journalctl -u meshd --no-pager | grep -q "meshd ready"'
# Each journal line says what happened without its fields (journalctl shows MESSAGE only).
step 'journalctl -u meshd --no-pager -o cat | grep -q "listening on 127.0.0.2:8080 for node green"'
step 'useradd -m alice && usermod -aG meshd alice'
step 'runuser -u alice -- meshctl get'
step 'curl -sf http://green.color-mesh.local:8080/ >/dev/null'
say "a request through green's listener reached the app"
step 'journalctl -u meshd --no-pager NODE=green -o cat | grep -q .'
say "journalctl -u meshd NODE=green filters by the structured field"

# 4. Reload: a change applied by SIGHUP, an invalid file logged while the running config serves.
step 'sed -i "s/\"maxConnections\": [0-9]*/\"maxConnections\": 7/" /etc/meshd/vn-green.json'
step 'systemctl reload meshd'
until_ok "the reloaded limit" \
  'curl -s 127.0.0.1:9901/stats | grep -q "green_http_8080.circuit_breakers.default.remaining_cx: 7"'
say "systemctl reload applied maxConnections 7"
step 'echo "{" > /etc/meshd/broken.json && systemctl reload meshd'
until_ok "the invalid file logged" 'journalctl -u meshd --no-pager | grep -q "broken.json"'
step 'curl -sf http://green.color-mesh.local:8080/ >/dev/null && rm /etc/meshd/broken.json'
[[ $(prop meshd MainPID) == "$pid" ]] || fail "meshd restarted on a reload"
say "an invalid file was logged and the running config kept serving (same pid)"

# 5. meshctl apply as alice writes /etc/meshd through meshd (ProtectSystem=strict lets it).
step 'runuser -u alice -- cp /etc/meshd/vn-green.json /tmp/green.json &&
  sed -i "s/\"maxConnections\": 7/\"maxConnections\": 8/" /tmp/green.json &&
  runuser -u alice -- meshctl apply -f /tmp/green.json'
step 'grep -q "\"maxConnections\": 8" /etc/meshd/vn-green.json'
say "meshctl apply by alice (group meshd) rewrote /etc/meshd/vn-green.json"

# 6. A port below 1024 as user meshd (CAP_NET_BIND_SERVICE).
step 'echo MESHD_ADMIN=127.0.0.1:901 >> /etc/default/meshd && systemctl restart meshd'
step 'curl -sf 127.0.0.1:901/ready >/dev/null'
say "admin on 127.0.0.1:901 as user meshd"

# 7. Watchdog: a frozen meshd is killed and restarted (WatchdogSec=30s).
pid=$(prop meshd MainPID)
restarts=$(prop meshd NRestarts)
say "freezing meshd (SIGSTOP) to see the watchdog restart it (~30 s)"
vm kill -STOP "$pid"
for _ in $(seq 900); do
  [[ $(prop meshd NRestarts) -gt $restarts && $(prop meshd ActiveState) == active ]] && break
  sleep 0.1
done
[[ $(prop meshd NRestarts) -gt $restarts ]] || fail "the watchdog did not restart a frozen meshd within 90 s"
step 'journalctl -u meshd --no-pager | grep -qi "watchdog timeout"'
say "the watchdog restarted it (pid $pid -> $(prop meshd MainPID))"

# 8. Exit 2 (an invalid setting) is not restarted; the start limit is not hit by it.
step 'echo MESHD_DRAIN_TIMEOUT=soon >> /etc/default/meshd'
vm systemctl restart meshd >/dev/null 2>&1 && fail "meshd started with MESHD_DRAIN_TIMEOUT=soon"
[[ $(prop meshd ExecMainStatus) == 2 && $(prop meshd ActiveState) == failed ]] ||
  fail "an invalid setting: state $(prop meshd ActiveState), status $(prop meshd ExecMainStatus)"
step 'journalctl -u meshd --no-pager -o cat | grep -q MESHD_DRAIN_TIMEOUT'
step 'sed -i "/MESHD_DRAIN_TIMEOUT=soon/d" /etc/default/meshd && systemctl reset-failed meshd && systemctl start meshd'
say "exit 2 named the variable and was not restarted; fixed, it starts again"

# 9. Stop: SIGTERM, drain, exit 0.
step 'systemctl stop meshd'
[[ $(prop meshd ExecMainStatus) == 0 && $(prop meshd Result) == success ]] ||
  fail "stop: status $(prop meshd ExecMainStatus), result $(prop meshd Result)"
say "systemctl stop: exit 0, result success"

# 10. One meshd per node: meshd@green and meshd@red.
step 'sed -i "/MESHD_NODE=green/d; /MESHD_ADMIN=/d" /etc/default/meshd &&
  echo MESHD_ADMIN=127.0.0.1:9911 > /etc/default/meshd-green &&
  echo MESHD_ADMIN=127.0.0.1:9912 > /etc/default/meshd-red'
step 'systemctl enable --now meshd@green meshd@red'
step 'meshctl --socket /run/meshd/red/meshd.sock get | grep -q red'
step 'curl -sf 127.0.0.1:9911/ready >/dev/null && curl -sf 127.0.0.1:9912/ready >/dev/null'
say "meshd@green and meshd@red run side by side (sockets /run/meshd/NODE, admin 9911/9912)"

# 11. Upgrade: the same package with a higher version; running instances are restarted,
# /etc/default/meshd and /etc/meshd kept.
before=$(prop meshd@green MainPID)
up=$work/up
dpkg-deb -R "$deb" "$up"
version=$(sed -n 's/^Version: //p' "$up/DEBIAN/control")
sed -i "s/^Version: .*/Version: ${version}+check1/" "$up/DEBIAN/control"
dpkg-deb -b "$up" "$root/root/mesh-upgrade.deb" >/dev/null
step 'echo "# kept" >> /etc/default/meshd && apt-get install -y -q /root/mesh-upgrade.deb'
[[ $(vm dpkg-query -W -f '${Version}' mesh) == "${version}+check1" ]] || fail "upgrade: version"
after=$(prop meshd@green MainPID)
[[ $after != "$before" && $(prop meshd@green ActiveState) == active ]] ||
  fail "upgrade: meshd@green not restarted (pid $before -> $after)"
step 'grep -q "# kept" /etc/default/meshd && test -s /etc/meshd/vn-green.json'
say "upgrade to ${version}+check1 restarted meshd@green and kept /etc/default/meshd and /etc/meshd"

say "$(vm systemd-analyze security meshd.service 2>/dev/null | tail -n 1)"

# 12. Remove and purge.
step 'apt-get remove -y -q mesh'
[[ $(prop meshd@green ActiveState) != active ]] || fail "remove left meshd@green running"
step 'test ! -e /usr/bin/meshd && test -e /etc/default/meshd'
step 'apt-get purge -y -q mesh'
step 'test ! -e /etc/default/meshd && test -s /etc/meshd/vn-green.json && getent passwd meshd'
say "remove stopped meshd and kept /etc/default/meshd; purge removed it; /etc/meshd and the user stay"
say "ok"
