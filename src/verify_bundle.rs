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

use crate::trust::sigstore::Matcher;

/// What was signed: a file, or its SHA-256.
#[derive(Clone, Debug)]
pub enum Artifact<'a> {
    /// A file, read in constant memory.
    File(&'a Path),
    /// A digest given as `sha256:<hex>`.
    Digest(Sha256Hash),
}

impl<'a> Artifact<'a> {
    /// `sha256:<64 hex>` is a digest; anything else is a path.
    pub fn parse(arg: &'a str) -> Result<Self, String> {
        match arg.strip_prefix("sha256:") {
            Some(hex) => Sha256Hash::from_hex(hex)
                .map(Self::Digest)
                .map_err(|e| format!("{arg}: not a SHA-256 digest: {e}")),
            None => Ok(Self::File(Path::new(arg))),
        }
    }
}

/// Who must have signed.
pub enum Signer<'a> {
    /// A managed key (PEM SubjectPublicKeyInfo).
    Key(&'a str),
    /// A keyless identity and OIDC issuer.
    Identity {
        /// The certificate's subject alternative name.
        identity: &'a Matcher,
        /// The OIDC issuer.
        issuer: &'a Matcher,
    },
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
        Signer::Key(pem) => {
            let key = DerPublicKey::from_pem(pem)
                .map_err(|e| BundleCheckError::Unusable(format!("public key: {e}")))?;
            run(
                &verifier,
                artifact,
                &bundle,
                &PublicKeyVerificationPolicy::new(key),
            )?
        }
        Signer::Identity { identity, issuer } => {
            let result = run(
                &verifier,
                artifact,
                &bundle,
                &VerificationPolicy::any_identity(),
            )?;
            check_identity(&result, identity, issuer).map_err(reject)?;
            result
        }
    };
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

/// Requires the verified certificate's identity and issuer to match.
pub fn check_identity(
    result: &VerificationResult,
    identity: &Matcher,
    issuer: &Matcher,
) -> Result<(String, String), String> {
    let found_identity = result
        .identity()
        .map(|san| san.as_str().to_string())
        .unwrap_or_default();
    let found_issuer = result.issuer().unwrap_or_default().to_string();
    if !identity.matches(&found_identity) {
        return Err(format!(
            "the certificate identity is {found_identity:?}, but the trusted identity is {identity}; verify with the signer's identity"
        ));
    }
    if !issuer.matches(&found_issuer) {
        return Err(format!(
            "the certificate's OIDC issuer is {found_issuer:?}, but the trusted issuer is {issuer}"
        ));
    }
    Ok((found_identity, found_issuer))
}
