//! ECDSA public keys for verifying, private keys for signing, on the curves
//! the format allows (P-256, P-384, P-521).
//!
//! The hash that goes with each curve is fixed by the format (and matches the
//! reference): P-256 with SHA-256, P-384 with SHA-384, P-521 with SHA-512.
//! Signatures are DER-encoded.
//!
//! ECDSA comes from RustCrypto's `p256`/`p384`/`p521` rather than `ring`: ring
//! has no P-521, and one implementation for all three curves keeps the key
//! parsing (SEC1 and PKCS#8 PEM) and the signing path identical.

use std::fmt;

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};

use crate::model::{Digest, hashing};

/// A curve the format supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 with SHA-256.
    P256,
    /// NIST P-384 with SHA-384.
    P384,
    /// NIST P-521 with SHA-512.
    P521,
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        })
    }
}

/// Why key material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM is not an EC key on a supported curve.
    #[error("{0}")]
    Unsupported(String),
}

/// An ECDSA public key that signatures are checked against.
#[derive(Clone)]
pub enum PublicKey {
    /// P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// P-521.
    P521(p521::ecdsa::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.curve(), self.digest())
    }
}

impl PublicKey {
    /// Parses a `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let not_spki = || {
            KeyError::Unsupported(
                "not a PEM SubjectPublicKeyInfo EC key on P-256, P-384 or P-521".into(),
            )
        };
        let (label, der) = p256::pkcs8::der::Document::from_pem(pem).map_err(|_| not_spki())?;
        if label != "PUBLIC KEY" {
            return Err(not_spki());
        }
        Self::from_spki_der(der.as_bytes()).map_err(|_| not_spki())
    }

    /// Parses a DER SubjectPublicKeyInfo (from a certificate).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            return Ok(Self::P256(k.into()));
        }
        if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
            return Ok(Self::P384(k.into()));
        }
        if let Ok(k) = p521::PublicKey::from_public_key_der(der) {
            let key = p521::ecdsa::VerifyingKey::from_affine(*k.as_affine())
                .map_err(|e| KeyError::Unsupported(format!("invalid P-521 public key: {e}")))?;
            return Ok(Self::P521(key));
        }
        Err(KeyError::Unsupported(
            "the key is not an EC key on P-256, P-384 or P-521".into(),
        ))
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self {
            Self::P256(_) => Curve::P256,
            Self::P384(_) => Curve::P384,
            Self::P521(_) => Curve::P521,
        }
    }

    /// The key in canonical PEM (SPKI, LF line endings, 64 columns), the
    /// bytes the reference hashes for the bundle's key hint.
    pub fn to_pem(&self) -> String {
        let pem = match self {
            Self::P256(k) => p256::PublicKey::from(k).to_public_key_pem(LineEnding::LF),
            Self::P384(k) => p384::PublicKey::from(k).to_public_key_pem(LineEnding::LF),
            Self::P521(k) => p521::PublicKey::from_affine(*k.as_affine())
                .map_err(|_| p256::pkcs8::spki::Error::KeyMalformed)
                .and_then(|p| p.to_public_key_pem(LineEnding::LF)),
        };
        // Encoding a key that was decoded from valid SPKI cannot fail.
        pem.unwrap_or_default()
    }

    /// SHA-256 of [`Self::to_pem`]: the key fingerprint recorded in
    /// measurements.
    pub fn digest(&self) -> Digest {
        Digest::of(self.to_pem().as_bytes())
    }

    /// Hex SHA-256 of [`Self::to_pem`] (without `sha256:`): the bundle's
    /// `publicKey.hint`.
    pub fn fingerprint(&self) -> String {
        hex::encode(self.digest().0)
    }

    /// Checks a DER ECDSA signature over `message` with the curve's hash.
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> bool {
        match self {
            Self::P256(k) => p256::ecdsa::DerSignature::try_from(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            Self::P384(k) => p384::ecdsa::DerSignature::try_from(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            Self::P521(k) => p521::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
        }
    }

    /// Checks a DER ECDSA signature over `message` hashed with SHA-256,
    /// whatever the curve: how model_signing 0.2 signed with certificates
    /// (only for `--allow-legacy-format`). P-521 cannot take a 256-bit
    /// digest here and never verifies.
    pub fn verify_sha256(&self, message: &[u8], der_signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        let digest = hashing::sha256(message);
        match self {
            Self::P256(k) => p256::ecdsa::DerSignature::try_from(der_signature)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            Self::P384(k) => p384::ecdsa::DerSignature::try_from(der_signature)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            Self::P521(k) => p521::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
        }
    }
}

/// An ECDSA private key used by `attest`.
pub enum PrivateKey {
    /// P-256.
    P256(p256::ecdsa::SigningKey),
    /// P-384.
    P384(p384::ecdsa::SigningKey),
    /// P-521.
    P521(p521::ecdsa::SigningKey),
}

impl PrivateKey {
    /// Parses an unencrypted `EC PRIVATE KEY` (SEC1) or `PRIVATE KEY` (PKCS#8) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if pem.contains("ENCRYPTED") {
            return Err(KeyError::Unsupported(
                "encrypted private keys are not supported; decrypt it to a file only the signer can read".into(),
            ));
        }
        if let Ok(k) =
            p256::SecretKey::from_sec1_pem(pem).or_else(|_| p256::SecretKey::from_pkcs8_pem(pem))
        {
            return Ok(Self::P256(k.into()));
        }
        if let Ok(k) =
            p384::SecretKey::from_sec1_pem(pem).or_else(|_| p384::SecretKey::from_pkcs8_pem(pem))
        {
            return Ok(Self::P384(k.into()));
        }
        if let Ok(k) =
            p521::SecretKey::from_sec1_pem(pem).or_else(|_| p521::SecretKey::from_pkcs8_pem(pem))
        {
            let key = p521::ecdsa::SigningKey::from_bytes(&k.to_bytes())
                .map_err(|e| KeyError::Unsupported(format!("invalid P-521 private key: {e}")))?;
            return Ok(Self::P521(key));
        }
        Err(KeyError::Unsupported(
            "not an unencrypted SEC1 or PKCS#8 PEM EC private key on P-256, P-384 or P-521".into(),
        ))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::P256(k) => PublicKey::P256(*k.verifying_key()),
            Self::P384(k) => PublicKey::P384(*k.verifying_key()),
            Self::P521(k) => PublicKey::P521(p521::ecdsa::VerifyingKey::from(k)),
        }
    }

    /// Signs `message` (RFC 6979 deterministic nonces) and returns DER.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
            Self::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
            Self::P521(k) => {
                let s: p521::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
        }
    }
}
