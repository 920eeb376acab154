#!/usr/bin/env bash
# Builds target/debian/mesh_<version>_amd64.deb (cargo-deb; `cargo install cargo-deb
# --locked` once): the release binaries (profile `dist`), their man pages and completions, the
# units. Prints the .deb's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
# mesh-dist writes the pages and completions from the tools' clap definitions.
cargo build --profile dist -p meshd -p meshctl -p meshload -p meshstat -p mesh-dist --bins
rm -rf "$target/dist/docs"
"$target/dist/mesh-dist" "$target/dist/docs" >/dev/null
# Debian installs man pages gzipped (policy 12.1; -n: no name or time stamp, reproducible).
gzip -9n "$target/dist/docs"/man/man*/*
cargo deb -p meshd --no-build --profile dist
