"""Pushes an OCI artifact exactly as described, through the distribution API
(monolithic blob uploads, then the manifest), so the tests can put in a real
registry the layouts other tools write (ModelPack, KitOps, Docker Model
Runner) and hostile manifests no tool would write.

usage: push_artifact.py --registry HOST:PORT --repo REPO --tag TAG SPEC.json
                        [--user U --password P]

SPEC.json:
  {"artifactType": "...",                      (optional)
   "config": {"mediaType": "...", "content": "{}"},
   "layers": [{"mediaType": "...", "file": "PATH", "annotations": {...},
               "sizeDelta": 0}],              (the descriptor's size is off by this)
   "annotations": {...}}                         (optional)
Prints the manifest's digest.
"""
import argparse
import hashlib
import json

import requests

p = argparse.ArgumentParser()
p.add_argument("--registry", required=True)
p.add_argument("--repo", required=True)
p.add_argument("--tag", required=True)
p.add_argument("--user")
p.add_argument("--password")
p.add_argument("spec")
a = p.parse_args()
base = f"http://{a.registry}/v2/{a.repo}"
auth = (a.user, a.password) if a.user else None
spec = json.load(open(a.spec))


def push_blob(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"{base}/blobs/uploads/", auth=auth)
    r.raise_for_status()
    location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{a.registry}{location}"
    sep = "&" if "?" in location else "?"
    r = requests.put(f"{location}{sep}digest={digest}", data=data, auth=auth,
                     headers={"Content-Type": "application/octet-stream"})
    r.raise_for_status()
    return digest, len(data)


config = spec["config"]["content"].encode()
config_digest, config_size = push_blob(config)
layers = []
for layer in spec["layers"]:
    data = open(layer["file"], "rb").read()
    digest, size = push_blob(data)
    layers.append({
        "mediaType": layer["mediaType"],
        "digest": digest,
        "size": size + layer.get("sizeDelta", 0),
        "annotations": layer.get("annotations", {}),
    })
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": spec["config"]["mediaType"], "digest": config_digest, "size": config_size},
    "layers": layers,
}
if "artifactType" in spec:
    manifest["artifactType"] = spec["artifactType"]
if "annotations" in spec:
    manifest["annotations"] = spec["annotations"]
body = json.dumps(manifest).encode()
r = requests.put(f"{base}/manifests/{a.tag}", data=body, auth=auth,
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
if r.status_code >= 300:
    raise SystemExit(f"manifest push failed: HTTP {r.status_code} {r.text}")
print("sha256:" + hashlib.sha256(body).hexdigest())
