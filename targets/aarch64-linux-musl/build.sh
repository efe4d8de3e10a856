#!/usr/bin/env bash
# Recipe for a static arm64 `outpost` (aarch64-unknown-linux-musl).
#
# It does NOT run on the project's build machine: that machine has only the
# x86_64-unknown-linux-gnu standard library and cannot download another rustup
# target. Run it on a machine that can:
#   rustup target add aarch64-unknown-linux-musl
#   apt-get install gcc-aarch64-linux-gnu   # any aarch64 linker works for musl with rust-lld
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-musl; then
  echo "aarch64-unknown-linux-musl is not installed for this toolchain; see the comment at the top of $0" >&2
  exit 2
fi
# ring needs a C cross compiler for its assembly; rust-lld links the musl binary.
export CC_aarch64_unknown_linux_musl="${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-rust-lld}"
cargo build --locked --release -p outpost-agent --bin outpost --target aarch64-unknown-linux-musl
echo "built target/aarch64-unknown-linux-musl/release/outpost"
