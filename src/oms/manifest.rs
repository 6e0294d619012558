//! The OpenSSF Model Signing manifest: the in-toto statement whose predicate
//! (`https://model_signing/signature/v1.0`) lists every file or shard of a model
//! with its digest.
//!
//! Parsing is strict and separate from trust: [`Manifest::from_statement`]
//! turns the exact payload bytes that were signed into a checked structure
//! (safe paths, known algorithms, digests of the right length, no duplicates,
//! a subject digest that matches the resources) and never re-serializes them.
//!
//! Over 600 lines on purpose: the format's rules (names, order, ignore
//! semantics, the statement both ways) stay in one place, and about a third
//! of the file is their unit tests.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::model::hashing::{self, HashAlgorithm};
use crate::model::{Method, ResourceKey, SINGLE_FILE_NAME, Serialization};

/// The in-toto statement type the format uses.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of an OpenSSF model signature.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The reference signer's default shard size (1 GB).
pub const DEFAULT_SHARD_SIZE: u64 = 1_000_000_000;
/// Paths at the model root that signers ignore by default.
pub const DEFAULT_IGNORES: [&str; 4] = [".git", ".github", ".gitattributes", ".gitignore"];

// The pre-1.0 predicate types are defined here, not in `legacy`, which reads
// that format: the v1.0 reader must recognise them to refuse them with the
// right advice, and `legacy` builds on this module's types, so the imports
// between the two go one way (legacy -> manifest). `legacy` re-exports them.

/// The predicate type model_signing 0.2 wrote for a manifest of files.
pub const LEGACY_PREDICATE_TYPE: &str = "https://model_signing/Digests/v0.1";

/// Other pre-1.0 predicate types: no verifier reads them, the reference
/// neither.
pub const UNREADABLE_PREDICATE_TYPES: [&str; 4] = [
    "https://model_signing/Digest/v0.1",
    "https://model_signing/DigestOfDigests/v0.1",
    "https://model_signing/ShardDigests/v0.1",
    "https://model_signing/DigestOfShardDigests/v0.1",
];

/// What to do with a model signed in the pre-1.0 format.
pub const RE_SIGN_ADVICE: &str = "re-sign the model with a current signer (model_signing 1.x, or modelgate attest); during a migration window, --allow-legacy-format (allowLegacyFormat: true in a policy rule) accepts it";

/// The `serialization` section as the format writes it.
fn serialization_to_json(ser: &Serialization) -> Value {
    let mut map = serde_json::Map::new();
    let method = match ser.method {
        Method::Files => "files",
        Method::Shards { shard_size } => {
            map.insert("shard_size".into(), shard_size.into());
            "shards"
        }
    };
    map.insert("method".into(), method.into());
    map.insert("hash_type".into(), ser.hash.name().into());
    map.insert("allow_symlinks".into(), ser.allow_symlinks.into());
    map.insert("ignore_paths".into(), ser.ignore_paths.clone().into());
    Value::Object(map)
}

/// Reads the `serialization` section, refusing anything the format does not define.
fn serialization_from_json(value: &Value) -> Result<Serialization, ManifestError> {
    let bad = |what: &str| ManifestError::Invalid(format!("serialization: {what}"));
    let obj = value.as_object().ok_or_else(|| bad("not an object"))?;
    let hash_name = obj
        .get("hash_type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing hash_type"))?;
    let hash = HashAlgorithm::from_name(hash_name).ok_or_else(|| {
        bad(&format!(
            "unsupported hash_type {hash_name:?} (expected sha256, blake2b or blake3)"
        ))
    })?;
    let method = match obj.get("method").and_then(Value::as_str) {
        Some("files") => Method::Files,
        Some("shards") => Method::Shards {
            shard_size: parse_shard_size(obj.get("shard_size"))
                .ok_or_else(|| bad("shard_size must be a positive whole number"))?,
        },
        other => {
            return Err(bad(&format!(
                "unsupported method {other:?} (expected files or shards)"
            )));
        }
    };
    let allow_symlinks = obj
        .get("allow_symlinks")
        .and_then(Value::as_bool)
        .ok_or_else(|| bad("allow_symlinks must be true or false"))?;
    let ignore_paths = match obj.get("ignore_paths") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("ignore_paths must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("ignore_paths must be a list")),
    };
    Ok(Serialization {
        method,
        hash,
        allow_symlinks,
        ignore_paths,
    })
}

/// The reference writes `shard_size` through a protobuf `Struct`, so it comes
/// back as a float (`1000000000.0`); accept any exact whole number.
fn parse_shard_size(value: Option<&Value>) -> Option<u64> {
    let number = value?.as_number()?;
    if let Some(n) = number.as_u64() {
        return (n > 0).then_some(n);
    }
    let f = number.as_f64()?;
    // 2^53: past it a float no longer names one integer.
    (f.fract() == 0.0 && f > 0.0 && f <= 9_007_199_254_740_992.0).then_some(f as u64)
}

