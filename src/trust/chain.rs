//! X.509 certificates and path validation for the certificate (PKI) signing
//! method: a bundle carries the signing certificate and its intermediates
//! (leaf first); the verifier is given the anchors it trusts.
//!
//! What is checked, from the leaf up: each certificate is inside its validity
//! period at the validation time, carries no critical extension this module
//! does not understand, and is signed by the next one; every issuer is a CA
//! (basicConstraints) allowed to sign certificates (keyUsage keyCertSign when
//! present) within its path-length limit; the path ends at a certificate the
//! verifier supplied (a root, or an intermediate the operator chose to trust).
//! The leaf must be usable for signing: keyUsage digitalSignature or the
//! codeSigning extended key usage, as the reference requires.
//!
//! Certificate signatures are checked with `ring` (RSA PKCS#1 v1.5, ECDSA
//! P-256/P-384, Ed25519: what CAs use); ECDSA P-521 with RustCrypto's `p521`,
//! which ring lacks.

use std::fmt;
use std::time::SystemTime;

use der::{Decode, Encode};
use ring::signature as rs;
use x509_cert::Certificate as X509;
use x509_cert::der;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};

use super::keys::PublicKey;
use crate::model::Digest;

/// Longest path (leaf to anchor, excluded) followed.
const MAX_INTERMEDIATES: usize = 8;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const OID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// Extensions this module understands, or may safely ignore when critical.
const KNOWN_EXTENSIONS: [&str; 7] = [
    "2.5.29.19", // basicConstraints
    "2.5.29.15", // keyUsage
    "2.5.29.37", // extKeyUsage
    "2.5.29.17", // subjectAltName
    "2.5.29.14", // subjectKeyIdentifier
    "2.5.29.35", // authorityKeyIdentifier
    "2.5.29.32", // certificatePolicies (no policy constraints are enforced)
];

/// Why a certificate or chain is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Not a parseable X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Malformed(String),
    /// Outside its validity period at the validation time.
    #[error("certificate {subject} is not valid at {at}: valid from {not_before} to {not_after}")]
    Expired {
        /// Its subject.
        subject: String,
        /// The validation time (RFC 3339).
        at: String,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// A rule of path validation failed.
    #[error("{0}")]
    Invalid(String),
    /// No path leads to a trusted anchor.
    #[error(
        "certificate {subject} (issued by {issuer}) does not chain to a trusted anchor; verify with the CA certificate that issued it"
    )]
    Untrusted {
        /// Subject of the last certificate reached.
        subject: String,
        /// Its issuer, which nothing trusted matches.
        issuer: String,
    },
}

