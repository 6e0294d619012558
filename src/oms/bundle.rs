//! The Sigstore bundle that carries a model signature, and its DSSE envelope.
//!
//! This module only decodes and encodes: it says nothing about whether a
//! signature is trusted (that is `trust` and, a layer up, `verify`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bundle media type the reference writes.
pub const BUNDLE_MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Bundle media types this version reads: v0.3 in both spellings, and the
/// older v0.1/v0.2 ones, which differ only in keyless verification material.
const KNOWN_MEDIA_TYPES: [&str; 4] = [
    BUNDLE_MEDIA_TYPE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];
/// DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A Sigstore bundle, as far as model signatures use it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// The bundle format version.
    pub media_type: String,
    /// Key hint, certificates and transparency-log entries.
    pub verification_material: VerificationMaterial,
    /// The signed envelope; model signatures always use DSSE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
    /// A plain message signature (not used by model signatures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<Value>,
}

/// What a verifier needs besides the signature itself.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// Identifies the public key for key-signed bundles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    /// A certificate chain, leaf first (certificate method).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<CertificateChain>,
    /// A single leaf certificate (Sigstore keyless, bundle v0.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Value>,
    /// Transparency-log entries; empty for key-signed models.
    #[serde(default)]
    pub tlog_entries: Vec<Value>,
    /// RFC 3161 timestamps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<Value>,
}

/// `verificationMaterial.publicKey`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyIdentifier {
    /// Hex SHA-256 of the signer's public key in PEM form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Legacy key bytes written by pre-1.0 signers. Read and ignored: trust
    /// comes from the key the verifier is given, never from the bundle.
    #[serde(default, skip_serializing)]
    pub raw_bytes: Option<Value>,
}

/// `verificationMaterial.x509CertificateChain`.
#[derive(Debug, Deserialize, Serialize)]
pub struct CertificateChain {
    /// Leaf first, then the intermediates (and possibly the root).
    pub certificates: Vec<X509Certificate>,
}

/// One certificate of a chain.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Certificate {
    /// Base64 of the DER encoding.
    pub raw_bytes: String,
}

/// A DSSE envelope.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the payload bytes.
    pub payload: String,
    /// What the payload is.
    pub payload_type: String,
    /// Signatures over the PAE of type and payload.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Debug, Deserialize, Serialize)]
pub struct EnvelopeSignature {
    /// Base64 of the DER-encoded ECDSA signature.
    pub sig: String,
    /// Optional key id; empty or absent in model signatures.
    #[serde(default)]
    pub keyid: Option<String>,
}

/// Why a signature file is not a usable bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not JSON, or not shaped like a bundle.
    #[error("the signature is not a valid Sigstore bundle: {0}")]
    Malformed(String),
    /// A bundle, but not of a kind a model signature uses.
    #[error("the signature bundle is unsupported: {0}")]
    Unsupported(String),
}

/// The parts of a DSSE envelope a verifier checks, decoded.
#[derive(Debug)]
pub struct SignedPayload {
    /// The payload type string.
    pub payload_type: String,
    /// The exact payload bytes that were signed.
    pub payload: Vec<u8>,
    /// The one signature, DER bytes.
    pub signature: Vec<u8>,
}

