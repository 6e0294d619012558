"""benches/admission.sh's helpers (stdlib only).

  admission.py bodies URL MODEL OUT           the review bodies: mutate.json
      (the annotated pod) and validate.json (that pod with the patch /mutate
      answers applied: what the API server sends /validate)
  admission.py copies REGISTRY REPO N         REPO copied to REPO-0..N-1 by
      cross-repository blob mounts (no blob data moves): the same manifest
      and its signature (the referrers tag-schema index) under N names, so
      that N validations are N cache misses, each a real lookup
  admission.py cold URL OUT REFERENCE...      one /validate per reference,
      one after another on one keep-alive connection; prints the latencies
      in ms, one a line, and fails on a denial
"""

import base64
import http.client
import json
import ssl
import sys
import time
import urllib.request

ACCEPT = ",".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def review(pod, uid="0d5c"):
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "models",
            "operation": "CREATE",
            "userInfo": {"username": "bench"},
            "object": pod,
            "dryRun": False,
        },
    }


def pod(source):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llm",
            "namespace": "models",
            "annotations": {"modelgate.dev/source": source},
        },
        "spec": {"containers": [{"name": "server", "image": "vllm@sha256:" + "b" * 64}]},
    }


def connection(url):
    host = url.removeprefix("https://")
    context = ssl._create_unverified_context()  # the bench's own self-signed certificate
    return http.client.HTTPSConnection(host, context=context)


def post(conn, path, body):
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    data = answer.read()
    if answer.status != 200:
        sys.exit(f"{path}: HTTP {answer.status}: {data!r}")
    return json.loads(data)["response"]


def apply(doc, patch):
    """A JSON Patch of `add` operations (all the webhook emits)."""
    for op in patch:
        assert op["op"] == "add", op
        parent, last = op["path"].rsplit("/", 1)
        target = doc
        for part in parent.split("/")[1:]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target.append(op["value"]) if last == "-" else target.insert(int(last), op["value"])
        else:
            target[last] = op["value"]


def bodies(url, model, out):
    annotated = pod(model)
    conn = connection(url)
    answer = post(conn, "/mutate", review(annotated))
    apply(annotated, json.loads(base64.b64decode(answer["patch"])))
    json.dump(review(pod(model)), open(f"{out}/mutate.json", "w"))
    json.dump(review(annotated), open(f"{out}/validate.json", "w"))


def registry_get(registry, path, accept=ACCEPT):
    request = urllib.request.Request(f"http://{registry}/v2/{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request) as answer:
        return answer.read(), answer.headers["Content-Type"]


def registry_send(registry, method, path, body=b"", content_type=None):
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(
        f"http://{registry}/v2/{path}", data=body, method=method, headers=headers
    )
    with urllib.request.urlopen(request) as answer:
        return answer.status


def copy_manifest(registry, source, target, reference):
    """The manifest `reference` of `source` (and what it names) into `target`."""
    raw, media_type = registry_get(registry, f"{source}/manifests/{reference}")
    doc = json.loads(raw)
    for child in doc.get("manifests", []):
        copy_manifest(registry, source, target, child["digest"])
    for blob in [doc.get("config")] + doc.get("layers", []):
        if blob:
            registry_send(
                registry, "POST", f"{target}/blobs/uploads/?mount={blob['digest']}&from={source}"
            )
    registry_send(registry, "PUT", f"{target}/manifests/{reference}", raw, media_type)


def copies(registry, repository, count):
    tags = json.loads(registry_get(registry, f"{repository}/tags/list", "application/json")[0])
    for i in range(int(count)):
        for tag in tags["tags"]:
            copy_manifest(registry, repository, f"{repository}-{i}", tag)


def cold(url, out, references):
    conn = connection(url)
    for i, reference in enumerate(references):
        body = json.load(open(f"{out}/validate.json"))
        spec = body["request"]["object"]
        spec["metadata"]["annotations"]["modelgate.dev/source"] = reference
        for env in spec["spec"]["initContainers"][0]["env"]:
            if env["name"] == "MODELGATE_SOURCE":
                env["value"] = reference
        body["request"]["uid"] = f"cold-{i}"
        start = time.perf_counter()
        answer = post(conn, "/validate", body)
        elapsed = time.perf_counter() - start
        if not answer["allowed"] or answer.get("warnings"):
            sys.exit(f"{reference}: not allowed: {answer}")
        print(f"{elapsed * 1000:.3f}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "bodies":
        bodies(args[0], args[1], args[2])
    elif command == "copies":
        copies(args[0], args[1], args[2])
    elif command == "cold":
        cold(args[0], args[1], args[2:])
    else:
        sys.exit(__doc__)
