"""Builds a KServe "modelcar" image the way users do, with olot (PyPI): a base
image in an OCI layout, then olot adds the model's files under /models, one
tar layer per file. No base image can be pulled here, so the base is made by
hand: one layer with what a minimal image holds (a folder, a file, an
absolute symbolic link, as busybox images have), all outside /models, which
a --subpath pull must skip unread. (olot needs a base with at least one
layer, and a config with architecture, os, rootfs and one history entry per
layer.)

usage: make_modelcar.py LAYOUT MODEL_DIR
Copy it to a registry with: skopeo copy oci:LAYOUT:latest docker://HOST/REPO:TAG
"""
import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile

layout, model = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
blobs = layout / "blobs" / "sha256"
blobs.mkdir(parents=True, exist_ok=True)


def put(data):
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return "sha256:" + digest, len(data)


buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
    for name in ["etc", "bin"]:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    content = b"ID=modelcar-base\n"
    info = tarfile.TarInfo("etc/os-release")
    info.size = len(content)
    tar.addfile(info, io.BytesIO(content))
    info = tarfile.TarInfo("bin/sh")
    info.type = tarfile.SYMTYPE
    info.linkname = "/bin/busybox"
    tar.addfile(info)
base, base_size = put(buf.getvalue())
config, config_size = put(json.dumps({
    "architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": [base]},
    "history": [{"created_by": "modelgate test base"}],
}).encode())
manifest, manifest_size = put(json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": config, "size": config_size},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": base, "size": base_size}],
}).encode())
(layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
(layout / "index.json").write_text(json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": manifest, "size": manifest_size,
                   "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
}))
files = sorted(str(p) for p in model.rglob("*") if p.is_file())
olot = pathlib.Path(sys.executable).parent / "olot"
subprocess.run([str(olot), "--root-dir", str(model), str(layout), *files], check=True)
