#!/usr/bin/env bash
# The whole test suite: peers installed, the no_std proof, then every test of
# the workspace (unit, property, snapshot, and integration tests against the
# real Prometheus, node_exporter and VictoriaMetrics on loopback).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash targets/peers.sh
bash targets/nostd-check.sh
cargo test --workspace --locked
