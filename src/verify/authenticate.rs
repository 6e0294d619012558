//! Deciding who signed a bundle, against the trusted material: the key
//! method (a trusted public key) and the certificate method (a signing
//! certificate that chains to a trusted anchor).
//!
//! Returns a [`Signer`] only when the DSSE signature over the exact payload
//! verified with a key the trusted material vouches for.

use std::time::SystemTime;

use subtle::ConstantTimeEq;

use std::cell::OnceCell;

use super::artifact::IdentityError;
use super::tlog::{self, LogEvidence, TlogError};
use crate::model::Digest;
use crate::oms::bundle::{Bundle, BundleError, SignedPayload};
use crate::oms::legacy::{self, LEGACY_PREDICATE_TYPE, RE_SIGN_ADVICE};
use crate::trust::sigstore::Keyless;
use crate::trust::{Certificate, ChainError, Curve, PublicKey, TrustedMaterial, chain};

/// Who signed, and how that signer was trusted.
#[derive(Clone, Debug)]
pub enum Signer {
    /// A trusted public key.
    Key {
        /// SHA-256 of the key's PEM.
        key_fingerprint: Digest,
        /// The key's curve.
        curve: Curve,
        /// The verified transparency-log evidence, when it was required.
        transparency: Option<LogEvidence>,
    },
    /// A signing certificate that chained to a trusted anchor.
    Certificate(CertificateSigner),
    /// A Sigstore keyless signer: a Fulcio certificate for an identity,
    /// logged in Rekor.
    Sigstore(SigstoreSigner),
}

/// The identity of a keyless signer and the log entry that vouches for it.
#[derive(Clone, Debug)]
pub struct SigstoreSigner {
    /// The certificate's subject alternative name (email, URI).
    pub identity: String,
    /// The OIDC issuer from the certificate's Fulcio extension.
    pub issuer: String,
    /// SHA-256 of the signing certificate's DER, when the bundle has one.
    pub certificate_fingerprint: Option<Digest>,
    /// The log entry and the signing times it establishes.
    pub log: LogEvidence,
}

impl Signer {
    /// One line for logs: the key fingerprint, or the certificate subject and anchor.
    pub fn describe(&self) -> String {
        match self {
            Self::Key {
                key_fingerprint,
                transparency,
                ..
            } => match transparency.as_ref().and_then(|t| t.log_index) {
                Some(index) => format!("key {key_fingerprint} (logged, log index {index})"),
                None => format!("key {key_fingerprint}"),
            },
            Self::Certificate(c) => format!(
                "certificate {} (chained to {})",
                c.subject, c.anchor_subject
            ),
            Self::Sigstore(k) => format!(
                "sigstore {} from {} (rekor log index {})",
                k.identity,
                k.issuer,
                k.log
                    .log_index
                    .map_or_else(|| "unknown".into(), |i| i.to_string())
            ),
        }
    }
}

/// The identity of a certificate signer, as recorded in a measurement.
#[derive(Clone, Debug)]
pub struct CertificateSigner {
    /// Leaf subject (RFC 4514).
    pub subject: String,
    /// Leaf issuer (RFC 4514).
    pub issuer: String,
    /// Leaf subject alternative names.
    pub subject_alt_names: Vec<String>,
    /// Leaf serial number, hex.
    pub serial: String,
    /// SHA-256 of the leaf's DER.
    pub fingerprint: Digest,
    /// The leaf key's curve.
    pub curve: Curve,
    /// Subject of the trusted anchor the chain ended at.
    pub anchor_subject: String,
    /// SHA-256 of the anchor's DER.
    pub anchor_fingerprint: Digest,
}

/// A signer, and whether the signature was over model_signing 0.2's
/// encoding rather than the DSSE PAE (accepted only when allowed).
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// Who signed.
    pub signer: Signer,
    /// The signature verified over the pre-1.0 encoding ([`legacy::legacy_pae`]).
    pub legacy_encoding: bool,
}

/// The signed bytes: the DSSE PAE, and the pre-1.0 encoding, computed only
/// if the PAE does not verify.
struct Message<'a> {
    pae: &'a [u8],
    payload: &'a [u8],
    legacy: OnceCell<Vec<u8>>,
}

impl Message<'_> {
    fn legacy(&self) -> &[u8] {
        self.legacy.get_or_init(|| legacy::legacy_pae(self.payload))
    }
}

