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


def ca_cert(key, name, now, path_length=1):
    """A self-signed CA certificate for `key`, valid a year around `now`,
    with a subject key identifier."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    year = datetime.timedelta(days=365)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - year)
        .not_valid_after(now + year)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )


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


def test_tsa(now):
    """A test timestamp authority valid a year around `now`: its key, its
    certificate's DER (timeStamping, critical) and its root's DER."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    year = datetime.timedelta(days=365)
    tsa_root_key = ec.generate_private_key(ec.SECP384R1())
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-tsa-root")])
    tsa_root = ca_cert(tsa_root_key, root_name, now, path_length=0)
    tsa_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-tsa")]))
        .issuer_name(root_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - year)
        .not_valid_after(now + year)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(tsa_root_key, hashes.SHA384())
    )
    return tsa_key, tsa_cert.public_bytes(serialization.Encoding.DER), tsa_root.public_bytes(serialization.Encoding.DER)


def rfc3161_token(signed_bytes, when, now, tsa=None, imprint=None, nonce=None, serial=1):
    """An RFC 3161 TimeStampToken (CMS SignedData over a TSTInfo) whose
    message imprint is `imprint`, default SHA-256 of `signed_bytes`, by
    `tsa` (from test_tsa; default a new one), with `nonce` if given;
    returns the token and the chain, leaf first."""
    from asn1crypto import cms, tsp
    from asn1crypto import x509 as ax509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    tsa_key, tsa_der, root_der = tsa or test_tsa(now)
    fields = {
        "version": "v1",
        "policy": "1.3.6.1.4.1.57264.2",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": imprint or sha256(signed_bytes)},
        "serial_number": serial,
        "gen_time": when,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    tst_info = tsp.TSTInfo(fields)
    tst_der = tst_info.dump()
    attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [sha256(tst_der)]},
            {"type": "signing_certificate_v2", "values": [{"certs": [{"cert_hash": sha256(tsa_der)}]}]},
        ]
    )
    cert = ax509.Certificate.load(tsa_der)
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": tsa_key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256())),
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": tst_info},
            "certificates": [cert],
            "signer_infos": [signer],
        }
    )
    token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
    return token, [tsa_der, root_der]