impl Bundle {
    /// Parses a bundle from the signature file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        let bundle: Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if !KNOWN_MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
            return Err(BundleError::Unsupported(format!(
                "media type {:?}",
                bundle.media_type
            )));
        }
        Ok(bundle)
    }

    /// Decodes the DSSE envelope. Model signatures carry exactly one signature
    /// (as Sigstore bundles require); anything else is refused, not guessed at.
    pub fn signed_payload(&self) -> Result<SignedPayload, BundleError> {
        let envelope = self.dsse_envelope.as_ref().ok_or_else(|| {
            BundleError::Unsupported("it holds no DSSE envelope (model signatures are DSSE)".into())
        })?;
        let [signature] = envelope.signatures.as_slice() else {
            return Err(BundleError::Unsupported(format!(
                "the DSSE envelope holds {} signatures, expected exactly one",
                envelope.signatures.len()
            )));
        };
        Ok(SignedPayload {
            payload_type: envelope.payload_type.clone(),
            payload: decode_base64(&envelope.payload)
                .ok_or_else(|| BundleError::Malformed("DSSE payload is not base64".into()))?,
            signature: decode_base64(&signature.sig)
                .ok_or_else(|| BundleError::Malformed("DSSE signature is not base64".into()))?,
        })
    }

    /// The certificate chain's DER certificates, leaf first, if the bundle
    /// has one (the certificate method).
    pub fn certificate_chain(&self) -> Result<Option<Vec<Vec<u8>>>, BundleError> {
        let Some(chain) = &self.verification_material.x509_certificate_chain else {
            return Ok(None);
        };
        chain
            .certificates
            .iter()
            .map(|c| {
                decode_base64(&c.raw_bytes).ok_or_else(|| {
                    BundleError::Malformed("a chain certificate is not base64".into())
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The DER of the signing certificate: the v0.3 `certificate`, or the
    /// first of an `x509CertificateChain`.
    pub fn leaf_certificate(&self) -> Option<Vec<u8>> {
        let m = &self.verification_material;
        let raw = m
            .certificate
            .as_ref()
            .and_then(|c| c.get("rawBytes"))
            .and_then(Value::as_str)
            .or_else(|| {
                m.x509_certificate_chain
                    .as_ref()?
                    .certificates
                    .first()
                    .map(|c| c.raw_bytes.as_str())
            })?;
        decode_base64(raw)
    }

    /// A key-signed bundle as the reference writes it.
    pub fn for_key(hint: String, payload: &[u8], signature: &[u8]) -> Self {
        let material = VerificationMaterial {
            public_key: Some(PublicKeyIdentifier {
                hint: Some(hint),
                raw_bytes: None,
            }),
            ..VerificationMaterial::empty()
        };
        Self::with_material(material, payload, signature)
    }

    /// A certificate-signed bundle as the reference writes it: the signing
    /// certificate, then the rest of the chain, as DER.
    pub fn for_certificates(chain: &[Vec<u8>], payload: &[u8], signature: &[u8]) -> Self {
        let certificates = chain
            .iter()
            .map(|der| X509Certificate {
                raw_bytes: STANDARD.encode(der),
            })
            .collect();
        let material = VerificationMaterial {
            x509_certificate_chain: Some(CertificateChain { certificates }),
            ..VerificationMaterial::empty()
        };
        Self::with_material(material, payload, signature)
    }

    fn with_material(
        verification_material: VerificationMaterial,
        payload: &[u8],
        signature: &[u8],
    ) -> Self {
        Self {
            media_type: BUNDLE_MEDIA_TYPE_V03.into(),
            verification_material,
            dsse_envelope: Some(Envelope {
                payload: STANDARD.encode(payload),
                payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
                signatures: vec![EnvelopeSignature {
                    sig: STANDARD.encode(signature),
                    keyid: Some(String::new()),
                }],
            }),
            message_signature: None,
        }
    }
}

impl VerificationMaterial {
    fn empty() -> Self {
        Self {
            public_key: None,
            x509_certificate_chain: None,
            certificate: None,
            tlog_entries: Vec::new(),
            timestamp_verification_data: None,
        }
    }
}

/// DSSE allows standard or URL-safe base64, padded or not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .ok()
}

/// DSSE's pre-authentication encoding: what is actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn garbage_and_foreign_bundles_are_refused() {
        assert!(matches!(
            Bundle::from_json(b"{not json"),
            Err(BundleError::Malformed(_))
        ));
        let other = br#"{"mediaType":"application/x-other","verificationMaterial":{}}"#;
        assert!(matches!(
            Bundle::from_json(other),
            Err(BundleError::Unsupported(_))
        ));
    }

    #[test]
    fn envelope_with_two_signatures_is_refused() {
        let mut b = Bundle::for_key("h".into(), b"{}", b"sig");
        if let Some(env) = b.dsse_envelope.as_mut() {
            env.signatures.push(EnvelopeSignature {
                sig: "c2ln".into(),
                keyid: None,
            });
        }
        assert!(matches!(
            b.signed_payload(),
            Err(BundleError::Unsupported(_))
        ));
    }

    #[test]
    fn base64_variants_decode() {
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert_eq!(decode_base64("-_8").unwrap(), [0xfb, 0xff]);
        assert!(decode_base64("!!!").is_none());
    }
}
