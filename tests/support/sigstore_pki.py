"""Encodings shared by the scripts that play a private Sigstore in the
tests (make_keyless.py, private_sigstore.py): base64, SHA-256, a key's
SubjectPublicKeyInfo, DER lengths, canonical JSON, RFC 3339 times."""
import base64
import hashlib
import json

from cryptography.hazmat.primitives import serialization


def b64(data):
    return base64.b64encode(data).decode()


def sha256(data):
    return hashlib.sha256(data).digest()


def spki(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def der_length(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def fulcio_leaf(ca_key, ca_name, public_key, identity, issuer, start, end, ct_key, sct_signer=None, key_ids=False):
    """A leaf as Fulcio issues it: no subject, the identity in a critical
    SAN, the OIDC issuer in Fulcio's extensions (v1 raw, v2 DER
    UTF8String), and an SCT by `ct_key`'s log (signed by `sct_signer`,
    default that key) over the precertificate, embedded. With `key_ids`,
    the authority and subject key identifiers that strict X.509 validators
    (sigstore-python's) require."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    san = x509.RFC822Name(identity) if "@" in identity else x509.UniformResourceIdentifier(identity)
    issuer_utf8 = issuer.encode()
    serial = x509.random_serial_number()

    def builder():
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        )
        if key_ids:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        return b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer_utf8), critical=False
        ).add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), b"\x0c" + der_length(len(issuer_utf8)) + issuer_utf8
            ),
            critical=False,
        )

    # The SCT signs the precertificate: the leaf's TBS without the SCT extension.
    precert_tbs = builder().sign(ca_key, hashes.SHA384()).tbs_certificate_bytes
    sct_time = int(start.timestamp() * 1000).to_bytes(8, "big")
    signed = b"\x00\x00" + sct_time + b"\x00\x01" + sha256(spki(ca_key)) + len(precert_tbs).to_bytes(3, "big") + precert_tbs + b"\x00\x00"
    sig = (sct_signer or ct_key).sign(signed, ec.ECDSA(hashes.SHA256()))
    sct = b"\x00" + sha256(spki(ct_key)) + sct_time + b"\x00\x00" + b"\x04\x03" + len(sig).to_bytes(2, "big") + sig
    sct_list = len(sct).to_bytes(2, "big") + sct
    sct_list = len(sct_list).to_bytes(2, "big") + sct_list
    return builder().add_extension(
        x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"), b"\x04" + der_length(len(sct_list)) + sct_list),
        critical=False,
    ).sign(ca_key, hashes.SHA384())
