#!/usr/bin/env bash
# CI's package check (run as root, after the tests' debug build): builds the .deb, installs
# it with dpkg (its maintainer scripts must work where systemd is not PID 1), verifies the
# installed units, renders every man page, runs the installed binaries, then removes and
# purges the package. Prints the unit's exposure score (systemd-analyze security --offline).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(packaging/deb.sh | tail -n 1)
[[ -f $deb ]] || { echo "check-deb: packaging/deb.sh printed no .deb path: $deb" >&2; exit 1; }
echo "check-deb: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB"
dpkg -i "$deb"
trap 'dpkg -P mesh >/dev/null 2>&1 || true' EXIT

getent passwd meshd >/dev/null || { echo "check-deb: no meshd user after install" >&2; exit 1; }
owner=$(stat -c %U:%G /etc/meshd)
[[ $owner == meshd:meshd ]] || { echo "check-deb: /etc/meshd is $owner, not meshd:meshd" >&2; exit 1; }
for t in meshd meshctl meshload meshstat; do
  /usr/bin/$t --version
  [[ -s /usr/share/bash-completion/completions/$t ]] || { echo "check-deb: no bash completion for $t" >&2; exit 1; }
done
# `meshd --check-config` on the installed, empty /etc/meshd: invalid (exit 2), naming it.
set +e
check=$(/usr/bin/meshd --check-config 2>&1)
rc=$?
set -e
[[ $rc -eq 2 && $check == *"/etc/meshd"* ]] ||
  { echo "check-deb: meshd --check-config on the empty /etc/meshd: exit $rc: $check" >&2; exit 1; }
for page in /usr/share/man/man8/meshd.8.gz /usr/share/man/man1/meshctl.1.gz \
  /usr/share/man/man1/meshload.1.gz /usr/share/man/man1/meshstat.1.gz; do
  # man -l warns on stderr about roff it cannot render: any warning fails the check.
  warnings=$(MANPAGER=cat MANWIDTH=100 man -l "$page" 2>&1 >/dev/null)
  [[ -z $warnings ]] || { echo "check-deb: $page: $warnings" >&2; exit 1; }
done
# Warnings (e.g. a unit directive this systemd does not know) fail the check too.
# A template is verified as an instance: a copy named meshd@green.service.
inst=$(mktemp -d)
trap 'rm -rf "$inst"; dpkg -P mesh >/dev/null 2>&1 || true' EXIT
cp /usr/lib/systemd/system/meshd@.service "$inst/meshd@green.service"
verify=$(systemd-analyze verify /usr/lib/systemd/system/meshd.service "$inst/meshd@green.service" 2>&1) ||
  { echo "check-deb: systemd-analyze verify: $verify" >&2; exit 1; }
[[ -z $verify ]] || { echo "check-deb: systemd-analyze verify: $verify" >&2; exit 1; }
systemd-analyze security --offline=yes /usr/lib/systemd/system/meshd.service 2>/dev/null | tail -n 1 || true

dpkg -r mesh
[[ ! -e /usr/bin/meshd ]] || { echo "check-deb: /usr/bin/meshd left after dpkg -r" >&2; exit 1; }
[[ -e /etc/default/meshd ]] || { echo "check-deb: dpkg -r removed the conffile /etc/default/meshd" >&2; exit 1; }
dpkg -P mesh
[[ ! -e /etc/default/meshd ]] || { echo "check-deb: /etc/default/meshd left after purge" >&2; exit 1; }
echo "check-deb: ok"
