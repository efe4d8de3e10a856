#!/usr/bin/env bash
# The arm64 or 32-bit ARM build, tested under qemu-user on this x86_64 machine:
#   bash targets/cross-linux/test.sh aarch64|armv7
#   BINS="outpost"   build and check the agent only (steps 1, 2 and 4)
#   UNIT_TESTS="core" in step 2, the outpost-core tests only (default "core agent")
#  1. builds the static `outpost` and `outpostc` (build.sh);
#  2. runs every outpost-core test and the agent's unit tests as binaries of
#     that architecture under qemu (opt-level 1: a debug build is ten times
#     slower under emulation; debug assertions, overflow checks included,
#     stay on, which is what catches 32-bit arithmetic on armv7);
#  3. that `outpostc` compiles examples/fleet.yaml into exactly the golden
#     plans in examples/plans;
#  4. the seed's checks (peers_seed_checks: runtimeinfo, `up`, succeeded and
#     failed samples on a real Prometheus 2.42, WAL segments after SIGTERM in
#     append mode)
#     against that agent under qemu, driven by the golden node plans of
#     cluster-03 and cluster-02/tenant-a with the receiver on loopback.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
arch="${1:?usage: test.sh aarch64|armv7}"
bash targets/peers.sh
bash targets/cross-linux/build.sh "$arch"
(
  source targets/cross-linux/env.sh "$arch"
  build_std=()
  [ -z "$CROSS_BUILD_STD" ] || build_std=("-Zbuild-std=$CROSS_BUILD_STD,test")
  export CARGO_PROFILE_TEST_OPT_LEVEL=1
  for unit in ${UNIT_TESTS:-core agent}; do
    case "$unit" in
      core) cargo test --locked "${build_std[@]}" --target "$CROSS_TARGET" -p outpost-core ;;
      agent) cargo test --locked "${build_std[@]}" --target "$CROSS_TARGET" -p outpost-agent --lib ;;
      *) echo "test.sh: unknown unit tests $unit (core or agent)" >&2; exit 2 ;;
    esac
  done
)
source targets/cross-linux/env.sh "$arch" >/dev/null
target="$CROSS_TARGET"
qemu="$CROSS_QEMU"
rust_arch="$CROSS_RUST_ARCH"
unset RUSTC RUSTDOC RUSTC_BOOTSTRAP CARGO_TARGET_DIR
if [[ " ${BINS:-outpost outpostc} " == *" outpostc "* ]]; then
  plans="$(mktemp -d)"
  trap 'rm -rf "$plans"' EXIT
  $qemu "target/$target/release/outpostc" compile examples/fleet.yaml -o "$plans"
  diff -r examples/plans "$plans"
  echo "$arch: outpostc compiled examples/fleet.yaml into the golden plans, byte for byte"
fi
# The host's test harness, the cross-built agent: rustup's toolchain builds the test.
OUTPOST_TEST_COMMAND="$qemu $root/target/$target/release/outpost" OUTPOST_TEST_ARCH="$rust_arch" \
  cargo test --locked -p outpost-agent --test peers_seed_checks
