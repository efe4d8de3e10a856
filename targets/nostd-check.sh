#!/usr/bin/env bash
# Links outpost-core into a #![no_std] #![no_main] binary for the host target.
# If any dependency of the core pulls in std, the link fails with a duplicate
# `panic_impl` lang item, so this check cannot pass by accident.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/targets/nostd-check"
CARGO_TARGET_DIR="$root/target/nostd-check" cargo build --locked --quiet
"$root/target/nostd-check/debug/outpost-nostd-check"
