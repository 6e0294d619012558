"""A proxy in front of a real registry that injects one kind of fault.

Every request is passed to the registry (Debian's docker-registry) unchanged,
except the ones the fault names. Blob GETs are `GET /v2/<name>/blobs/<digest>`;
counts are per blob ("the first N GETs of each blob").

  reset:N       the first N GETs of each blob: the headers and half the body,
                then a TCP reset (RST, SO_LINGER 0)
  truncate:N    the first N GETs of each blob: the whole Content-Length, half
                the body, then a clean close (FIN)
  stall:S       every blob GET: the headers and half the body, then nothing
                for S seconds
  short:N       the first N GETs of each blob: Content-Length and body cut to
                half the blob, a well-formed but short answer
  long          every blob GET: Content-Length 1000 more than the body, the
                whole body, then a close
  status:C:N:R  the first N GETs of each manifest and blob: HTTP C with
                `Retry-After: R`
  huge          every manifest GET: 200 with a 5 MiB JSON document (over
                the distribution spec's 4 MiB for a manifest)
  redirect      every blob GET: 307 to the same path on a second listener at
                127.0.0.2 (another host), which serves it from the registry;
                whether an Authorization header reached it is logged
  redirect-bad  the same, but the second host serves the blob with its last
                byte changed

The second host reads the registry with the Authorization header in
FAULT_PROXY_UPSTREAM_AUTH, if set, as storage behind a presigned URL would.

Each request line, the fault applied and (for the second host) whether it got
credentials go to the log file, never a header value.

usage: fault_proxy.py UPSTREAM_HOST:PORT LOG_FILE FAULT
Prints the port it listens on (127.0.0.1) once ready.
"""
import collections
import http.client
import http.server
import os
import re
import socket
import struct
import sys
import threading
import time

upstream, log_path, fault = sys.argv[1], sys.argv[2], sys.argv[3]
kind, *args = fault.split(":")
log = open(log_path, "a", buffering=1)
lock = threading.Lock()
seen = collections.Counter()
BLOB = re.compile(r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$")
MANIFEST = re.compile(r"^/v2/.+/manifests/[^/]+$")
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}
storage_port = None


def count(path):
    with lock:
        seen[path] += 1
        return seen[path]


def fetch(method, path, headers):
    """The registry's answer, body read whole (blobs in the tests are small)."""
    conn = http.client.HTTPConnection(upstream, timeout=30)
    conn.request(method, path, headers={k: v for k, v in headers.items() if k.lower() not in HOP})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.getheaders(), body


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    storage = False  # the second host

    def log_message(self, *args):
        pass

    def note(self, what):
        log.write(f"{'storage ' if self.storage else ''}{self.command} {self.path} {what}\n")

    def head_only(self, status, headers, length):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def reset(self):
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def relay(self, status, headers, body):
        self.head_only(status, headers, len(body))
        self.wfile.write(body)

    def do_HEAD(self):
        self.forward()

    def do_GET(self):
        self.forward()

    def do_POST(self):
        self.forward()

    def do_PUT(self):
        self.forward()

    def do_PATCH(self):
        self.forward()

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else None
        path = self.path.partition("?")[0]
        blob = self.command == "GET" and BLOB.match(path)
        if self.storage:
            self.note("credentials" if self.headers.get("Authorization") else "no-credentials")
            # Storage answers on its own authority (a presigned URL): it
            # reads the registry with FAULT_PROXY_UPSTREAM_AUTH, never with
            # what the client sent.
            headers = {}
            if self.headers.get("Range"):
                headers["Range"] = self.headers["Range"]
            if os.environ.get("FAULT_PROXY_UPSTREAM_AUTH"):
                headers["Authorization"] = os.environ["FAULT_PROXY_UPSTREAM_AUTH"]
            status, headers, body = fetch("GET", self.path, headers)
            if kind == "redirect-bad" and body:
                body = body[:-1] + bytes([body[-1] ^ 1])
            return self.relay(status, headers, body)
        if blob and kind in ("redirect", "redirect-bad"):
            self.note("redirect")
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.2:{storage_port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "huge" and self.command == "GET" and MANIFEST.match(path):
            self.note("huge")
            body = b'{"schemaVersion": 2, "padding": "' + b"x" * (5 << 20) + b'"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if kind == "status" and self.command == "GET" and (blob or MANIFEST.match(path)):
            code, times, retry_after = int(args[0]), int(args[1]), args[2]
            if count(path) <= times:
                self.note(f"status {code}")
                body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}'
                self.send_response(code)
                self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        headers = dict(self.headers.items())
        if not blob:
            conn = http.client.HTTPConnection(upstream, timeout=30)
            conn.request(self.command, self.path, body=payload,
                         headers={k: v for k, v in headers.items() if k.lower() not in HOP})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            self.note(resp.status)
            return self.relay(resp.status, resp.getheaders(), body)
        status, rheaders, body = fetch("GET", self.path, headers)
        n = count(path)
        half = len(body) // 2
        if status not in (200, 206):
            self.note(status)
            return self.relay(status, rheaders, body)
        if kind == "reset" and n <= int(args[0]):
            self.note("reset")
            self.head_only(status, rheaders, len(body))
            self.wfile.write(body[:half])
            return self.reset()
        if kind == "truncate" and n <= int(args[0]):
            self.note("truncate")
            self.head_only(status, rheaders, len(body))
            self.wfile.write(body[:half])
            self.wfile.flush()
            self.close_connection = True
            return
        if kind == "stall":
            self.note("stall")
            self.head_only(status, rheaders, len(body))
            self.wfile.write(body[:half])
            self.wfile.flush()
            time.sleep(float(args[0]))
            self.close_connection = True
            return
        if kind == "short" and n <= int(args[0]):
            self.note("short")
            return self.relay(status, rheaders, body[:half])
        if kind == "long":
            self.note("long")
            self.head_only(status, rheaders, len(body) + 1000)
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        self.note(status)
        self.relay(status, rheaders, body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class Storage(Handler):
    storage = True


if kind in ("redirect", "redirect-bad"):
    second = Server(("127.0.0.2", 0), Storage)
    storage_port = second.server_address[1]
    threading.Thread(target=second.serve_forever, daemon=True).start()
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
