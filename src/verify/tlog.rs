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
use sigstore_types::{LogKeyId, Sha256Hash, TimeRange};
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

/// Why transparency-log evidence is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TlogError {
    /// The bundle is not UTF-8.
    #[error("the bundle is not UTF-8 JSON")]
    NotUtf8,
    /// The bundle does not parse as a Sigstore bundle.
    #[error("not a valid Sigstore bundle: {0}")]
    Bundle(sigstore_types::Error),
    /// Evidence is required and the bundle has no log entry.
    #[error("{}", NO_ENTRIES)]
    NoEntries,
    /// The key cannot be given to the verifier.
    #[error("public key: {0}")]
    Key(sigstore_types::Error),
    /// The statement's subject digest is not a SHA-256 digest.
    #[error("subject digest: {0}")]
    Subject(sigstore_types::Error),
    /// The trusted root cannot be used.
    #[error("trusted root: {0}")]
    Root(Box<sigstore_verify::Error>),
    /// The log entry does not verify.
    #[error("transparency-log verification failed: {0}")]
    Verification(Box<sigstore_verify::Error>),
    /// An entry is from a log the trusted root does not name.
    #[error("the log entry is from log {key_id}, which the trusted root does not name")]
    UnknownLog {
        /// The entry's log.
        key_id: LogKeyId,
    },
    /// An entry was made when its log's key was not valid.
    #[error(
        "the log entry was made at {time}, outside the validity of the trusted log key {key_id} ({} to {}); the entry cannot have been integrated by that log",
        .valid.start,
        .valid.end.map_or_else(|| "no end".to_string(), |end| end.to_string())
    )]
    OutsideValidity {
        /// The verified signing time (RFC 3339).
        time: String,
        /// The log's key.
        key_id: LogKeyId,
        /// When the key was valid.
        valid: TimeRange,
    },
}

