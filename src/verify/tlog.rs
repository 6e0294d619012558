//! Transparency-log evidence in a bundle, checked against a trusted root:
//! required for keyless signatures, and for managed-key signatures when the
//! operator asks for it (`--key` with `--trusted-root`, or a policy key
//! authority with `ctlog`). cosign and the other Sigstore clients upload
//! key-signed bundles to Rekor too; such a bundle carries `publicKey`
//! material *and* `tlogEntries`.
//!
//! sigstore-verify checks each entry: the inclusion proof against a
//! checkpoint signed by a trusted log, the signed entry timestamp, RFC 3161
//! timestamps, and that the entry is for this very signature, key and
//! payload. Two things it leaves to the caller are checked here: that there
//! is at least one entry at all, and that every log key was valid at every
//! verified signing time (sigstore-verify checks that only for the signed
//! entry timestamp of Rekor v1, not for the RFC 3161 time of Rekor v2).

use sigstore_trust_root::TrustedRoot;
use sigstore_types::Sha256Hash;
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationResult, Verifier};

use crate::trust::PublicKey;

/// What a verified log entry establishes.
#[derive(Clone, Debug, Default)]
pub struct LogEvidence {
    /// Log index of the (first) entry.
    pub log_index: Option<i64>,
    /// When the log integrated the entry (RFC 3339), if it says (Rekor v1).
    pub integrated_time: Option<String>,
    /// Signing times established by verified timestamps (RFC 3339).
    pub verified_timestamps: Vec<String>,
}

impl LogEvidence {
    /// The evidence `result` established for `bundle`.
    pub fn from_result(bundle: &sigstore_types::Bundle, result: &VerificationResult) -> Self {
        Self {
            log_index: bundle
                .verification_material
                .tlog_entries
                .first()
                .map(|e| e.log_index.as_i64()),
            integrated_time: result.integrated_time().map(|t| t.to_string()),
            verified_timestamps: result
                .verified_timestamps()
                .iter()
                .map(|t| t.to_string())
                .collect(),
        }
    }
}

/// The refusal for a bundle without log entries when evidence is required.
pub const NO_ENTRIES: &str = "transparency-log evidence is required (a trusted root was given for the key), but the bundle has no tlogEntries; sign with a client that uploads to Rekor, or verify by the key alone without --trusted-root (policy: without ctlog)";

/// Verifies the transparency-log evidence of a managed-key bundle signed by
/// `key` over `subject` (the statement's subject digest, hex), against
/// `root`. The signature itself must already have been checked.
pub fn verify_key_evidence(
    root: &TrustedRoot,
    bundle_json: &[u8],
    key: &PublicKey,
    subject: &str,
) -> Result<LogEvidence, String> {
    let text =
        std::str::from_utf8(bundle_json).map_err(|_| "the bundle is not UTF-8 JSON".to_string())?;
    let bundle = sigstore_types::Bundle::from_json(text)
        .map_err(|e| format!("not a valid Sigstore bundle: {e}"))?;
    if bundle.verification_material.tlog_entries.is_empty() {
        return Err(NO_ENTRIES.into());
    }
    let der = sigstore_types::DerPublicKey::from_pem(&key.to_pem())
        .map_err(|e| format!("public key: {e}"))?;
    let digest = Sha256Hash::from_hex(subject).map_err(|e| format!("subject digest: {e}"))?;
    let verifier = Verifier::new(root).map_err(|e| format!("trusted root: {e}"))?;
    let result = verifier
        .verify(digest, &bundle, &PublicKeyVerificationPolicy::new(der))
        .map_err(|e| format!("transparency-log verification failed: {e}"))?;
    check_log_key_validity(root, &bundle, &result)?;
    Ok(LogEvidence::from_result(&bundle, &result))
}

/// Every entry's log must be one the root trusts, with a key valid at every
/// verified signing time: an entry cannot have been integrated by a log key
/// before that key came into service or after it was retired.
pub fn check_log_key_validity(
    root: &TrustedRoot,
    bundle: &sigstore_types::Bundle,
    result: &VerificationResult,
) -> Result<(), String> {
    for entry in &bundle.verification_material.tlog_entries {
        let log = root
            .tlogs
            .iter()
            .find(|log| log.log_id.key_id == entry.log_id.key_id)
            .ok_or_else(|| {
                format!(
                    "the log entry is from log {}, which the trusted root does not name",
                    entry.log_id.key_id
                )
            })?;
        let Some(window) = &log.public_key.valid_for else {
            continue;
        };
        for time in result.verified_timestamps() {
            let after_end = window.end.as_ref().is_some_and(|end| time > end);
            if *time < window.start || after_end {
                return Err(format!(
                    "the log entry was made at {time}, outside the validity of the trusted log key {} ({} to {}); the entry cannot have been integrated by that log",
                    entry.log_id.key_id,
                    window.start,
                    window
                        .end
                        .as_ref()
                        .map_or_else(|| "no end".to_string(), ToString::to_string)
                ));
            }
        }
    }
    Ok(())
}
