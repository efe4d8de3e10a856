#!/usr/bin/env python3
"""Writes an OCI image layout holding one multi-arch image of `outpost`.

No base image and no container daemon: each platform's image is one layer
with the static binary at /outpost (root-owned, 0755), run as 65534:65534
with /outpost as its entrypoint. Everything that could vary between two
builds is fixed, so the same binaries give the same digests: tar entries
carry the SOURCE_DATE_EPOCH time, uid/gid 0 and no user names, gzip has no
name and a zero time, JSON is written with sorted keys and no spaces.

usage: oci_layout.py OUT_DIR TAG amd64=PATH arm64=PATH arm=PATH ...
Prints the digest of the image index; that is the digest a registry shows
after `skopeo copy --all --preserve-digests`.
"""

import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
USER = "65534:65534"
BINARY = "outpost"
# Docker and containerd name 64-bit ARM `arm64` with variant `v8`, and
# 32-bit ARM with hardware float `arm` with variant `v7`.
VARIANTS = {"arm64": "v8", "arm": "v7"}


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Blobs:
    def __init__(self, out):
        self.dir = os.path.join(out, "blobs", "sha256")
        os.makedirs(self.dir)

    def put(self, media_type, data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.dir, digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def layer_tar(binary, epoch):
    """The uncompressed layer: one regular file, every field fixed."""
    with open(binary, "rb") as f:
        data = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(BINARY)
        info.size = len(data)
        info.mode = 0o755
        info.mtime = epoch
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzipped(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def platform_image(blobs, arch, binary, epoch, created):
    tar = layer_tar(binary, epoch)
    layer = blobs.put(LAYER, gzipped(tar))
    platform = {"architecture": arch, "os": "linux"}
    if arch in VARIANTS:
        platform["variant"] = VARIANTS[arch]
    config = dict(platform)
    config.update(
        {
            "created": created,
            "config": {"User": USER, "Entrypoint": ["/" + BINARY], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
            "history": [{"created": created, "created_by": "targets/image/build.sh"}],
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": blobs.put(CONFIG, canonical(config)),
        "layers": [layer],
    }
    descriptor = blobs.put(MANIFEST, canonical(manifest))
    descriptor["platform"] = platform
    return descriptor


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    out, tag = argv[1], argv[2]
    binaries = [a.split("=", 1) for a in argv[3:]]
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if os.path.exists(out):
        shutil.rmtree(out)
    blobs = Blobs(out)
    manifests = [platform_image(blobs, arch, path, epoch, created) for arch, path in sorted(binaries)]
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": manifests,
        "annotations": {
            "org.opencontainers.image.created": created,
            "org.opencontainers.image.title": BINARY,
            "org.opencontainers.image.version": tag,
        },
    }
    image = blobs.put(INDEX, canonical(index))
    # The layout's own index names the multi-arch image by its tag, and each
    # platform's manifest by TAG-ARCH for tools that unpack one image.
    refs = [dict(image, annotations={"org.opencontainers.image.ref.name": tag})]
    for m in manifests:
        arch = m["platform"]["architecture"]
        refs.append(dict(m, annotations={"org.opencontainers.image.ref.name": f"{tag}-{arch}"}))
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": refs}))
    print(image["digest"])


if __name__ == "__main__":
    main(sys.argv)