/// Parses a resource name as written under `method`, validating its path.
fn parse_key(name: &str, method: Method) -> Result<ResourceKey, ManifestError> {
    match method {
        Method::Files => {
            validate_path(name)?;
            Ok(ResourceKey {
                path: name.to_string(),
                range: None,
            })
        }
        Method::Shards { shard_size } => {
            let bad =
                || ManifestError::Invalid(format!("shard name {name:?} is not path:start:end"));
            let mut parts = name.rsplitn(3, ':');
            let end = parse_offset(parts.next()).ok_or_else(bad)?;
            let start = parse_offset(parts.next()).ok_or_else(bad)?;
            let path = parts.next().ok_or_else(bad)?;
            validate_path(path)?;
            if start >= end || end - start > shard_size || start % shard_size != 0 {
                return Err(ManifestError::Invalid(format!(
                    "shard {name:?} is not a shard of size {shard_size}"
                )));
            }
            Ok(ResourceKey {
                path: path.to_string(),
                range: Some((start, end)),
            })
        }
    }
}

fn parse_offset(s: Option<&str>) -> Option<u64> {
    let s = s?;
    // Digits only: u64::from_str would also take a leading '+'.
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// Checks that a path from a manifest stays inside the model root: relative,
/// `/`-separated, no empty, `.` or `..` components, no NUL. The single-file
/// model's resource is named `.` and is the one exception.
pub fn validate_path(path: &str) -> Result<(), ManifestError> {
    if path == SINGLE_FILE_NAME {
        return Ok(());
    }
    let unsafe_path = |why: &str| ManifestError::UnsafePath {
        path: path.to_string(),
        why: why.to_string(),
    };
    if path.is_empty() {
        return Err(unsafe_path("it is empty"));
    }
    if path.starts_with('/') {
        return Err(unsafe_path("it is absolute"));
    }
    if path.contains('\0') {
        return Err(unsafe_path("it contains a NUL byte"));
    }
    for component in path.split('/') {
        match component {
            "" => return Err(unsafe_path("it has an empty component")),
            "." | ".." => return Err(unsafe_path("it has a '.' or '..' component")),
            _ => {}
        }
    }
    Ok(())
}

/// A parsed, consistent model manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The subject name: the signer's model folder name, informative only.
    pub model_name: String,
    /// How the model was hashed.
    pub serialization: Serialization,
    /// The resources in the order they were listed (and hashed into the root).
    pub resources: Vec<(ResourceKey, Vec<u8>)>,
    /// SHA-256 over the concatenated raw resource digests, in listed order.
    pub root_digest: [u8; 32],
    /// Which format the signature was in.
    pub format: Format,
}

/// The format a manifest was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `https://model_signing/signature/v1.0`.
    V1,
    /// model_signing 0.2's `https://model_signing/Digests/v0.1`, read only
    /// under an explicit opt-in (see [`super::legacy`]).
    Legacy,
}

impl Format {
    /// The predicate type of this format.
    pub fn predicate_type(self) -> &'static str {
        match self {
            Self::V1 => PREDICATE_TYPE,
            Self::Legacy => LEGACY_PREDICATE_TYPE,
        }
    }
}

/// Why a payload is not a usable model manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The payload is not JSON.
    #[error("the signed payload is not a valid in-toto statement: {0}")]
    Json(#[from] serde_json::Error),
    /// A field is missing, of the wrong type, or holds an unsupported value.
    #[error("the signed manifest is invalid: {0}")]
    Invalid(String),
    /// A resource path could escape the model root.
    #[error(
        "the signed manifest names an unsafe path {path:?}: {why}; a manifest may only name files inside the model"
    )]
    UnsafePath {
        /// The path as written in the manifest.
        path: String,
        /// Why it is unsafe.
        why: String,
    },
    /// The statement is in model_signing 0.2's format, which is only read
    /// on request.
    #[error(
        "the signature is in the pre-1.0 format that model_signing 0.2 wrote (predicate {predicate}); nothing was altered, but that format is not accepted by default: {}",
        RE_SIGN_ADVICE
    )]
    LegacyFormat {
        /// The predicate type found.
        predicate: String,
    },
    /// The subject digest does not match the listed resources.
    #[error(
        "the signed manifest is inconsistent: the subject digest is {expected}, but the listed resources hash to {actual}"
    )]
    RootMismatch {
        /// Subject digest (hex).
        expected: String,
        /// Digest over the resources (hex).
        actual: String,
    },
}

