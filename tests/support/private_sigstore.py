"""A private Sigstore on loopback, for keyless signing tests: one HTTPS
server (TLS under a test CA, for 127.0.0.1) that answers

  POST /api/v2/signingCert   Fulcio v2: checks the OIDC token (ES256 by the
                             test issuer, audience sigstore, not expired) and
                             the proof of possession, issues a leaf under the
                             test Fulcio CA with an embedded SCT by the test
                             CT log
  POST /api/v1/log/entries   Rekor v1, kind dsse 0.0.1: appends to an RFC 6962
                             tree and answers with the inclusion proof, a
                             signed checkpoint and the signed entry timestamp
  POST /api/v2/log/entries   Rekor v2, hashedrekord 0.0.2: the same tree,
                             answered as a bundle's TransparencyLogEntry
                             (signing_config-rekor-v2.json, with the TSA)
  POST /api/v1/timestamp     an RFC 3161 TSA: a token for the request's
                             imprint and nonce, by the test TSA (used when
                             signing with signing_config-tsa.json)
  GET  /github/token         GitHub Actions' token request endpoint (bearer
                             REQUEST-TOKEN, ?audience=...): a fresh token

usage: private_sigstore.py DIR [--fault CASE]

Writes into DIR: trusted_root.json, signing_config.json,
trust_config.json (model_signing's --trust_config), tls-ca.pem, and tokens:
token.jwt (valid), expired.jwt, foreign.jwt (signed by a key the issuer
does not have). Prints `ready PORT` once listening; serves until killed.
Each request is logged as one JSON line to DIR/requests.jsonl (path and
status only: never a token).

CASE:
  fulcio-refuses   Fulcio answers 401 to every token
  bad-sct          the SCT is signed by a key the trusted root does not name
  rekor-500        Rekor answers 500
  broken-proof     Rekor's inclusion proof has a hash altered
  slow             Fulcio waits 30 s before answering
  bad-tsa          the TSA signs with a key the trusted root does not name
"""
import base64
import datetime
import ipaddress
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sigstore_pki import b64, ca_cert, canonical, fulcio_leaf, rfc3161_token, rfc3339, sha256, spki, test_tsa

DIR = sys.argv[1]
FAULT = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--fault" else ""
ISSUER = "https://oidc.test"
GITHUB_REQUEST_TOKEN = "request-token-for-tests"
ecdsa = ec.ECDSA(hashes.SHA256())
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
year = datetime.timedelta(days=365)


