#!/usr/bin/env bash
# The aarch64 build, tested under qemu-user on this x86_64 machine:
#  1. builds the static aarch64 `outpost` and `outpostc` (build.sh);
#  2. runs every outpost-core test and the agent's unit tests as aarch64
#     binaries under qemu-aarch64 (opt-level 1: a debug build is ten times
#     slower under emulation; debug assertions stay on);
#  3. the aarch64 `outpostc` compiles examples/fleet.yaml into exactly the
#     golden plans in examples/plans;
#  4. the seed's checks (peers_seed_checks: runtimeinfo, `up`, succeeded and
#     failed samples on a real Prometheus 2.42, WAL segments after SIGTERM in append mode)
#     against the aarch64 agent under qemu, driven by the golden node plans
#     of cluster-03 and cluster-02/tenant-a with the receiver on loopback.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bash targets/peers.sh
bash targets/aarch64-linux/build.sh
target=aarch64-unknown-linux-gnu
(
  source targets/aarch64-linux/env.sh
  export CARGO_PROFILE_TEST_OPT_LEVEL=1
  cargo test --locked --target "$target" -p outpost-core
  cargo test --locked --target "$target" -p outpost-agent --lib
)
plans="$(mktemp -d)"
trap 'rm -rf "$plans"' EXIT
qemu-aarch64 "target/$target/release/outpostc" compile examples/fleet.yaml -o "$plans"
diff -r examples/plans "$plans"
echo "aarch64: outpostc compiled examples/fleet.yaml into the golden plans, byte for byte"
# The host's test harness, the aarch64 agent: rustup's toolchain builds the test.
OUTPOST_TEST_COMMAND="qemu-aarch64 $root/target/$target/release/outpost" OUTPOST_TEST_ARCH=aarch64 \
  cargo test --locked -p outpost-agent --test peers_seed_checks