/// Why a bundle's signature is not accepted by the trusted material.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A genuine signature over model_signing 0.2's encoding, which is not
    /// allowed.
    #[error(
        "the DSSE signature verifies with {by}, but over the pre-1.0 encoding that model_signing 0.2 wrote (a bug of that release), not the DSSE PAE; nothing was altered, but that format is not accepted by default: {}",
        RE_SIGN_ADVICE
    )]
    LegacyEncoding {
        /// The key it verifies with.
        by: VerifiedBy,
    },
    /// The bundle names a key (its hint) that is not a trusted one.
    #[error(
        "it was made by the key with fingerprint {hint}, but the trusted key is {}; verify with the signer's public key",
        .trusted.join(", ")
    )]
    OtherKey {
        /// The bundle's `publicKey.hint`.
        hint: String,
        /// The trusted keys' fingerprints (hex).
        trusted: Vec<String>,
    },
    /// No trusted key verifies the signature.
    #[error(
        "the DSSE signature does not verify with the trusted key {}; the signature or its payload was altered, or another key signed it",
        .trusted.join(", ")
    )]
    KeySignature {
        /// The trusted keys' fingerprints (hex).
        trusted: Vec<String>,
    },
    /// The bundle's certificate material cannot be read.
    #[error(transparent)]
    Bundle(BundleError),
    /// The bundle has no certificate chain.
    #[error(
        "the bundle carries no certificate chain (it is signed with a bare key: verify with --key)"
    )]
    NoCertificateChain,
    /// A certificate of the bundle's chain does not parse.
    #[error("the bundle's certificate chain: {0}")]
    CertificateChain(ChainError),
    /// The chain does not validate to a trusted anchor.
    #[error("{0}")]
    Chain(ChainError),
    /// The leaf has expired, and expired leaves are not allowed.
    #[error("{0} (--allow-expired-certificate accepts a leaf that was valid when issued)")]
    ExpiredLeaf(ChainError),
    /// The leaf's key cannot be used.
    #[error("{0}")]
    LeafKey(ChainError),
    /// The leaf's key does not verify the signature.
    #[error(
        "the DSSE signature does not verify with the key of certificate {subject}; the signature or its payload was altered"
    )]
    CertificateSignature {
        /// The leaf's subject.
        subject: String,
    },
    /// The bundle is not UTF-8.
    #[error("the bundle is not UTF-8 JSON")]
    NotUtf8,
    /// The bundle does not parse as a Sigstore bundle.
    #[error("not a valid Sigstore bundle: {0}")]
    SigstoreBundle(sigstore_types::Error),
    /// The statement's subject digest is not a SHA-256 digest.
    #[error("subject digest: {0}")]
    SubjectDigest(sigstore_types::Error),
    /// The trusted root cannot be used.
    #[error("trusted root: {0}")]
    TrustedRoot(Box<sigstore_verify::Error>),
    /// The keyless signature does not verify.
    #[error("Sigstore verification failed: {0}")]
    Sigstore(Box<sigstore_verify::Error>),
    /// The keyless signer is not a trusted identity.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The transparency-log evidence is not accepted.
    #[error(transparent)]
    Tlog(#[from] TlogError),
    /// The payload is not an in-toto statement.
    #[error("the signed payload is not an in-toto statement: {0}")]
    NotStatement(serde_json::Error),
    /// A pre-1.0 statement, which is not allowed.
    #[error(
        "the signature is in the pre-1.0 format that model_signing 0.2 wrote (predicate {}); nothing was altered, but that format is not accepted by default: {}",
        LEGACY_PREDICATE_TYPE,
        RE_SIGN_ADVICE
    )]
    LegacyFormat,
    /// A pre-1.0 statement whose first subject has no sha256 digest.
    #[error("the statement's first subject has no sha256 digest")]
    NoFirstSubjectDigest,
    /// The statement's subject has no sha256 digest.
    #[error("the statement's subject has no sha256 digest")]
    NoSubjectDigest,
    /// Not exactly one subject.
    #[error("expected exactly one subject, found {found}")]
    Subjects {
        /// How many subjects the statement has.
        found: usize,
    },
}

/// The key a pre-1.0 signature verifies with.
#[derive(Debug)]
pub enum VerifiedBy {
    /// A trusted key (its hex fingerprint).
    Key(String),
    /// The key of a certificate (its subject).
    Certificate(String),
}

impl std::fmt::Display for VerifiedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(fingerprint) => write!(f, "the trusted key {fingerprint}"),
            Self::Certificate(subject) => write!(f, "the key of certificate {subject}"),
        }
    }
}

