//! The pre-1.0 format that model_signing 0.2 (and the Go signer of that
//! time) wrote, accepted only under an explicit opt-in
//! (`--allow-legacy-format`, or `allowLegacyFormat` in a policy rule) for a
//! migration window.
//!
//! Two things differ from v1.0. The statement's predicate is
//! `https://model_signing/Digests/v0.1`, with one in-toto subject per file
//! (its SHA-256) and no serialization, model name or root digest. And the
//! DSSE signature of that release's key and certificate signers is not over
//! the PAE but over a string holding the payload's Python `bytes` repr, a bug
//! of 0.2 ([`legacy_pae`]). The current reference accepts both, and this
//! module reads them exactly as it does: every subject is a `files`/`sha256`
//! resource. The comparison with the model on disk stays as strict as for
//! v1.0 (every file listed, nothing else, no symlinks).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::bundle::IN_TOTO_PAYLOAD_TYPE;
use super::manifest::{
    DEFAULT_IGNORES, Format, Manifest, ManifestError, check_predicate_type, check_type,
    root_digest, sha256_of, validate_path,
};
use crate::model::{HashAlgorithm, Method, ResourceKey, Serialization};

// The pre-1.0 predicate types and the advice, defined in `manifest` (whose
// v1.0 reader refuses them) so that the imports go one way, legacy ->
// manifest; here too, where the format is read.
pub use super::manifest::{LEGACY_PREDICATE_TYPE, RE_SIGN_ADVICE, UNREADABLE_PREDICATE_TYPES};

/// The model name the reference gives a legacy manifest, which has none.
pub const LEGACY_MODEL_NAME: &str = "compat-undefined-not-present";

#[derive(Deserialize)]
struct StatementIn<'a> {
    #[serde(rename = "_type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    subject: Vec<SubjectIn<'a>>,
    #[serde(rename = "predicateType", borrow)]
    predicate_type: Cow<'a, str>,
}

#[derive(Deserialize)]
struct SubjectIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    digest: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(default, borrow)]
    annotations: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

/// Reads a `Digests/v0.1` statement as the reference reads it: each subject
/// a file with its SHA-256. Stricter in what it refuses: unsafe or repeated
/// names, a digest that is not 32 bytes of hex, and a subject whose
/// annotation says it was hashed with anything but `file-sha256` (the
/// reference would compare such a digest with a SHA-256 and fail later).
pub fn manifest_from_legacy_statement(payload: &[u8]) -> Result<Manifest, ManifestError> {
    let doc: StatementIn<'_> = serde_json::from_slice(payload)?;
    let invalid = ManifestError::Invalid;
    check_type(&doc.kind)?;
    check_predicate_type(&doc.predicate_type, LEGACY_PREDICATE_TYPE)?;
    let mut seen = HashSet::with_capacity(doc.subject.len());
    let mut resources = Vec::with_capacity(doc.subject.len());
    for subject in &doc.subject {
        let name = subject.name.as_ref();
        validate_path(name)?;
        if let Some(algorithm) = subject.annotations.get("actual_hash_algorithm")
            && algorithm != "file-sha256"
        {
            return Err(invalid(format!(
                "subject {name:?} was hashed with {algorithm:?}; only file-sha256 can be verified"
            )));
        }
        let digest = sha256_of(&subject.digest)
            .ok_or_else(|| invalid(format!("subject {name:?} has no valid sha256 digest")))?;
        if !seen.insert(name) {
            return Err(invalid(format!("subject {name:?} is listed twice")));
        }
        resources.push((
            ResourceKey {
                path: name.to_string(),
                range: None,
            },
            digest,
        ));
    }
    let root_digest = root_digest(resources.iter().map(|(_, d)| d.as_slice()));
    Ok(Manifest {
        model_name: LEGACY_MODEL_NAME.into(),
        // What the reference assumes, plus the git paths its CLI ignores by
        // default when it verifies.
        serialization: Serialization {
            method: Method::Files,
            hash: HashAlgorithm::Sha256,
            allow_symlinks: false,
            ignore_paths: DEFAULT_IGNORES.iter().map(|s| s.to_string()).collect(),
        },
        resources,
        root_digest,
        format: Format::Legacy,
    })
}

/// The bytes model_signing 0.2 signed instead of the PAE, through a bug of
/// that release (it formatted the payload's Python `bytes` repr into a
/// string): `DSSEV1 <len> <type> <len> b'<escaped payload>'`. The current
/// reference still accepts signatures over it, and so does modelgate, but only
/// under `--allow-legacy-format`.
pub fn legacy_pae(payload: &[u8]) -> Vec<u8> {
    format!(
        "DSSEV1 {} {IN_TOTO_PAYLOAD_TYPE} {} {}",
        IN_TOTO_PAYLOAD_TYPE.len(),
        payload.len(),
        python_bytes_repr(payload)
    )
    .into_bytes()
}

/// Python's `repr(bytes)`: `b'...'` (or `b"..."` when the bytes hold a
/// single quote and no double quote), with `\\`, the quote, `\t`, `\n`,
/// `\r` escaped and every other byte outside printable ASCII as `\xhh`.
fn python_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 8 + 3);
    out.push('b');
    out.push(quote as char);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote as char);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oms::manifest::STATEMENT_TYPE;

    #[test]
    fn legacy_pae_is_what_python_formats() {
        // Expected values printed by CPython 3.11 for the same bytes.
        let payload = b"{\"a\": \"it's\\ \xc3\xbc\"}\n\t\r\x7f\x00";
        assert_eq!(
            legacy_pae(payload),
            br#"DSSEV1 28 application/vnd.in-toto+json 22 b'{"a": "it\'s\\ \xc3\xbc"}\n\t\r\x7f\x00'"#
        );
        assert_eq!(python_bytes_repr(b"it's"), r#"b"it's""#);
        assert_eq!(python_bytes_repr(b"'\""), r#"b'\'"'"#);
    }

    #[test]
    fn legacy_statements_are_read_strictly() {
        let statement = |subjects: &str| {
            format!(
                r#"{{"_type":"{STATEMENT_TYPE}","predicateType":"{LEGACY_PREDICATE_TYPE}","predicate":{{}},"subject":[{subjects}]}}"#
            )
        };
        let digest = "ab".repeat(32);
        let ok = statement(&format!(
            r#"{{"name":"a/b","digest":{{"sha256":"{digest}"}},"annotations":{{"actual_hash_algorithm":"file-sha256"}}}},{{"name":"c","digest":{{"sha256":"{digest}"}}}}"#
        ));
        let m = manifest_from_legacy_statement(ok.as_bytes()).unwrap();
        assert_eq!(m.resources.len(), 2);
        assert_eq!(m.format, Format::Legacy);
        for (bad, why) in [
            (
                format!(r#"{{"name":"../x","digest":{{"sha256":"{digest}"}}}}"#),
                "unsafe path",
            ),
            (
                format!(
                    r#"{{"name":"x","digest":{{"sha256":"{digest}"}}}},{{"name":"x","digest":{{"sha256":"{digest}"}}}}"#
                ),
                "listed twice",
            ),
            (
                r#"{"name":"x","digest":{"sha256":"abcd"}}"#.to_string(),
                "no valid sha256",
            ),
            (
                format!(
                    r#"{{"name":"x","digest":{{"sha256":"{digest}"}},"annotations":{{"actual_hash_algorithm":"file-blake2"}}}}"#
                ),
                "only file-sha256",
            ),
        ] {
            let err = manifest_from_legacy_statement(statement(&bad).as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
