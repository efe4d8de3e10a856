#!/usr/bin/env bash
# The outpost container image, built without a container daemon: an OCI image
# layout in target/image holding one image index for linux/amd64,
# linux/arm64 and linux/arm/v7, tagged with the workspace version. Each image is the static
# binary alone (no base image, no shell), user 65534, entrypoint /outpost.
# The same sources give the same digest (see oci_layout.py); the index digest
# goes to target/image.digest for `outpostc manifests --image-digest`.
#
#   SOURCE_DATE_EPOCH   time stamped into the image (default 0, 1970-01-01)
#   NO_BUILD=1          pack the binaries already in target/ without cargo
#
# Push it with: skopeo copy --all --preserve-digests oci:target/image:TAG docker://REGISTRY/outpost:TAG
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
if [ "${NO_BUILD:-}" != 1 ]; then
  bash targets/x86_64-linux/build.sh
  BINS=outpost bash targets/cross-linux/build.sh aarch64
  BINS=outpost bash targets/cross-linux/build.sh armv7
fi
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
digest="$(python3 targets/image/oci_layout.py target/image "$version" \
  amd64=target/x86_64-unknown-linux-gnu/release/outpost \
  arm64=target/aarch64-unknown-linux-gnu/release/outpost \
  arm=target/armv7-unknown-linux-gnueabihf/release/outpost)"
echo "$digest" > target/image.digest
echo "image: oci:target/image:$version $digest ($(du -sb target/image | cut -f1) bytes in the layout)"