impl Manifest {
    /// Builds a manifest from resources hashed by the signer, in canonical order.
    pub fn new(
        model_name: String,
        serialization: Serialization,
        mut resources: Vec<(ResourceKey, Vec<u8>)>,
    ) -> Self {
        resources.sort_by(|a, b| a.0.canonical_cmp(&b.0));
        let root_digest = root_digest(resources.iter().map(|(_, d)| d.as_slice()));
        Self {
            model_name,
            serialization,
            resources,
            root_digest,
            format: Format::V1,
        }
    }

    /// Parses and checks the exact payload bytes of a DSSE envelope.
    ///
    /// Parsed into borrowed, typed structures rather than a `serde_json::Value`
    /// tree: for a 10,000-file model that is the difference between a few
    /// hundred KB and several MB of resident memory.
    pub fn from_statement(payload: &[u8]) -> Result<Self, ManifestError> {
        let doc: StatementIn<'_> = serde_json::from_slice(payload)?;
        let invalid = ManifestError::Invalid;
        check_type(&doc.kind)?;
        if doc.predicate_type == LEGACY_PREDICATE_TYPE {
            return Err(ManifestError::LegacyFormat {
                predicate: doc.predicate_type.into_owned(),
            });
        }
        if UNREADABLE_PREDICATE_TYPES.contains(&doc.predicate_type.as_ref()) {
            return Err(invalid(format!(
                "predicateType is {:?}, a pre-1.0 format that no verifier reads (the reference neither); re-sign the model with a current signer",
                doc.predicate_type
            )));
        }
        check_predicate_type(&doc.predicate_type, PREDICATE_TYPE)?;
        let [subject] = doc.subject.as_slice() else {
            return Err(invalid(format!(
                "expected exactly one subject, found {}",
                doc.subject.len()
            )));
        };
        let subject_digest = sha256_of(&subject.digest)
            .ok_or_else(|| invalid("subject has no valid sha256 digest".into()))?;

        let serialization = serialization_from_json(&doc.predicate.serialization)?;
        let algorithm = serialization.resource_algorithm();
        let mut resources = Vec::with_capacity(doc.predicate.resources.len());
        for item in &doc.predicate.resources {
            let name = item.name.as_ref();
            let key = parse_key(name, serialization.method)?;
            if item.algorithm != algorithm {
                return Err(invalid(format!(
                    "resource {name:?} uses algorithm {}, but the serialization says {algorithm}",
                    item.algorithm
                )));
            }
            let digest = hex::decode(item.digest.as_ref())
                .ok()
                .filter(|d| d.len() == serialization.hash.digest_len())
                .ok_or_else(|| {
                    invalid(format!(
                        "resource {name:?} has a malformed {} digest",
                        serialization.hash.name()
                    ))
                })?;
            resources.push((key, digest));
        }
        let mut seen = HashSet::with_capacity(resources.len());
        if let Some((dup, _)) = resources.iter().find(|(k, _)| !seen.insert(k)) {
            return Err(invalid(format!(
                "resource {:?} is listed twice",
                dup.name()
            )));
        }
        drop(seen);
        let computed = root_digest(resources.iter().map(|(_, d)| d.as_slice()));
        if !bool::from(computed.ct_eq(subject_digest.as_slice())) {
            return Err(ManifestError::RootMismatch {
                expected: hex::encode(&subject_digest),
                actual: hex::encode(computed),
            });
        }
        let model_name = subject.name.as_deref().unwrap_or_default().to_string();
        Ok(Self {
            model_name,
            serialization,
            resources,
            root_digest: computed,
            format: Format::V1,
        })
    }

    /// The in-toto statement for this manifest, as the payload to sign.
    pub fn to_statement(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Statement<'a> {
            #[serde(rename = "_type")]
            kind: &'a str,
            subject: [Subject<'a>; 1],
            #[serde(rename = "predicateType")]
            predicate_type: &'a str,
            predicate: Predicate,
        }
        #[derive(Serialize)]
        struct Subject<'a> {
            name: &'a str,
            digest: Sha256Digest,
        }
        #[derive(Serialize)]
        struct Sha256Digest {
            sha256: String,
        }
        #[derive(Serialize)]
        struct Predicate {
            serialization: Value,
            resources: Vec<ResourceJson>,
        }
        #[derive(Serialize)]
        struct ResourceJson {
            name: String,
            algorithm: String,
            digest: String,
        }
        let algorithm = self.serialization.resource_algorithm();
        let statement = Statement {
            kind: STATEMENT_TYPE,
            subject: [Subject {
                name: &self.model_name,
                digest: Sha256Digest {
                    sha256: hex::encode(self.root_digest),
                },
            }],
            predicate_type: PREDICATE_TYPE,
            predicate: Predicate {
                serialization: serialization_to_json(&self.serialization),
                resources: self
                    .resources
                    .iter()
                    .map(|(key, digest)| ResourceJson {
                        name: key.name(),
                        algorithm: algorithm.clone(),
                        digest: hex::encode(digest),
                    })
                    .collect(),
            },
        };
        // Serializing plain structs of strings cannot fail.
        serde_json::to_vec_pretty(&statement).unwrap_or_default()
    }
}

