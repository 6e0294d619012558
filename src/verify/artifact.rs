//! `verify-bundle`: Sigstore's conformance protocol for one artifact. It
//! verifies any Sigstore bundle (message signature or DSSE) over a file or a
//! `sha256:<hex>` digest, by a managed key or by a keyless identity, offline
//! against a trusted root.

use std::path::Path;

use sigstore_trust_root::TrustedRoot;
use sigstore_types::{Bundle, DerPublicKey, Sha256Hash};
use sigstore_verify::{
    PublicKeyVerificationPolicy, VerificationPolicy, VerificationResult, Verifier,
};

use crate::trust::sigstore::{Identity, Matcher};

/// What was signed: a file, or its SHA-256.
#[derive(Clone, Debug)]
pub enum Artifact<'a> {
    /// A file, read in constant memory.
    File(&'a Path),
    /// A digest given as `sha256:<hex>`.
    Digest(Sha256Hash),
}

/// An artifact argument that starts with `sha256:` but is not a SHA-256
/// digest.
#[derive(Debug, thiserror::Error)]
#[error("{arg}: not a SHA-256 digest: {source}")]
pub struct NotADigest {
    /// The argument.
    pub arg: String,
    /// What is wrong with its hex.
    pub source: sigstore_types::Error,
}

impl<'a> Artifact<'a> {
    /// `sha256:<64 hex>` is a digest; anything else is a path.
    pub fn parse(arg: &'a str) -> Result<Self, NotADigest> {
        // Not `model::Digest::parse`: a malformed digest is refused with
        // what is wrong with its hex, as sigstore-types says it.
        match arg.strip_prefix("sha256:") {
            Some(hex) => Sha256Hash::from_hex(hex)
                .map(Self::Digest)
                .map_err(|source| NotADigest {
                    arg: arg.to_string(),
                    source,
                }),
            None => Ok(Self::File(Path::new(arg))),
        }
    }
}

/// Who must have signed.
pub enum Signer<'a> {
    /// A managed key (PEM SubjectPublicKeyInfo). Log entries in the bundle
    /// are verified against the root; with `require_tlog` there must be at
    /// least one.
    Key {
        /// The key.
        pem: &'a str,
        /// Whether transparency-log evidence is required.
        require_tlog: bool,
    },
    /// A keyless identity and OIDC issuer.
    Identity(&'a Identity),
}

/// Why `verify-bundle` did not accept.
#[derive(Debug, thiserror::Error)]
pub enum BundleCheckError {
    /// The inputs could not be used (exit 2).
    #[error("{0}")]
    Unusable(String),
    /// The bundle does not verify (exit 1).
    #[error("{0}")]
    Rejected(String),
}

/// Verifies `bundle_json` over `artifact` for `signer`, against `root`.
pub fn verify_bundle(
    bundle_json: &str,
    artifact: &Artifact<'_>,
    signer: &Signer<'_>,
    root: &TrustedRoot,
) -> Result<VerificationResult, BundleCheckError> {
    let reject = |e: String| BundleCheckError::Rejected(e);
    let bundle = Bundle::from_json(bundle_json)
        .map_err(|e| reject(format!("not a valid Sigstore bundle: {e}")))?;
    let verifier = Verifier::new(root)
        .map_err(|e| BundleCheckError::Unusable(format!("trusted root: {e}")))?;
    let result = match signer {
        Signer::Key { pem, require_tlog } => {
            let key = DerPublicKey::from_pem(pem)
                .map_err(|e| BundleCheckError::Unusable(format!("public key: {e}")))?;
            if *require_tlog && bundle.verification_material.tlog_entries.is_empty() {
                return Err(reject(super::tlog::NO_ENTRIES.into()));
            }
            run(
                &verifier,
                artifact,
                &bundle,
                &PublicKeyVerificationPolicy::new(key),
            )?
        }
        Signer::Identity(identity) => {
            let result = run(
                &verifier,
                artifact,
                &bundle,
                &VerificationPolicy::any_identity(),
            )?;
            check_identity(&result, std::slice::from_ref(*identity))
                .map_err(|e| reject(e.to_string()))?;
            result
        }
    };
    super::tlog::check_log_key_validity(root, &bundle, &result)
        .map_err(|e| reject(e.to_string()))?;
    Ok(result)
}

fn run(
    verifier: &Verifier,
    artifact: &Artifact<'_>,
    bundle: &Bundle,
    policy: &dyn sigstore_verify::Policy,
) -> Result<VerificationResult, BundleCheckError> {
    let outcome = match artifact {
        Artifact::Digest(d) => verifier.verify(*d, bundle, policy),
        Artifact::File(path) => {
            let file = std::fs::File::open(path).map_err(|e| {
                BundleCheckError::Unusable(format!("cannot read {}: {e}", path.display()))
            })?;
            verifier.verify_reader(std::io::BufReader::new(file), bundle, policy)
        }
    };
    outcome.map_err(|e| BundleCheckError::Rejected(format!("Sigstore verification failed: {e}")))
}

/// A verified certificate whose identity or issuer is not a trusted one.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The one trusted identity is another.
    #[error(
        "the certificate identity is {found:?}, but the trusted identity is {trusted}; verify with the signer's identity"
    )]
    Subject {
        /// The certificate's identity.
        found: String,
        /// The trusted identity.
        trusted: Matcher,
    },
    /// The one trusted identity is from another issuer.
    #[error("the certificate's OIDC issuer is {found:?}, but the trusted issuer is {trusted}")]
    Issuer {
        /// The certificate's issuer.
        found: String,
        /// The trusted issuer.
        trusted: Matcher,
    },
    /// None of several trusted identities.
    #[error(
        "the certificate identity {identity:?} from {issuer:?} is none of the trusted identities: {}",
        .trusted.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    NoneOf {
        /// The certificate's identity.
        identity: String,
        /// The certificate's issuer.
        issuer: String,
        /// The trusted identities.
        trusted: Vec<Identity>,
    },
}

/// Requires the verified certificate's identity and issuer to match one of
/// `accepted`; returns them.
pub fn check_identity(
    result: &VerificationResult,
    accepted: &[Identity],
) -> Result<(String, String), IdentityError> {
    let found_identity = result
        .identity()
        .map(|san| san.as_str().to_string())
        .unwrap_or_default();
    let found_issuer = result.issuer().unwrap_or_default().to_string();
    if accepted
        .iter()
        .any(|id| id.subject.matches(&found_identity) && id.issuer.matches(&found_issuer))
    {
        return Ok((found_identity, found_issuer));
    }
    Err(match accepted {
        [one] if !one.subject.matches(&found_identity) => IdentityError::Subject {
            found: found_identity,
            trusted: one.subject.clone(),
        },
        [one] => IdentityError::Issuer {
            found: found_issuer,
            trusted: one.issuer.clone(),
        },
        _ => IdentityError::NoneOf {
            identity: found_identity,
            issuer: found_issuer,
            trusted: accepted.to_vec(),
        },
    })
}
