"""A token server for the Docker registry token authentication spec, for the
tests: a registry started with `auth: token` sends clients here, and they
come back with a JWT that the registry verifies against the certificate
this server writes (its `rootcertbundle`).

usage: token_server.py --user U --password P --issuer ISS
                       --cert-out BUNDLE.pem --port-file PORT --log LOG.jsonl

GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]
  with HTTP Basic credentials of the one user: 200 and
  {"token": JWT, "access_token": JWT, "expires_in": 300, "issued_at": ...};
  the token grants, per requested repository, the requested actions among
  pull and push. Wrong credentials, or none: 401 (no anonymous access).

The JWT is ES256, signed by a P-256 key made at start; its header carries
the self-signed certificate of that key in `x5c`, which distribution 2.8
verifies against the bundle. Each request is logged as one JSON line (path,
service, scopes, account, status, granted access), never with credentials.
The port (bound on 127.0.0.1, chosen by the system) is written to the port
file once the bundle is on disk and the server listens.

Only the standard library and `cryptography` (in the test venv).
"""
import argparse
import base64
import binascii
import datetime
import hmac
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

ALLOWED = ("pull", "push")

p = argparse.ArgumentParser()
p.add_argument("--user", required=True)
p.add_argument("--password", required=True)
p.add_argument("--issuer", required=True)
p.add_argument("--cert-out", required=True)
p.add_argument("--port-file", required=True)
p.add_argument("--log", required=True)
a = p.parse_args()

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelgate test token issuer")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(hours=1))
    .not_valid_after(now + datetime.timedelta(days=2))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .add_extension(
        x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True,
            crl_sign=False, encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )
    .sign(key, hashes.SHA256())
)
x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
with open(a.cert_out + ".tmp", "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
os.replace(a.cert_out + ".tmp", a.cert_out)

log_lock = threading.Lock()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict) -> str:
    header = {"typ": "JWT", "alg": "ES256", "x5c": [x5c]}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def parse_scope(scope: str):
    """`type:name:actions`; the name may itself hold colons (a port)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return kind, name, [x for x in actions.split(",") if x]


def account(header):
    """The user if the Basic credentials are right, else None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    ok = hmac.compare_digest(user.encode(), a.user.encode()) and hmac.compare_digest(
        password.encode(), a.password.encode()
    )
    return user if ok else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # the JSON log below replaces it
        pass

    def reply(self, status, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        service = (query.get("service") or [None])[0]
        # Several scope parameters, or several scopes in one separated by spaces.
        scopes = [s for v in query.get("scope", []) for s in v.split(" ") if s]
        user = account(self.headers.get("Authorization"))
        entry = {
            "method": "GET",
            "path": url.path,
            "service": service,
            "scopes": scopes,
            "credentials": "basic" if self.headers.get("Authorization") else "none",
            "account": user,
        }
        if url.path != "/token":
            status, body, extra = 404, {"error": "not found"}, ()
            granted = []
        elif user is None:
            status = 401
            body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
            extra = (("WWW-Authenticate", 'Basic realm="modelgate-test-token"'),)
            granted = []
        else:
            granted = []
            for scope in scopes:
                parsed = parse_scope(scope)
                if parsed is None or parsed[0] != "repository":
                    continue
                kind, name, actions = parsed
                allowed = [x for x in actions if x in ALLOWED]
                if allowed:
                    granted.append({"type": kind, "name": name, "actions": allowed})
            issued = int(time.time())
            claims = {
                "iss": a.issuer,
                "sub": user,
                "aud": service or "",
                "exp": issued + 300,
                "nbf": issued - 10,
                "iat": issued,
                "jti": uuid.uuid4().hex,
                "access": granted,
            }
            token = jwt(claims)
            status, extra = 200, ()
            body = {
                "token": token,
                "access_token": token,
                "expires_in": 300,
                "issued_at": datetime.datetime.fromtimestamp(issued, datetime.timezone.utc)
                .isoformat()
                .replace("+00:00", "Z"),
            }
        entry["status"] = status
        entry["granted"] = granted
        with log_lock, open(a.log, "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.reply(status, body, extra)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(a.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(a.port_file + ".tmp", a.port_file)
server.serve_forever()
