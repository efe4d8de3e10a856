#!/usr/bin/env bash
# The image, built and checked the way a user's tools will see it:
#  1. two builds give the same digest and the same layout, byte for byte;
#  2. skopeo (Debian's) reads the index, each platform's manifest and config:
#     one layer, user 65534:65534, entrypoint /outpost;
#  3. umoci unpacks each platform: the root filesystem is the static binary
#     alone, root-owned 0755, identical to the one built;
#  4. `outpostc manifests --image-digest target/image.digest` pins that digest;
#  5. the amd64 bundle runs under runc as the manifests run it on a node
#     (chown-wal as root with CAP_CHOWN, then the agent as 65534 with no
#     capability, read-only root) and passes the seed's checks against a real
#     Prometheus 2.42 (peers_seed_checks through runc-outpost.sh).
# Expects the binaries from targets/x86_64-linux and targets/cross-linux to
# be built already or builds them (targets/image/build.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
need=()
for tool in skopeo umoci runc; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "image: installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash targets/peers.sh
work="$root/target/image-test"
rm -rf "$work" && mkdir -p "$work"
cleanup() {
  # Containers left by a failed run (runc-outpost.sh names them outpost-smoke-*).
  for id in $(runc list -q 2>/dev/null | grep '^outpost-smoke-' || true); do runc delete -f "$id" || true; done
}
trap cleanup EXIT

bash targets/image/build.sh
first="$(cat target/image.digest)"
cp -a target/image "$work/first"
bash targets/image/build.sh
second="$(cat target/image.digest)"
[ "$first" = "$second" ] || { echo "image: not reproducible: $first then $second" >&2; exit 1; }
diff -r "$work/first" target/image
echo "image: two builds, one digest: $first"

tag="$(python3 -c 'import json, sys
for m in json.load(open("target/image/index.json"))["manifests"]:
    if m["mediaType"].endswith("image.index.v1+json"):
        print(m["annotations"]["org.opencontainers.image.ref.name"])')"
raw="$(skopeo inspect --raw "oci:target/image:$tag")"
[ "sha256:$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)" = "$first" ] || {
  echo "image: skopeo's index for $tag is not $first" >&2; exit 1; }

declare -A binary=(
  [amd64]=target/x86_64-unknown-linux-gnu/release/outpost
  [arm64]=target/aarch64-unknown-linux-gnu/release/outpost
  [arm]=target/armv7-unknown-linux-gnueabihf/release/outpost
)
declare -A variant=([amd64]="" [arm64]=v8 [arm]=v7)
for arch in amd64 arm64 arm; do
  platform=(--override-os linux --override-arch "$arch")
  [ -z "${variant[$arch]}" ] || platform+=(--override-variant "${variant[$arch]}")
  skopeo inspect "${platform[@]}" "oci:target/image:$tag" >"$work/inspect-$arch.json"
  skopeo inspect --config "${platform[@]}" "oci:target/image:$tag" >"$work/config-$arch.json"
  umoci unpack --image "target/image:$tag-$arch" "$work/bundle-$arch" >/dev/null
  python3 - "$arch" "$work" "${binary[$arch]}" "$first" <<'PY'
import json, os, stat, sys
arch, work, binary, digest = sys.argv[1:]
inspect = json.load(open(f"{work}/inspect-{arch}.json"))
config = json.load(open(f"{work}/config-{arch}.json"))
bundle = f"{work}/bundle-{arch}"
assert inspect["Digest"] == digest, inspect
assert (inspect["Os"], inspect["Architecture"]) == ("linux", arch), inspect
assert len(inspect["Layers"]) == 1, inspect["Layers"]
assert config["config"] == {"User": "65534:65534", "Entrypoint": ["/outpost"], "WorkingDir": "/"}, config["config"]
files = []
for dirpath, dirs, names in os.walk(f"{bundle}/rootfs"):
    files += [os.path.relpath(os.path.join(dirpath, n), f"{bundle}/rootfs") for n in dirs + names]
assert files == ["outpost"], f"{arch}: the root filesystem holds {files}"
st = os.lstat(f"{bundle}/rootfs/outpost")
assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, 0, 0), st
assert open(f"{bundle}/rootfs/outpost", "rb").read() == open(binary, "rb").read(), "binary differs"
process = json.load(open(f"{bundle}/config.json"))["process"]
assert process["user"] == {"uid": 65534, "gid": 65534} and process["args"] == ["/outpost"], process
layer = inspect["Layers"][0].split(":")[1]
print(f"image: linux/{arch}: user 65534, entrypoint /outpost, one file; layer "
      f"{os.path.getsize(f'target/image/blobs/sha256/{layer}')} bytes compressed, binary {st.st_size} bytes")
PY
done

# The manifests pin what was built: --image-digest takes the file the build wrote.
cargo run --locked -q -p outpost-compiler --bin outpostc -- manifests examples/fleet.yaml -o "$work/manifests" \
  --image registry.example.net/outpost --image-digest target/image.digest
pinned="$(grep -rh 'image:' "$work/manifests" | grep -v kube-state-metrics | tr -d ' "' | sort -u)"
[ "$pinned" = "image:registry.example.net/outpost@$first" ] || {
  echo "image: the manifests run $pinned, not the image built ($first)" >&2; exit 1; }
echo "image: outpostc manifests --image-digest target/image.digest pins $first"

OUTPOST_TEST_COMMAND="bash $root/targets/image/runc-outpost.sh $work/bundle-amd64" OUTPOST_TEST_ARCH=x86_64 \
  cargo test --locked -p outpost-agent --test peers_seed_checks
echo "image: the amd64 image passed the seed's checks under runc"
