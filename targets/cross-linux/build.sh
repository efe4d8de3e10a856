#!/usr/bin/env bash
# Statically linked `outpost` and `outpostc` (glibc crt-static) for arm64 or
# 32-bit ARM, built on an x86_64 Debian machine with Debian's Rust (see
# env.sh, which installs it).
#   bash targets/cross-linux/build.sh aarch64|armv7
# Output: target/<rust target>/release/{outpost,outpostc}
#   BINS="outpost"   build only the agent
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
arch="${1:?usage: build.sh aarch64|armv7}"
source targets/cross-linux/env.sh "$arch"
build_std=()
[ -z "$CROSS_BUILD_STD" ] || build_std=("-Zbuild-std=$CROSS_BUILD_STD")
for b in ${BINS:-outpost outpostc}; do
  case "$b" in
    outpost) package=outpost-agent ;;
    outpostc) package=outpost-compiler ;;
    *) echo "build.sh: unknown binary $b (outpost or outpostc)" >&2; exit 2 ;;
  esac
  # One cargo run per binary: built together, the compiler's dependency
  # features would be unified into the agent and change its bytes.
  cargo build --locked --release "${build_std[@]}" --target "$CROSS_TARGET" -p "$package" --bin "$b"
  bin="target/$CROSS_TARGET/release/$b"
  # An executable of the target's machine with no shared library to load.
  if ! readelf -h "$bin" | grep -q "Machine: *$CROSS_ELF_MACHINE\$"; then
    echo "error: $bin is not an $arch binary: $(readelf -h "$bin" | grep Machine)" >&2
    exit 1
  fi
  if readelf -d "$bin" | grep -q NEEDED; then
    echo "error: $bin is dynamically linked: $(readelf -d "$bin" | grep NEEDED | tr -s ' ')" >&2
    exit 1
  fi
  echo "built $bin ($(stat -c %s "$bin") bytes, static $arch; $($CROSS_QEMU "$bin" --version))"
done