/// A parsed certificate with its DER bytes.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    cert: X509,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({})", self.subject())
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, ChainError> {
        let cert = X509::from_der(der).map_err(|e| ChainError::Malformed(e.to_string()))?;
        Ok(Self {
            der: der.to_vec(),
            cert,
        })
    }

    /// Parses every certificate in a PEM file (one or more blocks).
    pub fn from_pem_bundle(pem: &[u8]) -> Result<Vec<Self>, ChainError> {
        // x509-cert 0.2.5's `load_pem_chain` computes `len - 1` of the input
        // with its trailing newlines stripped: an empty file, or one of only
        // newlines, overflows (a panic where overflow checks are on; found
        // by fuzz/ target `certificates`). It holds no block either way.
        if pem.iter().all(u8::is_ascii_whitespace) {
            return Err(ChainError::Malformed("no CERTIFICATE block found".into()));
        }
        let certs = X509::load_pem_chain(pem).map_err(|e| ChainError::Malformed(e.to_string()))?;
        if certs.is_empty() {
            return Err(ChainError::Malformed("no CERTIFICATE block found".into()));
        }
        certs
            .into_iter()
            .map(|cert| {
                let der = cert
                    .to_der()
                    .map_err(|e| ChainError::Malformed(e.to_string()))?;
                Ok(Self { der, cert })
            })
            .collect()
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Subject distinguished name (RFC 4514).
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// Issuer distinguished name (RFC 4514).
    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    /// Serial number, hex.
    pub fn serial(&self) -> String {
        hex::encode(self.cert.tbs_certificate.serial_number.as_bytes())
    }

    /// SHA-256 of the DER encoding.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.der)
    }

    /// Hex SHA-256 of the DER encoding (without `sha256:`).
    pub fn fingerprint(&self) -> String {
        hex::encode(self.digest().0)
    }

    /// Subject alternative names: emails, URIs and DNS names.
    pub fn subject_alt_names(&self) -> Vec<String> {
        let Ok(Some((_, san))) = self.cert.tbs_certificate.get::<SubjectAltName>() else {
            return Vec::new();
        };
        san.0
            .iter()
            .filter_map(|name| match name {
                GeneralName::Rfc822Name(s) => Some(s.to_string()),
                GeneralName::DnsName(s) => Some(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Start and end of validity.
    pub fn validity(&self) -> (SystemTime, SystemTime) {
        let v = &self.cert.tbs_certificate.validity;
        (v.not_before.to_system_time(), v.not_after.to_system_time())
    }

    /// The subject's key, as the EC key a model signature is made with.
    pub fn signing_key(&self) -> Result<PublicKey, ChainError> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| ChainError::Malformed(e.to_string()))?;
        PublicKey::from_spki_der(&spki).map_err(|e| {
            ChainError::Invalid(format!("signing certificate {}: {e}", self.subject()))
        })
    }

    fn extension<'a, T: Decode<'a> + der::oid::AssociatedOid>(
        &'a self,
    ) -> Result<Option<T>, ChainError> {
        self.cert
            .tbs_certificate
            .get::<T>()
            .map(|found| found.map(|(_, value)| value))
            .map_err(|e| {
                ChainError::Invalid(format!(
                    "certificate {}: malformed extension: {e}",
                    self.subject()
                ))
            })
    }

    fn check_critical_extensions(&self) -> Result<(), ChainError> {
        for ext in self.cert.tbs_certificate.extensions.iter().flatten() {
            let oid = ext.extn_id.to_string();
            if ext.critical && !KNOWN_EXTENSIONS.contains(&oid.as_str()) {
                return Err(ChainError::Invalid(format!(
                    "certificate {} has a critical extension {oid} that modelgate does not process",
                    self.subject()
                )));
            }
        }
        Ok(())
    }

    fn check_time(&self, at: SystemTime) -> Result<(), ChainError> {
        let (not_before, not_after) = self.validity();
        if at < not_before || at > not_after {
            return Err(ChainError::Expired {
                subject: self.subject(),
                at: rfc3339(at),
                not_before: rfc3339(not_before),
                not_after: rfc3339(not_after),
            });
        }
        Ok(())
    }

    /// Checks that this certificate may issue certificates with `below`
    /// intermediate CAs under it.
    fn check_issuer(&self, below: usize) -> Result<(), ChainError> {
        let ca = self.extension::<BasicConstraints>()?;
        match ca {
            Some(bc) if bc.ca => {
                if let Some(limit) = bc.path_len_constraint
                    && below > usize::from(limit)
                {
                    return Err(ChainError::Invalid(format!(
                        "CA {} allows {limit} intermediate(s) below it, the chain has {below}",
                        self.subject()
                    )));
                }
            }
            _ => {
                return Err(ChainError::Invalid(format!(
                    "certificate {} issued another certificate but is not a CA (basicConstraints)",
                    self.subject()
                )));
            }
        }
        if let Some(usage) = self.extension::<KeyUsage>()?
            && !usage.key_cert_sign()
        {
            return Err(ChainError::Invalid(format!(
                "CA {} is not allowed to sign certificates (keyUsage lacks keyCertSign)",
                self.subject()
            )));
        }
        Ok(())
    }

    /// keyUsage digitalSignature, or the codeSigning extended key usage.
    fn check_signing_usage(&self) -> Result<(), ChainError> {
        let digital_signature = self
            .extension::<KeyUsage>()?
            .is_some_and(|u| u.digital_signature());
        let code_signing = self
            .extension::<ExtendedKeyUsage>()?
            .is_some_and(|u| u.0.contains(&OID_CODE_SIGNING));
        if digital_signature || code_signing {
            return Ok(());
        }
        Err(ChainError::Invalid(format!(
            "certificate {} may not sign: it has neither keyUsage digitalSignature nor extendedKeyUsage codeSigning",
            self.subject()
        )))
    }

    /// Whether `issuer` issued this certificate: names match and the
    /// signature verifies with the issuer's key.
    fn issued_by(&self, issuer: &Certificate) -> bool {
        self.cert.tbs_certificate.issuer == issuer.cert.tbs_certificate.subject
            && self.signature_verifies_with(issuer)
    }

    fn signature_verifies_with(&self, issuer: &Certificate) -> bool {
        let Ok(tbs) = self.cert.tbs_certificate.to_der() else {
            return false;
        };
        let Some(signature) = self.cert.signature.as_bytes() else {
            return false;
        };
        let spki = &issuer.cert.tbs_certificate.subject_public_key_info;
        let Some(key) = spki.subject_public_key.as_bytes() else {
            return false;
        };
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let sig_alg = self.cert.signature_algorithm.oid;
        let algorithm: &dyn rs::VerificationAlgorithm = match (spki.algorithm.oid, curve, sig_alg) {
            (OID_EC_PUBLIC_KEY, Some(OID_P521), OID_ECDSA_SHA512) => {
                use p256::ecdsa::signature::Verifier as _;
                return p521::ecdsa::VerifyingKey::from_sec1_bytes(key)
                    .ok()
                    .zip(p521::ecdsa::Signature::from_der(signature).ok())
                    .is_some_and(|(k, s)| k.verify(&tbs, &s).is_ok());
            }
            (OID_EC_PUBLIC_KEY, Some(OID_P256), OID_ECDSA_SHA256) => &rs::ECDSA_P256_SHA256_ASN1,
            (OID_EC_PUBLIC_KEY, Some(OID_P256), OID_ECDSA_SHA384) => &rs::ECDSA_P256_SHA384_ASN1,
            (OID_EC_PUBLIC_KEY, Some(OID_P384), OID_ECDSA_SHA256) => &rs::ECDSA_P384_SHA256_ASN1,
            (OID_EC_PUBLIC_KEY, Some(OID_P384), OID_ECDSA_SHA384) => &rs::ECDSA_P384_SHA384_ASN1,
            (OID_RSA, _, OID_RSA_SHA256) => &rs::RSA_PKCS1_2048_8192_SHA256,
            (OID_RSA, _, OID_RSA_SHA384) => &rs::RSA_PKCS1_2048_8192_SHA384,
            (OID_RSA, _, OID_RSA_SHA512) => &rs::RSA_PKCS1_2048_8192_SHA512,
            (OID_ED25519, _, OID_ED25519) => &rs::ED25519,
            _ => return false,
        };
        rs::UnparsedPublicKey::new(algorithm, key)
            .verify(&tbs, signature)
            .is_ok()
    }
}

/// A chain that validated: the leaf, the intermediates used, and the anchor.
#[derive(Clone, Debug)]
pub struct ValidatedChain {
    /// The signing certificate.
    pub leaf: Certificate,
    /// The trusted certificate the path ended at.
    pub anchor: Certificate,
}

/// Validates `leaf` up to one of `anchors`, through `intermediates` (the
/// bundle's other certificates; untrusted until a path through them reaches
/// an anchor), at time `at`.
pub fn validate(
    leaf: &Certificate,
    intermediates: &[Certificate],
    anchors: &[Certificate],
    at: SystemTime,
) -> Result<ValidatedChain, ChainError> {
    leaf.check_time(at)?;
    leaf.check_critical_extensions()?;
    leaf.check_signing_usage()?;
    let done = |anchor: &Certificate| {
        Ok(ValidatedChain {
            leaf: leaf.clone(),
            anchor: anchor.clone(),
        })
    };
    if let Some(pinned) = anchors.iter().find(|a| *a == leaf) {
        return done(pinned);
    }
    let mut current = leaf;
    let mut used: Vec<&Certificate> = Vec::new();
    loop {
        if let Some(anchor) = anchors.iter().find(|a| current.issued_by(a)) {
            anchor.check_time(at)?;
            anchor.check_issuer(used.len())?;
            return done(anchor);
        }
        if used.len() == MAX_INTERMEDIATES {
            return Err(ChainError::Invalid(format!(
                "no trusted anchor within {MAX_INTERMEDIATES} intermediates"
            )));
        }
        let Some(next) = intermediates
            .iter()
            .find(|c| !used.contains(c) && *c != leaf && current.issued_by(c))
        else {
            return Err(ChainError::Untrusted {
                subject: current.subject(),
                issuer: current.issuer(),
            });
        };
        next.check_time(at)?;
        next.check_critical_extensions()?;
        next.check_issuer(used.len())?;
        used.push(next);
        current = next;
    }
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `certificates` fuzz target: an empty or blank PEM file
    /// made x509-cert's chain loader overflow.
    #[test]
    fn a_blank_pem_bundle_is_refused_without_a_panic() {
        for blank in [&b""[..], b"\n", b"\r\n\r\n", b"  \n"] {
            let err = Certificate::from_pem_bundle(blank).map(|_| ()).unwrap_err();
            assert_eq!(
                err.to_string(),
                ChainError::Malformed("no CERTIFICATE block found".into()).to_string()
            );
        }
    }
}