/// The statement as read: strings borrow from the payload where they hold no
/// escapes. Unknown fields are ignored, as the predicate's spec asks.
#[derive(Deserialize)]
struct StatementIn<'a> {
    #[serde(rename = "_type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    subject: Vec<SubjectIn<'a>>,
    #[serde(rename = "predicateType", borrow)]
    predicate_type: Cow<'a, str>,
    #[serde(default, borrow)]
    predicate: PredicateIn<'a>,
}

#[derive(Deserialize)]
struct SubjectIn<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    digest: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

#[derive(Default, Deserialize)]
struct PredicateIn<'a> {
    // Defaults, so that the predicate type is checked (and a pre-1.0
    // statement named as such) before the fields are required.
    #[serde(default)]
    serialization: Value,
    #[serde(default, borrow)]
    resources: Vec<ResourceIn<'a>>,
}

#[derive(Deserialize)]
struct ResourceIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    algorithm: Cow<'a, str>,
    #[serde(borrow)]
    digest: Cow<'a, str>,
}

/// Checks an in-toto statement's `_type`.
pub(super) fn check_type(kind: &str) -> Result<(), ManifestError> {
    if kind != STATEMENT_TYPE {
        return Err(ManifestError::Invalid(format!(
            "_type is {kind:?}, expected {STATEMENT_TYPE}"
        )));
    }
    Ok(())
}

/// Checks a statement's `predicateType`.
pub(super) fn check_predicate_type(found: &str, expected: &str) -> Result<(), ManifestError> {
    if found != expected {
        return Err(ManifestError::Invalid(format!(
            "predicateType is {found:?}, expected {expected}"
        )));
    }
    Ok(())
}

/// The 32-byte `sha256` entry of an in-toto digest set.
pub(super) fn sha256_of(set: &BTreeMap<Cow<'_, str>, Cow<'_, str>>) -> Option<Vec<u8>> {
    set.get("sha256")
        .and_then(|h| hex::decode(h.as_ref()).ok())
        .filter(|d| d.len() == 32)
}

/// SHA-256 over the concatenation of raw digests, in the order given.
pub fn root_digest<'a>(digests: impl Iterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut all = Vec::new();
    for d in digests {
        all.extend_from_slice(d);
    }
    hashing::sha256(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_rejected() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a/",
            "a\0b",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            ".",
            "a",
            "a/b.c",
            "dir with space/ü.bin",
            ".hidden",
            "..x/y..",
        ] {
            assert!(validate_path(good).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn shard_names_parse_strictly() {
        let m = Method::Shards { shard_size: 1000 };
        assert_eq!(parse_key("a:b:0:10", m).unwrap().path, "a:b");
        for bad in [
            "a:0",
            "a:+0:10",
            "a:10:10",
            "a:0:1001",
            "a:5:10",
            "../a:0:10",
            "a:-1:3",
        ] {
            assert!(parse_key(bad, m).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn shard_size_accepts_the_reference_float() {
        assert_eq!(
            parse_shard_size(Some(&serde_json::json!(1000000000.0))),
            Some(1_000_000_000)
        );
        assert_eq!(parse_shard_size(Some(&serde_json::json!(1000))), Some(1000));
        assert_eq!(parse_shard_size(Some(&serde_json::json!(10.5))), None);
        assert_eq!(parse_shard_size(Some(&serde_json::json!(0))), None);
        assert_eq!(parse_shard_size(Some(&serde_json::json!("1000"))), None);
    }

    #[test]
    fn statement_round_trips_and_detects_an_edited_digest() {
        let ser = Serialization {
            method: Method::Files,
            hash: HashAlgorithm::Sha256,
            allow_symlinks: false,
            ignore_paths: vec![],
        };
        let m = Manifest::new(
            "m".into(),
            ser,
            vec![
                (
                    ResourceKey {
                        path: "b".into(),
                        range: None,
                    },
                    vec![2; 32],
                ),
                (
                    ResourceKey {
                        path: "a".into(),
                        range: None,
                    },
                    vec![1; 32],
                ),
            ],
        );
        let bytes = m.to_statement();
        let back = Manifest::from_statement(&bytes).unwrap();
        assert_eq!(back.resources[0].0.path, "a");
        assert_eq!(back.root_digest, m.root_digest);
        let edited = String::from_utf8(bytes)
            .unwrap()
            .replace(&hex::encode([2u8; 32]), &hex::encode([3u8; 32]));
        assert!(matches!(
            Manifest::from_statement(edited.as_bytes()),
            Err(ManifestError::RootMismatch { .. })
        ));
    }
}
