"""Makes a Sigstore keyless model signature with a private Sigstore made here:
a Fulcio-like CA, a CT log and a Rekor log, each with its own key, and the
matching trusted_root.json. Everything is offline and made for the test.

usage: make_keyless.py --payload-from KEY_SIGNED.sig --out KEYLESS.sig --root TRUSTED_ROOT.json
                       [--identity ID] [--issuer URL] [--rekor v1|v2] [--mutate CASE]
                       [--managed-key PRIVATE.pem]

The in-toto statement (the model manifest) is taken from a bundle modelgate
signed with a throwaway key; it is re-signed here by a Fulcio-style
certificate, logged as a Rekor v1 `dsse` 0.0.1 entry (tree of two leaves,
inclusion proof, signed checkpoint, signed entry timestamp), with an SCT
embedded in the certificate. With `--rekor v2` the entry is a Rekor v2
`hashedrekord` 0.0.2 over the DSSE PAE instead: no integrated time and no
signed entry timestamp, so the signing time comes from an RFC 3161
timestamp by a test TSA (built with asn1crypto), as Rekor v2 requires.

With `--managed-key` the bundle is signed by that key instead of a Fulcio
certificate, as cosign and the other Sigstore clients sign with a managed key
and still upload to Rekor: `publicKey` material (the hint modelgate and the
reference write) *and* the same log entry, whose verifier is the public key.

CASE makes exactly one thing wrong:
  expired           the certificate expired before the entry was logged
  broken-proof      a hash of the inclusion proof is altered
  bad-checkpoint    the checkpoint is signed by a key that is not the log's
  other-payload     the log entry records another payload and signature
  bad-sct           the embedded SCT is signed by a CT key the root does not trust
  bad-set           the signed entry timestamp is signed by another key (Rekor v1)
  no-tlog           the bundle carries no log entry at all
  untrusted-log     the entry is from a log whose key the root does not name
  log-key-later     the root's log key only became valid after the entry was made
  other-key         the entry's verifier is another public key (managed key)
"""
import argparse
import base64
import datetime
import hashlib
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sigstore_pki import b64, ca_cert, canonical, fulcio_leaf, rfc3161_token, rfc3339, sha256, spki

p = argparse.ArgumentParser()
p.add_argument("--payload-from", required=True)
p.add_argument("--out", required=True)
p.add_argument("--root", required=True)
p.add_argument("--identity", default="signer@example.com")
p.add_argument("--issuer", default="https://oidc.example.com")
p.add_argument("--rekor", default="v1", choices=["v1", "v2"])
p.add_argument("--mutate", default="")
p.add_argument("--managed-key", default="")
a = p.parse_args()

PAYLOAD_TYPE = "application/vnd.in-toto+json"
ecdsa = ec.ECDSA(hashes.SHA256())


def pae(payload):
    return b"DSSEv1 %d %s %d " % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload)) + payload


now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
logged = now - datetime.timedelta(minutes=5)
year = datetime.timedelta(days=365)

ca_key = ec.generate_private_key(ec.SECP384R1())
ct_key = ec.generate_private_key(ec.SECP256R1())
rekor_key = ec.generate_private_key(ec.SECP256R1())
leaf_key = ec.generate_private_key(ec.SECP256R1())
if a.managed_key:
    leaf_key = serialization.load_pem_private_key(open(a.managed_key, "rb").read(), password=None)
managed_pem = leaf_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
logged_verifier_key = ec.generate_private_key(ec.SECP256R1()) if a.mutate == "other-key" else leaf_key
logged_pem = logged_verifier_key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)

ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test"), x509.NameAttribute(NameOID.COMMON_NAME, "test-fulcio")])
ca = ca_cert(ca_key, ca_name, now)

# The leaf as Fulcio issues it: no subject, the identity in a critical SAN,
# the OIDC issuer in Fulcio's extensions (v1 raw, v2 DER UTF8String).
if a.mutate == "expired":
    start, end = logged - datetime.timedelta(minutes=20), logged - datetime.timedelta(minutes=10)
else:
    start, end = logged - datetime.timedelta(minutes=1), logged + datetime.timedelta(minutes=9)
ct_log_id = sha256(spki(ct_key))
sct_signer = ec.generate_private_key(ec.SECP256R1()) if a.mutate == "bad-sct" else ct_key
leaf = fulcio_leaf(ca_key, ca_name, leaf_key.public_key(), a.identity, a.issuer, start, end, ct_key, sct_signer)
leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)

payload = base64.b64decode(json.load(open(a.payload_from))["dsseEnvelope"]["payload"])
signature = leaf_key.sign(pae(payload), ecdsa)
envelope = {"payload": b64(payload), "payloadType": PAYLOAD_TYPE, "signatures": [{"sig": b64(signature), "keyid": ""}]}

# What the log records: this envelope, or (other-payload) another one.
logged_payload, logged_sig = payload, signature
if a.mutate == "other-payload":
    logged_payload = payload.replace(b'"_type"', b'"_type" ', 1)
    logged_sig = leaf_key.sign(pae(logged_payload), ecdsa)
