#!/usr/bin/env bash
# Statically linked aarch64 `outpost` and `outpostc` (glibc crt-static), built
# on an x86_64 Debian machine with Debian's Rust and its aarch64 standard
# library (see env.sh, which installs them).
# Output: target/aarch64-unknown-linux-gnu/release/{outpost,outpostc}
#   BINS="outpost"   build only the agent
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
source targets/aarch64-linux/env.sh
for b in ${BINS:-outpost outpostc}; do
  case "$b" in
    outpost) package=outpost-agent ;;
    outpostc) package=outpost-compiler ;;
    *) echo "build.sh: unknown binary $b (outpost or outpostc)" >&2; exit 2 ;;
  esac
  # One cargo run per binary: built together, the compiler's dependency
  # features would be unified into the agent and change its bytes.
  cargo build --locked --release --target "$AARCH64_TARGET" -p "$package" --bin "$b"
  bin="target/$AARCH64_TARGET/release/$b"
  # An aarch64 executable with no shared library to load.
  if ! readelf -h "$bin" | grep -q 'Machine:.*AArch64'; then
    echo "error: $bin is not an aarch64 binary" >&2
    exit 1
  fi
  if readelf -d "$bin" | grep -q NEEDED; then
    echo "error: $bin is dynamically linked: $(readelf -d "$bin" | grep NEEDED | tr -s ' ')" >&2
    exit 1
  fi
  echo "built $bin ($(stat -c %s "$bin") bytes, static aarch64; $(qemu-aarch64 "$bin" --version))"
done
