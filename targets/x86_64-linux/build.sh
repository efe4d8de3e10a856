#!/usr/bin/env bash
# Statically linked x86_64 `outpost` with glibc's crt-static (rustup's
# toolchain, the machine's own). Paths of the checkout and of cargo's
# registry are remapped, so the binary does not depend on where it was built.
# Output: target/x86_64-unknown-linux-gnu/release/outpost
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$root=/outpost \
--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
  cargo build --locked --release -p outpost-agent --bin outpost --target x86_64-unknown-linux-gnu
bin=target/x86_64-unknown-linux-gnu/release/outpost
# A static binary needs no shared library: no NEEDED entry in its dynamic section.
if readelf -d "$bin" | grep -q NEEDED; then
  echo "error: $bin is dynamically linked: $(readelf -d "$bin" | grep NEEDED | tr -s ' ')" >&2
  exit 1
fi
echo "built $bin ($(stat -c %s "$bin") bytes, static)"