logged_envelope = {"payload": b64(logged_payload), "payloadType": PAYLOAD_TYPE, "signatures": [{"sig": b64(logged_sig), "keyid": ""}]}
if a.rekor == "v2":
    body = canonical(
        {
            "apiVersion": "0.0.2",
            "kind": "hashedrekord",
            "spec": {
                "hashedRekordV002": {
                    "data": {"algorithm": "SHA2_256", "digest": b64(sha256(pae(logged_payload)))},
                    "signature": {
                        "content": b64(logged_sig),
                        "verifier": (
                            {"keyDetails": "PKIX_ECDSA_P256_SHA_256", "publicKey": {"rawBytes": b64(spki(logged_verifier_key))}}
                            if a.managed_key
                            else {
                                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                "x509Certificate": {"rawBytes": b64(leaf.public_bytes(serialization.Encoding.DER))},
                            }
                        ),
                    },
                }
            },
        }
    )
else:
    body = canonical(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": sha256(canonical(logged_envelope)).hex()},
                "payloadHash": {"algorithm": "sha256", "value": sha256(logged_payload).hex()},
                "signatures": [{"signature": b64(logged_sig), "verifier": b64(logged_pem if a.managed_key else leaf_pem)}],
            },
        }
    )

# A two-leaf log: another entry at index 0, ours at index 1.
neighbour = sha256(b"\x00" + b"another entry")
ours = sha256(b"\x00" + body)
root = sha256(b"\x01" + neighbour + ours)
proof = [neighbour]
if a.mutate == "broken-proof":
    proof = [bytes([neighbour[0] ^ 1]) + neighbour[1:]]
log_id = sha256(spki(rekor_key))
integrated = int(logged.timestamp())
set_key = ec.generate_private_key(ec.SECP256R1()) if a.mutate == "bad-set" else rekor_key
promise = set_key.sign(canonical({"body": b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": 1}), ecdsa)
note = f"rekor.test - 4242\n2\n{b64(root)}\n"
checkpoint_key = ec.generate_private_key(ec.SECP256R1()) if a.mutate == "bad-checkpoint" else rekor_key
checkpoint = note + "\n" + f"\u2014 rekor.test {b64(log_id[:4] + checkpoint_key.sign(note.encode(), ecdsa))}\n"





bundle = {
    "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
    "verificationMaterial": {
        "certificate": {"rawBytes": b64(leaf.public_bytes(serialization.Encoding.DER))},
        "tlogEntries": [
            {
                "logIndex": "1",
                "logId": {"keyId": b64(log_id)},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": str(integrated),
                "inclusionPromise": {"signedEntryTimestamp": b64(promise)},
                "inclusionProof": {
                    "logIndex": "1",
                    "rootHash": b64(root),
                    "treeSize": "2",
                    "hashes": [b64(h) for h in proof],
                    "checkpoint": {"envelope": checkpoint},
                },
                "canonicalizedBody": b64(body),
            }
        ],
    },
    "dsseEnvelope": envelope,
}
tsa_authorities = []
if a.rekor == "v2":
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["kindVersion"] = {"kind": "hashedrekord", "version": "0.0.2"}
    del entry["integratedTime"], entry["inclusionPromise"]
    token, tsa_chain = rfc3161_token(signature, logged, now)
    bundle["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": [{"signedTimestamp": b64(token)}]}
    tsa_authorities = [
        {
            "subject": {"organization": "test", "commonName": "test-tsa"},
            "uri": "https://tsa.test",
            "certChain": {"certificates": [{"rawBytes": b64(der)} for der in tsa_chain]},
            "validFor": {"start": rfc3339(now - year)},
        }
    ]
if a.managed_key:
    material = bundle["verificationMaterial"]
    del material["certificate"]
    material["publicKey"] = {"hint": hashlib.sha256(managed_pem).hexdigest()}
if a.mutate == "no-tlog":
    bundle["verificationMaterial"]["tlogEntries"] = []
json.dump(bundle, open(a.out, "w"), indent=2)

valid = {"start": rfc3339(now - year)}
log_valid = {"start": rfc3339(logged + datetime.timedelta(minutes=1))} if a.mutate == "log-key-later" else valid
trusted_log_key = ec.generate_private_key(ec.SECP256R1()) if a.mutate == "untrusted-log" else rekor_key
trusted_root = {
    "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "tlogs": [
        {
            "baseUrl": "https://rekor.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(spki(trusted_log_key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": log_valid},
            "logId": {"keyId": b64(sha256(spki(trusted_log_key)))},
        }
    ],
    "certificateAuthorities": [
        {
            "subject": {"organization": "test", "commonName": "test-fulcio"},
            "uri": "https://fulcio.test",
            "certChain": {"certificates": [{"rawBytes": b64(ca.public_bytes(serialization.Encoding.DER))}]},
            "validFor": valid,
        }
    ],
    "ctlogs": [
        {
            "baseUrl": "https://ctfe.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(spki(ct_key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": valid},
            "logId": {"keyId": b64(ct_log_id)},
        }
    ],
    "timestampAuthorities": tsa_authorities,
}
json.dump(trusted_root, open(a.root, "w"), indent=2)