/// Checks the signature of `signed` (whose PAE is `pae`) against `trust`.
/// `bundle_json` is the bundle file's text, which the Sigstore verifier
/// parses for itself. With `allow_legacy`, a signature over model_signing
/// 0.2's encoding verifies as the reference verifies it: by key with the
/// curve's hash, by certificate with SHA-256.
pub fn authenticate(
    trust: &TrustedMaterial,
    bundle_json: &[u8],
    bundle: &Bundle,
    signed: &SignedPayload,
    pae: &[u8],
    allow_legacy: bool,
) -> Result<Authenticated, SignatureError> {
    let message = Message {
        pae,
        payload: &signed.payload,
        legacy: OnceCell::new(),
    };
    let modern = |signer| Authenticated {
        signer,
        legacy_encoding: false,
    };
    match trust {
        TrustedMaterial::Sigstore(keyless) => {
            by_sigstore(keyless, bundle_json, bundle, signed, allow_legacy).map(modern)
        }
        TrustedMaterial::Keys { keys, transparency } => {
            let (key, legacy_encoding) =
                by_key(keys, bundle, &message, &signed.signature, allow_legacy)?;
            // With a trusted root for the key, the bundle's log entries must
            // verify against it, for this signature, key and statement.
            let transparency = match transparency {
                None => None,
                Some(root) => {
                    let subject = subject_digest(&signed.payload, allow_legacy)?;
                    Some(tlog::verify_key_evidence(root, bundle_json, key, &subject)?)
                }
            };
            Ok(Authenticated {
                signer: Signer::Key {
                    key_fingerprint: key.digest(),
                    curve: key.curve(),
                    transparency,
                },
                legacy_encoding,
            })
        }
        TrustedMaterial::Certificates {
            anchors,
            allow_expired,
        } => by_certificate(
            anchors,
            *allow_expired,
            bundle,
            &message,
            &signed.signature,
            allow_legacy,
        ),
    }
}

/// The trusted key whose signature verifies, and whether it verified over
/// the pre-1.0 encoding.
fn by_key<'k>(
    keys: &'k [PublicKey],
    bundle: &Bundle,
    message: &Message<'_>,
    signature: &[u8],
    allow_legacy: bool,
) -> Result<(&'k PublicKey, bool), SignatureError> {
    let hint = bundle
        .verification_material
        .public_key
        .as_ref()
        .and_then(|k| k.hint.as_deref())
        .filter(|h| !h.is_empty());
    let candidates = || {
        keys.iter().filter(|k| {
            hint.is_none_or(|h| bool::from(h.as_bytes().ct_eq(k.fingerprint().as_bytes())))
        })
    };
    if let Some(key) = candidates().find(|k| k.verify(message.pae, signature)) {
        return Ok((key, false));
    }
    // The reference's pre-1.0 path: the same key, the curve's hash, over
    // the legacy encoding.
    if let Some(key) = candidates().find(|k| k.verify(message.legacy(), signature)) {
        if !allow_legacy {
            return Err(SignatureError::LegacyEncoding {
                by: VerifiedBy::Key(key.fingerprint()),
            });
        }
        return Ok((key, true));
    }
    let trusted: Vec<String> = keys.iter().map(PublicKey::fingerprint).collect();
    Err(match hint {
        Some(h) if !trusted.iter().any(|g| g == h) => SignatureError::OtherKey {
            hint: h.to_string(),
            trusted,
        },
        _ => SignatureError::KeySignature { trusted },
    })
}

