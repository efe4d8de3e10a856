#!/usr/bin/env bash
# Checks the systemd unit for nodes outside Kubernetes as it will be installed:
# a scratch root holds this machine's systemd units, the static agent at
# /usr/local/bin/outpost, the unit in /etc/systemd/system and the user from
# outpost.sysusers. Fails on any complaint of `systemd-analyze verify` (which
# only warns, exit 0, about unknown or malformed settings) and when
# `systemd-analyze security` rates the unit's exposure above 2.0 of 10.
#   usage: check.sh [BINARY]   (default: the static x86_64 build)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$(realpath "${1:-$repo/target/x86_64-unknown-linux-gnu/release/outpost}")"
root="$repo/target/systemd-root"
rm -rf "$root"
mkdir -p "$root/usr/lib/systemd" "$root/usr/local/bin" "$root/etc/systemd/system" "$root/bin"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
install -m 0755 "$bin" "$root/usr/local/bin/outpost"
install -m 0755 /bin/kill "$root/bin/kill"
install -m 0644 "$repo/targets/systemd/outpost.service" "$root/etc/systemd/system/outpost.service"
systemd-sysusers --root="$root" "$repo/targets/systemd/outpost.sysusers" >/dev/null 2>&1
grep -q '^outpost:' "$root/etc/passwd"
out="$(systemd-analyze verify --root="$root" outpost.service 2>&1)" || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "systemd: systemd-analyze verify complains about outpost.service:" >&2
  echo "$out" >&2
  exit 1
fi
score="$(systemd-analyze security --offline=yes --root="$root" --threshold=20 outpost.service 2>&1 | tail -1)"
echo "systemd: outpost.service verified; ${score#→ }"
