"""A small OCI 1.1 referrers API in front of a real registry, for the tests.

Debian's docker-registry (CNCF distribution 2.8) has no referrers API, and no
registry that has one can be installed here, so this proxy adds it: every
request is passed to the registry unchanged, except that
- a manifest PUT whose body has a `subject` is recorded as a referrer of that
  subject, and answered with the `OCI-Subject` header, as the OCI
  distribution spec 1.1 says a registry with the API does;
- `GET /v2/<name>/referrers/<digest>[?artifactType=T]` is answered here with
  an image index of the recorded referrers (filtered by artifactType, with
  `OCI-Filters-Applied` then).
Each request line and status goes to the log file, never a header.

usage: referrers_proxy.py UPSTREAM_HOST:PORT LOG_FILE
Prints the port it listens on (127.0.0.1) once ready.
"""
import hashlib
import http.client
import http.server
import json
import re
import sys
import threading
import urllib.parse

upstream, log_path = sys.argv[1], sys.argv[2]
referrers = {}  # (name, subject digest) -> [descriptor]
lock = threading.Lock()
log = open(log_path, "a", buffering=1)
REFERRERS = re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>sha256:[0-9a-f]{64})$")
MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def note(self, status):
        log.write(f"{self.command} {self.path} {status}\n")

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer_referrers(self, name, digest, query):
        wanted = urllib.parse.parse_qs(query).get("artifactType")
        with lock:
            found = list(referrers.get((name, digest), []))
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if wanted:
            found = [d for d in found if d.get("artifactType") in wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        body = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": found}).encode()
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.note(200)

    def forward(self):
        path, _, query = self.path.partition("?")
        m = REFERRERS.match(path)
        if m and self.command == "GET":
            return self.answer_referrers(m["name"], m["digest"], query)
        data = self.body()
        subject = None
        m = MANIFEST.match(path)
        if m and self.command == "PUT":
            try:
                doc = json.loads(data)
            except ValueError:
                doc = {}
            if isinstance(doc, dict) and isinstance(doc.get("subject"), dict):
                subject = (m["name"], doc["subject"].get("digest"), {
                    "mediaType": doc.get("mediaType"),
                    "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "artifactType": doc.get("artifactType") or doc.get("config", {}).get("mediaType"),
                    "annotations": doc.get("annotations", {}),
                })
        conn = http.client.HTTPConnection(upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Content-Length"] = str(len(data))
        conn.request(self.command, self.path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        if subject and 200 <= resp.status < 300:
            name, digest, descriptor = subject
            with lock:
                entries = referrers.setdefault((name, digest), [])
                entries[:] = [d for d in entries if d["digest"] != descriptor["digest"]]
                entries.append(descriptor)
        self.send_response(resp.status)
        head = self.command == "HEAD"
        for k, v in resp.getheaders():
            if k.lower() not in HOP and (head or k.lower() != "content-length"):
                self.send_header(k, v)
        if subject and 200 <= resp.status < 300:
            self.send_header("OCI-Subject", subject[1])
        if not head:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not head:
            self.wfile.write(payload)
        self.note(resp.status)
        conn.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
