#!/usr/bin/env python3
"""Wraps a root file system tarball into a single-layer OCI image archive.

    oci-pack.py LAYER.tar OUT.tar CONFIG.json

LAYER.tar is an uncompressed tar of the root file system (what mmdebstrap
writes). CONFIG.json holds the image's name and runtime configuration:

    {"ref": "localhost/caduceus/postgres:15",
     "config": {"Entrypoint": [...], "Cmd": [...], "Env": [...],
                "User": "999:999", "WorkingDir": "/", ...},
     "labels": {...}}

The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/…)
in a tar, the format `ctr images import` reads; index.json names the image
both ways containerd and other tools look for it
(`io.containerd.image.name` with the full reference,
`org.opencontainers.image.ref.name` with the tag). The layer is gzipped
without a timestamp and the archive's members carry SOURCE_DATE_EPOCH, so
the same input gives the same digests.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main():
    layer_tar, out, config_path = sys.argv[1:4]
    with open(config_path) as handle:
        spec = json.load(handle)
    ref = spec["ref"]
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = __import__("datetime").datetime.fromtimestamp(
        epoch, __import__("datetime").timezone.utc
    ).strftime("%Y-%m-%dT%H:%M:%SZ")

    diff_id = sha256_file(layer_tar)
    gz_path = out + ".layer.gz"
    with open(layer_tar, "rb") as src, open(gz_path, "wb") as raw:
        # mtime=0 and no file name: a deterministic gzip header.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    layer_digest = sha256_file(gz_path)
    layer_size = os.path.getsize(gz_path)

    config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": dict(spec.get("config", {})),
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
        "history": [{"created": created, "created_by": "caduceus hack/images.sh"}],
    }
    if spec.get("labels"):
        config["config"]["Labels"] = spec["labels"]
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = hashlib.sha256(config_bytes).hexdigest()

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + layer_digest,
                "size": layer_size,
            }
        ],
    }
    if spec.get("labels"):
        manifest["annotations"] = spec["labels"]
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()

    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + manifest_digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    index_bytes = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
    layout_bytes = b'{"imageLayoutVersion":"1.0.0"}'

    def info(name, size, mode=0o644, kind=tarfile.REGTYPE):
        member = tarfile.TarInfo(name)
        member.size = size
        member.mode = mode
        member.type = kind
        member.mtime = epoch
        member.uname = member.gname = ""
        return member

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as archive:
        for directory in ("blobs/", "blobs/sha256/"):
            archive.addfile(info(directory, 0, 0o755, tarfile.DIRTYPE))
        archive.addfile(info("oci-layout", len(layout_bytes)), io.BytesIO(layout_bytes))
        archive.addfile(info("blobs/sha256/" + config_digest, len(config_bytes)), io.BytesIO(config_bytes))
        archive.addfile(info("blobs/sha256/" + manifest_digest, len(manifest_bytes)), io.BytesIO(manifest_bytes))
        with open(gz_path, "rb") as layer:
            archive.addfile(info("blobs/sha256/" + layer_digest, layer_size), layer)
        archive.addfile(info("index.json", len(index_bytes)), io.BytesIO(index_bytes))
    os.unlink(gz_path)
    print(f"{ref} manifest sha256:{manifest_digest} layer {layer_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