fn by_certificate(
    anchors: &[Certificate],
    allow_expired: bool,
    bundle: &Bundle,
    message: &Message<'_>,
    signature: &[u8],
    allow_legacy: bool,
) -> Result<Authenticated, SignatureError> {
    let chain = bundle
        .certificate_chain()
        .map_err(SignatureError::Bundle)?
        .ok_or(SignatureError::NoCertificateChain)?;
    let certs = chain
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SignatureError::CertificateChain)?;
    let (leaf, intermediates) = certs.split_first().ok_or_else(|| {
        SignatureError::Bundle(BundleError::Malformed("empty certificate chain".into()))
    })?;
    // Stricter than the reference: the leaf must be valid now, unless the
    // operator opts into the reference's behaviour (valid when it was issued).
    let at = if allow_expired {
        leaf.validity().0
    } else {
        SystemTime::now()
    };
    let validated = chain::validate(leaf, intermediates, anchors, at).map_err(|e| {
        if matches!(e, ChainError::Expired { .. }) && !allow_expired {
            SignatureError::ExpiredLeaf(e)
        } else {
            SignatureError::Chain(e)
        }
    })?;
    let key = validated
        .leaf
        .signing_key()
        .map_err(SignatureError::LeafKey)?;
    let legacy_encoding = if key.verify(message.pae, signature) {
        false
    } else if key.verify_sha256(message.legacy(), signature) {
        // model_signing 0.2 signed with SHA-256 whatever the curve; the
        // reference verifies those signatures the same way.
        if !allow_legacy {
            return Err(SignatureError::LegacyEncoding {
                by: VerifiedBy::Certificate(validated.leaf.subject()),
            });
        }
        true
    } else {
        return Err(SignatureError::CertificateSignature {
            subject: validated.leaf.subject(),
        });
    };
    let signer = Signer::Certificate(CertificateSigner {
        subject: validated.leaf.subject(),
        issuer: validated.leaf.issuer(),
        subject_alt_names: validated.leaf.subject_alt_names(),
        serial: validated.leaf.serial(),
        fingerprint: validated.leaf.digest(),
        curve: key.curve(),
        anchor_subject: validated.anchor.subject(),
        anchor_fingerprint: validated.anchor.digest(),
    });
    Ok(Authenticated {
        signer,
        legacy_encoding,
    })
}

/// Verifies a keyless bundle with sigstore-verify (Fulcio chain to the
/// trusted root, SCT, transparency-log inclusion proof and checkpoint or
/// signed entry timestamp, RFC 3161 timestamps, certificate validity at the
/// signing time, entry consistency with the bundle, and the DSSE signature),
/// then requires the identity and issuer.
fn by_sigstore(
    keyless: &Keyless,
    bundle_json: &[u8],
    bundle: &Bundle,
    signed: &SignedPayload,
    allow_legacy: bool,
) -> Result<Signer, SignatureError> {
    use sigstore_verify::{VerificationPolicy, Verifier};
    let text = std::str::from_utf8(bundle_json).map_err(|_| SignatureError::NotUtf8)?;
    let parsed = sigstore_types::Bundle::from_json(text).map_err(SignatureError::SigstoreBundle)?;
    // The verifier checks that the artifact digest is a subject of the signed
    // statement; the model's root digest is that subject. It is read here from
    // the payload before the signature is checked, and is only trusted once
    // verify() below has checked the signature over the whole payload.
    let subject = subject_digest(&signed.payload, allow_legacy)?;
    let digest =
        sigstore_types::Sha256Hash::from_hex(&subject).map_err(SignatureError::SubjectDigest)?;
    let verifier =
        Verifier::new(&keyless.root).map_err(|e| SignatureError::TrustedRoot(Box::new(e)))?;
    let result = verifier
        .verify(digest, &parsed, &VerificationPolicy::any_identity())
        .map_err(|e| SignatureError::Sigstore(Box::new(e)))?;
    let (identity, issuer) = super::artifact::check_identity(&result, &keyless.identities)?;
    tlog::check_log_key_validity(&keyless.root, &parsed, &result)?;
    Ok(Signer::Sigstore(SigstoreSigner {
        identity,
        issuer,
        certificate_fingerprint: bundle.leaf_certificate().map(|der| Digest::of(&der)),
        log: LogEvidence::from_result(&parsed, &result),
    }))
}

/// The statement's one sha256 subject digest, from the (not yet trusted)
/// payload. A pre-1.0 statement has a subject per file: any of them binds the
/// signature to the statement, so the first is used when the old format is
/// allowed.
fn subject_digest(payload: &[u8], allow_legacy: bool) -> Result<String, SignatureError> {
    #[derive(serde::Deserialize)]
    struct Statement {
        subject: Vec<Subject>,
        #[serde(rename = "predicateType", default)]
        predicate_type: String,
    }
    #[derive(serde::Deserialize)]
    struct Subject {
        digest: std::collections::BTreeMap<String, String>,
    }
    let statement: Statement =
        serde_json::from_slice(payload).map_err(SignatureError::NotStatement)?;
    let legacy = statement.predicate_type == LEGACY_PREDICATE_TYPE;
    if legacy && !allow_legacy {
        return Err(SignatureError::LegacyFormat);
    }
    match statement.subject.as_slice() {
        [first, ..] if legacy => first
            .digest
            .get("sha256")
            .cloned()
            .ok_or(SignatureError::NoFirstSubjectDigest),
        [one] => one
            .digest
            .get("sha256")
            .cloned()
            .ok_or(SignatureError::NoSubjectDigest),
        other => Err(SignatureError::Subjects { found: other.len() }),
    }
}
