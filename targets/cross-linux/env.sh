# Sourced, not run, with the architecture to build for:
#   source targets/cross-linux/env.sh aarch64|armv7
# Sets up Debian's Rust 1.96 (rustc-web) for that target, the cross linker and
# qemu-user, installing what is missing, then exports the variables cargo
# reads. No rustup target can be downloaded on our machines; Debian's packages
# can. Only RUSTC selects Debian's compiler, and only for commands that see
# these variables; rustup's toolchain stays the default.
#
#   aarch64  Debian ships the aarch64 standard library prebuilt
#            (libstd-rust-web-dev:arm64).
#   armv7    Debian's armhf standard library cannot be installed from our
#            mirror (its bookworm-security armhf index fails its signature
#            check), so the standard library is compiled from Debian's own
#            1.96 sources (rust-web-src, architecture-independent) with
#            cargo's -Zbuild-std. RUSTC_BOOTSTRAP=1 allows that -Z flag on a
#            stable toolchain; nothing else uses unstable features.
#
# Binaries are static (glibc crt-static), so qemu runs them without a target
# sysroot, and the paths of the checkout and of cargo's registry are remapped
# so a binary does not depend on where it was built.
#
# Exports CROSS_TARGET (the Rust target), CROSS_QEMU (the emulator),
# CROSS_ELF_MACHINE (what readelf must say), CROSS_RUST_ARCH (what the agent
# reports as its `arch`) and CROSS_BUILD_STD (the
# -Zbuild-std crates, empty when the standard library is prebuilt).

cross_arch="${1:?usage: source targets/cross-linux/env.sh aarch64|armv7}"
cross_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
case "$cross_arch" in
  aarch64)
    CROSS_TARGET=aarch64-unknown-linux-gnu
    cross_gnu=aarch64-linux-gnu
    cross_dpkg_arch=arm64
    cross_std_ready() { [ -d /usr/lib/rustlib/$CROSS_TARGET ]; }
    cross_std_pkgs=(libstd-rust-web-dev:arm64)
    cross_libc_pkg=libc6-dev-arm64-cross
    CROSS_QEMU=qemu-aarch64
    CROSS_ELF_MACHINE=AArch64
    CROSS_RUST_ARCH=aarch64
    CROSS_BUILD_STD=""
    ;;
  armv7)
    CROSS_TARGET=armv7-unknown-linux-gnueabihf
    cross_gnu=arm-linux-gnueabihf
    cross_dpkg_arch=""
    cross_std_ready() { [ -f /usr/lib/rustlib/src/rust/library/Cargo.lock ]; }
    cross_std_pkgs=(rust-web-src)
    cross_libc_pkg=libc6-dev-armhf-cross
    CROSS_QEMU=qemu-arm
    CROSS_ELF_MACHINE=ARM
    CROSS_RUST_ARCH=arm
    CROSS_BUILD_STD="std,panic_abort"
    export RUSTC_BOOTSTRAP=1
    # The build scripts of proc-macro2, anyhow and thiserror rerun when
    # RUSTC_BOOTSTRAP changes, and everything built on them follows: in a
    # shared target/ the armv7 and aarch64 builds would each rebuild the
    # other's crates (four minutes of CI). armv7 gets a target dir of its
    # own, and the usual path to its binaries is a link into it.
    export CARGO_TARGET_DIR="$cross_root/target/build-std"
    mkdir -p "$CARGO_TARGET_DIR/$CROSS_TARGET"
    if [ ! -L "$cross_root/target/$CROSS_TARGET" ]; then
      rm -rf "$cross_root/target/$CROSS_TARGET"
      ln -s "build-std/$CROSS_TARGET" "$cross_root/target/$CROSS_TARGET"
    fi
    ;;
  *)
    echo "env.sh: unknown architecture $cross_arch (aarch64 or armv7)" >&2
    return 2
    ;;
esac

cross_need=()
[ -x /usr/bin/rustc ] || cross_need+=(rustc-web)
cross_std_ready || cross_need+=("${cross_std_pkgs[@]}")
command -v "$cross_gnu-gcc" >/dev/null 2>&1 || cross_need+=("gcc-$cross_gnu" "$cross_libc_pkg")
command -v "$CROSS_QEMU" >/dev/null 2>&1 || cross_need+=(qemu-user)
if [ ${#cross_need[@]} -gt 0 ]; then
  echo "$cross_arch: installing ${cross_need[*]}" >&2
  cross_sudo=""
  [ "$(id -u)" -eq 0 ] || cross_sudo="sudo"
  if [ -n "$cross_dpkg_arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$cross_dpkg_arch"; then
    $cross_sudo dpkg --add-architecture "$cross_dpkg_arch"
  fi
  $cross_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $cross_sudo apt-get install -y -qq --no-install-recommends \
    "${cross_need[@]}" >/dev/null
fi

export CROSS_TARGET CROSS_QEMU CROSS_ELF_MACHINE CROSS_RUST_ARCH CROSS_BUILD_STD
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
cross_env="$(echo "$CROSS_TARGET" | tr 'a-z-' 'A-Z_')"
export "CARGO_TARGET_${cross_env}_LINKER=$cross_gnu-gcc"
export "CC_${CROSS_TARGET//-/_}=$cross_gnu-gcc"
export "AR_${CROSS_TARGET//-/_}=$cross_gnu-ar"
export "CARGO_TARGET_${cross_env}_RUSTFLAGS=-C target-feature=+crt-static \
--remap-path-prefix=$cross_root=/outpost --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
# `cargo test --target $CROSS_TARGET` runs each test binary under qemu.
export "CARGO_TARGET_${cross_env}_RUNNER=$CROSS_QEMU"
