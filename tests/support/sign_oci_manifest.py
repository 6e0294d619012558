"""Signs an OCI image manifest the way model-transparency-go does
(github.com/sigstore/model-signing, `model-signing sign key MANIFEST.json`;
read from securesign/model-transparency-go pkg/oci/manifest.go and
pkg/modelartifact at 73a90c8), so the tests can check that modelgate verifies
such signatures without the Go toolchain, which cannot be installed here:

- each layer is a `files`/`sha256` resource named by its
  `org.opencontainers.image.title` annotation (`layer_%03d.tar.gz` by index
  when it has none) with the layer digest;
- the config blob is the resource `config.json` with the config digest,
  unless --ignore-config (the Go CLI's `--ignore-paths config.json`); a layer
  titled `config.json` replaces it (the Go code fills a map, config first);
- resources sorted by name; serialization files/sha256, no symlinks, no
  ignore paths; subject name: the manifest file's name without extension.

The statement and the DSSE bundle are made by the reference implementation
(model_signing's manifest and key signer), so only the resource list is ours.

usage: sign_oci_manifest.py --manifest M.json --key KEY.pem --signature OUT
                            [--ignore-config]
"""
import argparse
import json
import pathlib

from model_signing import manifest
from model_signing._hashing import hashing
from model_signing._signing import sign_ec_key, signing

p = argparse.ArgumentParser()
p.add_argument("--manifest", required=True)
p.add_argument("--key", required=True)
p.add_argument("--signature", required=True)
p.add_argument("--ignore-config", action="store_true")
a = p.parse_args()

path = pathlib.Path(a.manifest)
doc = json.loads(path.read_text())


def digest(d):
    algorithm, hexdigest = d.split(":", 1)
    return hashing.Digest(algorithm.lower(), bytes.fromhex(hexdigest))


items = {}
if not a.ignore_config:
    items["config.json"] = digest(doc["config"]["digest"])
for i, layer in enumerate(doc.get("layers", [])):
    name = layer.get("annotations", {}).get("org.opencontainers.image.title")
    items[name or f"layer_{i:03d}.tar.gz"] = digest(layer["digest"])

m = manifest.Manifest(
    path.stem,
    [manifest.FileManifestItem(path=pathlib.PurePosixPath(n), digest=d)
     for n, d in sorted(items.items())],
    manifest._FileSerialization("sha256", False, []),
)
sign_ec_key.Signer(pathlib.Path(a.key)).sign(signing.Payload(m)).write(
    pathlib.Path(a.signature))
