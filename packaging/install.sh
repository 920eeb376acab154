#!/usr/bin/env bash
# Installs what the .deb installs, on machines without dpkg:
#   packaging/install.sh [PREFIX]              (default /usr/local; run as root)
#   packaging/install.sh --uninstall [PREFIX]  (keeps /etc/meshd, /etc/default/meshd, /var/lib/meshd)
# It builds the binaries (profile dist) unless BIN_DIR names a directory with them and mesh-dist
# (which writes the man pages and completions).
# DESTDIR=/tmp/stage stages the files without touching the running system (no user, no reload).
# Binaries in PREFIX/bin, pages in PREFIX/share/man, completions in PREFIX/share/..., units,
# sysusers.d and tmpfiles.d in PREFIX/lib (systemd reads /usr/local/lib too), config in /etc.
set -euo pipefail
cd "$(dirname "$0")/.."
uninstall=no
if [[ ${1:-} == --uninstall ]]; then uninstall=yes; shift; fi
prefix=${1:-/usr/local}
dest=${DESTDIR:-}
tools=(meshd meshctl meshload meshstat)
units=(meshd.service meshd@.service)
lib=$dest$prefix/lib
share=$dest$prefix/share

if [[ $uninstall == yes ]]; then
  if [[ -z $dest ]] && [[ -d /run/systemd/system ]]; then
    systemctl disable --now meshd.service 'meshd@*.service' >/dev/null 2>&1 || true
  fi
  for t in "${tools[@]}"; do
    rm -f "$dest$prefix/bin/$t" "$share"/man/man[18]/"$t".[18] "$share"/man/man1/"$t"-*.1 \
      "$share/bash-completion/completions/$t" "$share/zsh/vendor-completions/_$t" \
      "$share/fish/vendor_completions.d/$t.fish"
  done
  for u in "${units[@]}"; do rm -f "$lib/systemd/system/$u"; done
  rm -f "$lib/sysusers.d/meshd.conf" "$lib/tmpfiles.d/meshd.conf" "$dest/etc/meshd/README"
  if [[ -z $dest ]] && [[ -d /run/systemd/system ]]; then systemctl daemon-reload; fi
  echo "removed mesh from $prefix (kept /etc/meshd, /etc/default/meshd, /var/lib/meshd, user meshd)"
  exit 0
fi

target=${CARGO_TARGET_DIR:-$PWD/target}
bin_dir=${BIN_DIR:-}
if [[ -z $bin_dir ]]; then
  cargo build --profile dist -p meshd -p meshctl -p meshload -p meshstat -p mesh-dist --bins
  bin_dir=$target/dist
fi
docs=$(mktemp -d)
trap 'rm -rf "$docs"' EXIT
"$bin_dir/mesh-dist" "$docs" >/dev/null

for t in "${tools[@]}"; do install -D -m 755 "$bin_dir/$t" "$dest$prefix/bin/$t"; done
for page in "$docs"/man/man*/*; do
  section=$(basename "$(dirname "$page")")
  install -D -m 644 "$page" "$share/man/$section/$(basename "$page")"
done
(cd "$docs/completions" && find . -type f) | while read -r f; do
  install -D -m 644 "$docs/completions/$f" "$share/$f"
done
for u in "${units[@]}"; do
  install -d "$lib/systemd/system"
  sed "s|/usr/bin/meshd|$prefix/bin/meshd|" "systemd/$u" >"$lib/systemd/system/$u"
  chmod 644 "$lib/systemd/system/$u"
done
install -D -m 644 systemd/meshd.sysusers "$lib/sysusers.d/meshd.conf"
install -D -m 644 systemd/meshd.tmpfiles "$lib/tmpfiles.d/meshd.conf"
install -D -m 644 packaging/etc-meshd-README "$dest/etc/meshd/README"
# The settings are the admin's: an existing file is kept.
if [[ ! -e $dest/etc/default/meshd ]]; then
  install -D -m 644 packaging/default-meshd "$dest/etc/default/meshd"
fi

if [[ -z $dest ]]; then
  systemd-sysusers "$lib/sysusers.d/meshd.conf"
  systemd-tmpfiles --create "$lib/tmpfiles.d/meshd.conf"
  if [[ -d /run/systemd/system ]]; then systemctl daemon-reload; fi
fi
echo "installed mesh in $prefix; next: write /etc/meshd, then systemctl enable --now meshd"