ca_key = ec.generate_private_key(ec.SECP384R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test"), x509.NameAttribute(NameOID.COMMON_NAME, "test-fulcio")])
ca = ca_cert(ca_key, ca_name, now)
ct_key = ec.generate_private_key(ec.SECP256R1())
rekor_key = ec.generate_private_key(ec.SECP256R1())
oidc_key = ec.generate_private_key(ec.SECP256R1())
log_id = sha256(spki(rekor_key))

# TLS: a CA of its own, and a server certificate for 127.0.0.1.
tls_ca_key = ec.generate_private_key(ec.SECP256R1())
tls_ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-sigstore-tls")])
tls_ca = ca_cert(tls_ca_key, tls_ca_name, now, path_length=0)
tls_key = ec.generate_private_key(ec.SECP256R1())

tls_cert = (
    x509.CertificateBuilder()
    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
    .issuer_name(tls_ca_name)
    .public_key(tls_key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - year)
    .not_valid_after(now + year)
    .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    .sign(tls_ca_key, hashes.SHA256())
)


def write(name, data):
    with open(os.path.join(DIR, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


write("tls-ca.pem", tls_ca.public_bytes(serialization.Encoding.PEM))
write("tls.pem", tls_cert.public_bytes(serialization.Encoding.PEM))
write(
    "tls.key",
    tls_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
)


def mint(sub="ci@example.com", exp_in=600, key=oidc_key, aud="sigstore"):
    t = int(time.time())
    claims = {"iss": ISSUER, "sub": sub, "email": sub, "email_verified": True, "aud": aud, "iat": t, "exp": t + exp_in}
    return jwt.encode(claims, key, algorithm="ES256")


write("token.jwt", mint())
write("expired.jwt", mint(exp_in=-60))
write("foreign.jwt", mint(key=ec.generate_private_key(ec.SECP256R1())))

# --- Fulcio


def issue(public_key, identity):
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(seconds=30)
    end = start + datetime.timedelta(minutes=10)
    sct_signer = ec.generate_private_key(ec.SECP256R1()) if FAULT == "bad-sct" else ct_key
    return fulcio_leaf(ca_key, ca_name, public_key, identity, ISSUER, start, end, ct_key, sct_signer, key_ids=True)


def signing_cert(request):
    if FAULT == "slow":
        time.sleep(30)
    if FAULT == "fulcio-refuses":
        return 401, {"code": 16, "message": "the test Fulcio refuses every token"}
    token = request["credentials"]["oidcIdentityToken"]
    try:
        claims = jwt.decode(token, oidc_key.public_key(), algorithms=["ES256"], audience="sigstore", issuer=ISSUER)
    except jwt.PyJWTError as e:
        return 401, {"code": 16, "message": f"error processing the identity token: {type(e).__name__}"}
    key_request = request["publicKeyRequest"]
    public_key = serialization.load_pem_public_key(key_request["publicKey"]["content"].encode())
    identity = claims.get("email") or claims["sub"]
    try:
        public_key.verify(base64.b64decode(key_request["proofOfPossession"]), identity.encode(), ecdsa)
    except Exception:
        return 400, {"code": 3, "message": "the proof of possession does not verify"}
    leaf = issue(public_key, identity)
    chain = [leaf.public_bytes(serialization.Encoding.PEM).decode(), ca.public_bytes(serialization.Encoding.PEM).decode()]
    return 201, {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}


# --- Rekor v1: an RFC 6962 tree


leaves = [sha256(b"\x00" + b"the genesis entry of the test log")]
lock = threading.Lock()


def mth(hs):
    if len(hs) == 1:
        return hs[0]
    k = 1
    while k * 2 < len(hs):
        k *= 2
    return sha256(b"\x01" + mth(hs[:k]) + mth(hs[k:]))


def proof(index, hs):
    if len(hs) == 1:
        return []
    k = 1
    while k * 2 < len(hs):
        k *= 2
    if index < k:
        return proof(index, hs[:k]) + [mth(hs[k:])]
    return proof(index - k, hs[k:]) + [mth(hs[:k])]


def log_entry(request):
    if FAULT == "rekor-500":
        return 500, {"code": 500, "message": "the test Rekor is broken"}
    if request.get("kind") != "dsse":
        return 400, {"code": 400, "message": "this test Rekor takes dsse entries only"}
    content = request["spec"]["proposedContent"]
    envelope = json.loads(content["envelope"])
    payload = base64.b64decode(envelope["payload"])
    # Rekor stores the verifier as PEM, whatever encoding was sent.
    sent = base64.b64decode(content["verifiers"][0])
    loaded = x509.load_pem_x509_certificate(sent) if sent.startswith(b"-----") else x509.load_der_x509_certificate(sent)
    verifier = loaded.public_bytes(serialization.Encoding.PEM)
    signature = envelope["signatures"][0]["sig"]
    body = canonical(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": sha256(canonical(envelope)).hex()},
                "payloadHash": {"algorithm": "sha256", "value": sha256(payload).hex()},
                "signatures": [{"signature": signature, "verifier": b64(verifier)}],
            },
        }
    )
    index, size, root, path, checkpoint = append(body)
    integrated = int(time.time())
    promise = rekor_key.sign(
        canonical({"body": b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": index}), ecdsa
    )
    uuid = sha256(body).hex()
    return 201, {
        uuid: {
            "body": b64(body),
            "integratedTime": integrated,
            "logID": log_id.hex(),
            "logIndex": index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": checkpoint,
                    "hashes": [h.hex() for h in path],
                    "logIndex": index,
                    "rootHash": root.hex(),
                    "treeSize": size,
                },
                "signedEntryTimestamp": b64(promise),
            },
        }
    }


def append(body):
    """Appends an entry body to the log: its index, the tree size, the
    root, the inclusion proof and the signed checkpoint."""
    with lock:
        leaves.append(sha256(b"\x00" + body))
        index, size, hs = len(leaves) - 1, len(leaves), list(leaves)
    root = mth(hs)
    path = proof(index, hs)
    if FAULT == "broken-proof" and path:
        path[0] = bytes([path[0][0] ^ 1]) + path[0][1:]
    note = f"rekor.test - 4242\n{size}\n{b64(root)}\n"
    checkpoint = note + "\n" + f"\u2014 rekor.test {b64(log_id[:4] + rekor_key.sign(note.encode(), ecdsa))}\n"
    return index, size, root, path, checkpoint


def log_entry_v2(request):
    """Rekor v2: a hashedrekord 0.0.2 entry, answered as the bundle's
    TransparencyLogEntry (no integrated time, no SET: the TSA times it)."""
    if FAULT == "rekor-500":
        return 500, {"code": 500, "message": "the test Rekor is broken"}
    req = request["hashedRekordRequestV002"]
    body = canonical(
        {
            "apiVersion": "0.0.2",
            "kind": "hashedrekord",
            "spec": {
                "hashedRekordV002": {
                    "data": {"algorithm": "SHA2_256", "digest": req["digest"]},
                    "signature": {"content": req["signature"]["content"], "verifier": req["signature"]["verifier"]},
                }
            },
        }
    )
    index, size, root, path, checkpoint = append(body)
    return 201, {
        "logIndex": str(index),
        "logId": {"keyId": b64(log_id)},
        "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
        "inclusionProof": {
            "logIndex": str(index),
            "rootHash": b64(root),
            "treeSize": str(size),
            "hashes": [b64(h) for h in path],
            "checkpoint": {"envelope": checkpoint},
        },
        "canonicalizedBody": b64(body),
    }


# --- RFC 3161 timestamp authority

tsa = test_tsa(now)
serials = iter(range(1, 1 << 30))


def timestamp(body):
    """A TimeStampResp granting a token for the request's imprint and nonce."""
    from asn1crypto import cms, tsp

    request = tsp.TimeStampReq.load(body)
    imprint = request["message_imprint"]
    if imprint["hash_algorithm"]["algorithm"].native != "sha256":
        return 400, tsp.TimeStampResp({"status": {"status": "rejection"}}).dump()
    signer = test_tsa(now) if FAULT == "bad-tsa" else tsa
    when = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    token, _ = rfc3161_token(
        b"", when, now, tsa=signer, imprint=imprint["hashed_message"].native, nonce=request["nonce"].native, serial=next(serials)
    )
    answer = tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": cms.ContentInfo.load(token)})
    return 200, answer.dump()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, obj, content_type="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with lock:
            with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
                f.write(json.dumps({"method": self.command, "path": self.path.split("?")[0], "status": status}) + "\n")

    def do_GET(self):
        if self.path.startswith("/github/token"):
            if self.headers.get("authorization") != f"Bearer {GITHUB_REQUEST_TOKEN}":
                return self.answer(401, {"message": "bad request token"})
            audience = self.path.split("audience=")[-1] if "audience=" in self.path else ""
            return self.answer(200, {"value": mint(sub="https://github.com/org/repo/.github/workflows/sign.yml@refs/heads/main", aud=audience)})
        self.answer(404, {"message": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if self.path == "/api/v1/timestamp":
            status, reply = timestamp(body)
            return self.answer(status, reply, "application/timestamp-reply")
        request = json.loads(body or b"{}")
        if self.path == "/api/v2/signingCert":
            return self.answer(*signing_cert(request))
        if self.path == "/api/v1/log/entries":
            return self.answer(*log_entry(request))
        if self.path == "/api/v2/log/entries":
            return self.answer(*log_entry_v2(request))
        self.answer(404, {"message": "no such path"})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(os.path.join(DIR, "tls.pem"), os.path.join(DIR, "tls.key"))
server.socket = context.wrap_socket(server.socket, server_side=True)
port = server.server_address[1]
base = f"https://127.0.0.1:{port}"

valid = {"start": rfc3339(now - year)}
trusted_root = {
    "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "tlogs": [
        {
            "baseUrl": base,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(spki(rekor_key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": valid},
            "logId": {"keyId": b64(log_id)},
        }
    ],
    "certificateAuthorities": [
        {
            "subject": {"organization": "test", "commonName": "test-fulcio"},
            "uri": base,
            "certChain": {"certificates": [{"rawBytes": b64(ca.public_bytes(serialization.Encoding.DER))}]},
            "validFor": valid,
        }
    ],
    "ctlogs": [
        {
            "baseUrl": base,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(spki(ct_key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": valid},
            "logId": {"keyId": b64(sha256(spki(ct_key)))},
        }
    ],
    "timestampAuthorities": [
        {
            "subject": {"organization": "test", "commonName": "test-tsa"},
            "uri": base + "/api/v1/timestamp",
            "certChain": {"certificates": [{"rawBytes": b64(tsa[1])}, {"rawBytes": b64(tsa[2])}]},
            "validFor": valid,
        }
    ],
}


def service(url):
    return {"url": url, "majorApiVersion": 1, "validFor": valid, "operator": "test"}


signing_config = {
    "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
    "caUrls": [service(base)],
    "oidcUrls": [service(ISSUER)],
    "rekorTlogUrls": [service(base)],
    "tsaUrls": [],
    "rekorTlogConfig": {"selector": "ANY"},
    "tsaConfig": {"selector": "ANY"},
}
write("trusted_root.json", json.dumps(trusted_root, indent=2))
write("signing_config.json", json.dumps(signing_config, indent=2))
dead = dict(signing_config, rekorTlogUrls=[service("https://127.0.0.1:1")])
write("signing_config-dead-rekor.json", json.dumps(dead, indent=2))
with_tsa = dict(signing_config, tsaUrls=[service(base + "/api/v1/timestamp")])
write("signing_config-tsa.json", json.dumps(with_tsa, indent=2))
dead_tsa = dict(signing_config, tsaUrls=[service("https://127.0.0.1:1/api/v1/timestamp")])
write("signing_config-dead-tsa.json", json.dumps(dead_tsa, indent=2))
v2 = dict(with_tsa, rekorTlogUrls=[dict(service(base), majorApiVersion=2)])
write("signing_config-rekor-v2.json", json.dumps(v2, indent=2))
write(
    "trust_config.json",
    json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": trusted_root,
            "signingConfig": signing_config,
        },
        indent=2,
    ),
)
print(f"ready {port}", flush=True)
server.serve_forever()
