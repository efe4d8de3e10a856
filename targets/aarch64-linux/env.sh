# Sourced, not run: the cross toolchain for aarch64-unknown-linux-gnu, from
# Debian. No rustup target can be downloaded here, but Debian ships Rust with
# an aarch64 standard library (rustc-web from bookworm-security), the cross
# linker and qemu-user to run the result. Installs what is missing, then sets
# the variables cargo reads. Only RUSTC selects Debian's compiler, and only for
# commands that see these variables; rustup's toolchain stays the default.
#
# Binaries are static (glibc crt-static), so qemu-aarch64 runs them without an
# aarch64 sysroot, and paths of the checkout and of cargo's registry are
# remapped so the binary does not depend on where it was built.

aarch64_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
aarch64_need=()
[ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] ||
  aarch64_need+=(rustc-web libstd-rust-web-dev:arm64)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || aarch64_need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || aarch64_need+=(qemu-user)
if [ ${#aarch64_need[@]} -gt 0 ]; then
  echo "aarch64: installing ${aarch64_need[*]}" >&2
  aarch64_sudo=""
  [ "$(id -u)" -eq 0 ] || aarch64_sudo="sudo"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $aarch64_sudo dpkg --add-architecture arm64
  fi
  $aarch64_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $aarch64_sudo apt-get install -y -qq --no-install-recommends \
    "${aarch64_need[@]}" >/dev/null
fi

export AARCH64_TARGET=aarch64-unknown-linux-gnu
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static \
--remap-path-prefix=$aarch64_root=/outpost --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
# `cargo test --target aarch64-unknown-linux-gnu` runs each test binary under qemu.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