/// Verifies the transparency-log evidence of a managed-key bundle signed by
/// `key` over `subject` (the statement's subject digest, hex), against
/// `root`. The signature itself must already have been checked.
pub fn verify_key_evidence(
    root: &TrustedRoot,
    bundle_json: &[u8],
    key: &PublicKey,
    subject: &str,
) -> Result<LogEvidence, TlogError> {
    let text = std::str::from_utf8(bundle_json).map_err(|_| TlogError::NotUtf8)?;
    let bundle = sigstore_types::Bundle::from_json(text).map_err(TlogError::Bundle)?;
    if bundle.verification_material.tlog_entries.is_empty() {
        return Err(TlogError::NoEntries);
    }
    let der = sigstore_types::DerPublicKey::from_pem(&key.to_pem()).map_err(TlogError::Key)?;
    let digest = Sha256Hash::from_hex(subject).map_err(TlogError::Subject)?;
    let verifier = Verifier::new(root).map_err(|e| TlogError::Root(Box::new(e)))?;
    let result = verifier
        .verify(digest, &bundle, &PublicKeyVerificationPolicy::new(der))
        .map_err(|e| TlogError::Verification(Box::new(e)))?;
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
) -> Result<(), TlogError> {
    for entry in &bundle.verification_material.tlog_entries {
        let log = root
            .tlogs
            .iter()
            .find(|log| log.log_id.key_id == entry.log_id.key_id)
            .ok_or_else(|| TlogError::UnknownLog {
                key_id: entry.log_id.key_id.clone(),
            })?;
        let Some(window) = &log.public_key.valid_for else {
            continue;
        };
        for time in result.verified_timestamps() {
            let after_end = window.end.as_ref().is_some_and(|end| time > end);
            if *time < window.start || after_end {
                return Err(TlogError::OutsideValidity {
                    time: time.to_string(),
                    key_id: entry.log_id.key_id.clone(),
                    valid: *window,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::sigstore::{PRODUCTION_TRUSTED_ROOT, trusted_root};

    /// The Rekor v1 log that holds the conformance bundle's entry.
    const LOG_KEY_ID: &str = "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=";
    /// When that entry was integrated.
    const INTEGRATED: &str = "2025-12-18T17:04:39Z";

    /// A file of the Sigstore conformance sample in fixtures/.
    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/sigstore-conformance")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The conformance case of a key-signed bundle (a message signature over
    /// `a.txt`) with one Rekor v1 entry, made against the production
    /// instance, as cosign uploads key-signed bundles.
    fn bundle() -> serde_json::Value {
        serde_json::from_slice(&fixture("managed-key-happy-path/bundle.sigstore.json")).unwrap()
    }

    fn key() -> PublicKey {
        let pem = fixture("managed-key-happy-path/key.pub");
        PublicKey::from_pem(std::str::from_utf8(&pem).unwrap()).unwrap()
    }

    /// The digest the bundle signs: `a.txt`'s SHA-256, hex.
    fn subject() -> String {
        hex::encode(crate::model::hashing::sha256(&fixture("a.txt")))
    }

    fn production() -> TrustedRoot {
        trusted_root(None).unwrap()
    }

    fn evidence_with(
        root: &TrustedRoot,
        bundle: &serde_json::Value,
    ) -> Result<LogEvidence, String> {
        verify_key_evidence(
            root,
            &serde_json::to_vec(bundle).unwrap(),
            &key(),
            &subject(),
        )
        .map_err(|e| e.to_string())
    }

    /// The production root with `change` applied to the log that holds the
    /// entry.
    fn root_with_log(change: impl Fn(&mut serde_json::Value)) -> TrustedRoot {
        let mut root: serde_json::Value = serde_json::from_str(PRODUCTION_TRUSTED_ROOT).unwrap();
        let logs = root["tlogs"].as_array_mut().unwrap();
        let log = logs
            .iter_mut()
            .find(|log| log["logId"]["keyId"] == LOG_KEY_ID)
            .unwrap();
        change(log);
        trusted_root(Some(&root.to_string())).unwrap()
    }

    /// What sigstore-verify establishes for the bundle against the
    /// production root, for `check_log_key_validity` against another root.
    fn verified() -> (sigstore_types::Bundle, VerificationResult) {
        let bundle = sigstore_types::Bundle::from_json(&bundle().to_string()).unwrap();
        let der = sigstore_types::DerPublicKey::from_pem(&key().to_pem()).unwrap();
        let result = Verifier::new(&production())
            .unwrap()
            .verify(
                Sha256Hash::from_hex(&subject()).unwrap(),
                &bundle,
                &PublicKeyVerificationPolicy::new(der),
            )
            .unwrap();
        (bundle, result)
    }

    #[test]
    fn a_logged_key_signature_yields_the_entry_and_its_verified_times() {
        let evidence = evidence_with(&production(), &bundle()).unwrap();
        assert_eq!(evidence.log_index, Some(771_488_337));
        assert_eq!(evidence.integrated_time.as_deref(), Some(INTEGRATED));
        assert!(
            !evidence.verified_timestamps.is_empty()
                && evidence.verified_timestamps.iter().all(|t| t == INTEGRATED),
            "{:?}",
            evidence.verified_timestamps
        );
    }

    #[test]
    fn the_entry_must_be_for_this_payload_and_this_key() {
        // Another artifact: the entry is not for it.
        let other = hex::encode(crate::model::hashing::sha256(b"not a.txt"));
        let bundle = serde_json::to_vec(&bundle()).unwrap();
        let err = verify_key_evidence(&production(), &bundle, &key(), &other)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("transparency-log verification failed"),
            "{err}"
        );
        // Another key: the signature and the entry are not by it.
        let other_key = PublicKey::from_pem(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("fixtures/keys/test-signer.pub.pem"),
            )
            .unwrap(),
        )
        .unwrap();
        let err = verify_key_evidence(&production(), &bundle, &other_key, &subject())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("transparency-log verification failed"),
            "{err}"
        );
    }

    #[test]
    fn a_bundle_without_log_entries_is_refused_with_what_to_do() {
        let mut bundle = bundle();
        bundle["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
        assert_eq!(
            evidence_with(&production(), &bundle).unwrap_err(),
            NO_ENTRIES
        );
        assert!(NO_ENTRIES.contains("without --trusted-root"));
    }

    #[test]
    fn what_is_not_a_bundle_is_refused_before_any_check() {
        let key = key();
        let err = verify_key_evidence(&production(), b"\xff\xfe{}", &key, &subject())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "the bundle is not UTF-8 JSON");
        let err = verify_key_evidence(&production(), b"{\"mediaType\": 1}", &key, &subject())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("not a valid Sigstore bundle: "), "{err}");
    }

    #[test]
    fn the_entry_must_be_from_a_log_the_root_trusts() {
        let (bundle, result) = verified();
        // The production root with that log's key id changed: it no longer
        // names the log of the entry.
        let root = root_with_log(|log| log["logId"]["keyId"] = "b3RoZXIgbG9n".into());
        let err = check_log_key_validity(&root, &bundle, &result)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("the log entry is from log {LOG_KEY_ID}, which the trusted root does not name")
        );
    }

    #[test]
    fn the_log_key_must_be_valid_when_the_entry_was_made() {
        let (bundle, result) = verified();
        // Valid since 2021 with no end (production as shipped): accepted.
        check_log_key_validity(&production(), &bundle, &result).unwrap();
        // Valid until a given end after the entry: accepted.
        let root = root_with_log(|log| {
            log["publicKey"]["validFor"]["end"] = "2026-06-01T00:00:00Z".into();
        });
        check_log_key_validity(&root, &bundle, &result).unwrap();
        // In service only after the entry was made.
        let root = root_with_log(|log| {
            log["publicKey"]["validFor"]["start"] = "2026-01-01T00:00:00Z".into();
        });
        let err = check_log_key_validity(&root, &bundle, &result)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "the log entry was made at {INTEGRATED}, outside the validity of the trusted log key {LOG_KEY_ID} (2026-01-01T00:00:00Z to no end)"
            )),
            "{err}"
        );
        // Retired before the entry was made.
        let root = root_with_log(|log| {
            log["publicKey"]["validFor"]["end"] = "2025-01-01T00:00:00Z".into();
        });
        let err = check_log_key_validity(&root, &bundle, &result)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(2021-01-12T11:53:27Z to 2025-01-01T00:00:00Z)"),
            "{err}"
        );
    }
}
