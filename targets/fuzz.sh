#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS each (default 20: the CI
# smoke run; use 600 for a real campaign). New inputs go to target/fuzz-corpus,
# so the committed seed corpora under fuzz/corpus stay small.
# Needs the nightly toolchain; without it this says so and exits 0.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${FUZZ_SECONDS:-20}"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain, skipped"
  exit 0
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
cd "$root/fuzz"
cargo +nightly fuzz build -O
for t in plan_loader spec_loader exposition http_response; do
  mkdir -p "$root/target/fuzz-corpus/$t"
  log="$root/target/fuzz-corpus/$t.log"
  if ! cargo +nightly fuzz run -O "$t" "$root/target/fuzz-corpus/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $t failed; the input is under fuzz/artifacts/$t" >&2
    exit 1
  fi
  echo "fuzz: $t $(grep -E '^Done' "$log")"
done
