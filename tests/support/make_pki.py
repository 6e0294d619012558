"""Makes a small PKI for the certificate-method tests, with the `cryptography`
package the reference already depends on (openssl's CLI here cannot backdate
a certificate, and an expired leaf is one of the cases).

usage: make_pki.py OUT_DIR [--leaf-curve P-256|P-384|P-521] [--expired-leaf]
                   [--no-signing-usage] [--intermediate-not-ca] [--root-path-len-zero]
                   [--intermediate-no-cert-sign] [--leaf-unknown-critical]

Writes root.pem, intermediate.pem, leaf.pem, leaf.key (PKCS#8), chain.pem
(intermediate then root), and other-root.pem (an unrelated CA).
"""
import argparse
import datetime
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--leaf-curve", default="P-256")
p.add_argument("--expired-leaf", action="store_true")
p.add_argument("--no-signing-usage", action="store_true")
p.add_argument("--intermediate-not-ca", action="store_true")
p.add_argument("--root-path-len-zero", action="store_true")
p.add_argument("--intermediate-no-cert-sign", action="store_true")
p.add_argument("--leaf-unknown-critical", action="store_true")
a = p.parse_args()
out = pathlib.Path(a.out)
out.mkdir(parents=True, exist_ok=True)
now = datetime.datetime.now(datetime.timezone.utc)
curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def cert(subject, key, issuer, issuer_key, *, ca, start, end, usage=True, eku=True, san=None, path_length=None, cert_sign=True, unknown_critical=False):
    b = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    )
    if unknown_critical:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), critical=True)
    if ca:
        b = b.add_extension(
            x509.KeyUsage(not cert_sign, False, False, False, False, cert_sign, True, False, False), critical=True
        )
    else:
        if usage:
            b = b.add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(san)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def write(path, c):
    (out / path).write_bytes(c.public_bytes(serialization.Encoding.PEM))


year = datetime.timedelta(days=365)
root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
root = cert(
    "test-root-ca", root_key, "test-root-ca", root_key, ca=True, start=now - 3 * year, end=now + 10 * year,
    path_length=0 if a.root_path_len_zero else None,
)
int_key = ec.generate_private_key(ec.SECP384R1())
intermediate = cert(
    "test-intermediate-ca", int_key, "test-root-ca", root_key,
    ca=not a.intermediate_not_ca, start=now - 3 * year, end=now + 5 * year,
    cert_sign=not a.intermediate_no_cert_sign,
)
leaf_key = ec.generate_private_key(curves[a.leaf_curve])
start, end = (now - 2 * year, now - year) if a.expired_leaf else (now - datetime.timedelta(hours=1), now + year)
leaf = cert(
    "model-signer", leaf_key, "test-intermediate-ca", int_key, ca=False, start=start, end=end,
    usage=not a.no_signing_usage, eku=not a.no_signing_usage, san="signer@example.com",
    unknown_critical=a.leaf_unknown_critical,
)
other_key = ec.generate_private_key(ec.SECP256R1())
other = cert("other-root-ca", other_key, "other-root-ca", other_key, ca=True, start=now - year, end=now + year)

write("root.pem", root)
write("intermediate.pem", intermediate)
write("leaf.pem", leaf)
write("other-root.pem", other)
(out / "chain.pem").write_bytes(
    intermediate.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)
)
(out / "leaf.key").write_bytes(
    leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
)
