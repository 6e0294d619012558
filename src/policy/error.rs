//! Why a policy document cannot be used: one error per level of the
//! document (the document, `spec.gpu`, a rule, an authority, inline data or
//! a file), each message starting with the field it is about.

use std::path::PathBuf;

use super::{API_VERSION, KIND};
use crate::io::ReadError;
use crate::node::DriverVersion;
use crate::node::gpu::LIBRARY_FAMILIES;
use crate::trust::sigstore::SigstoreTrustError;
use crate::trust::{ChainError, KeyError};

/// What is wrong with a policy document. Each message starts with the
/// field it is about.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Larger than [`super::MAX_POLICY_BYTES`].
    #[error("it is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Not UTF-8.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// Not a JSON `ModelPolicy` document (one that starts with `{`).
    #[error("{0}")]
    Json(serde_json::Error),
    /// Not a YAML `ModelPolicy` document.
    #[error("{0}")]
    Yaml(Box<serde_saphyr::Error>),
    /// Another `apiVersion` or `kind`.
    #[error(
        "expected apiVersion {} and kind {}, found {api_version} {kind}",
        API_VERSION,
        KIND
    )]
    Kind {
        /// The `apiVersion` found.
        api_version: String,
        /// The `kind` found.
        kind: String,
    },
    /// `spec.models` is empty.
    #[error("spec.models is empty: a policy that matches no model trusts nothing")]
    NoModels,
    /// Two rules have one name.
    #[error("spec.models[{index}] ({name}): rule name {name:?} is used twice")]
    DuplicateRule {
        /// The second rule's index.
        index: usize,
        /// The name.
        name: String,
    },
    /// A rule cannot be used.
    #[error("spec.models[{index}] ({name}): {source}")]
    Rule {
        /// The rule's index in `spec.models`.
        index: usize,
        /// The rule's name.
        name: String,
        /// What is wrong with it.
        source: Box<RuleError>,
    },
    /// `spec.gpu` cannot be used.
    #[error("spec.gpu.{0}")]
    Gpu(GpuError),
}

/// Why a folder of policy files cannot be one policy (the error's path is
/// the folder, or the second of two files that clash).
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// The folder cannot be listed.
    #[error("cannot list the folder: {0}")]
    List(std::io::Error),
    /// No policy file in it.
    #[error(
        "no policy file (*.yaml, *.yml, *.json) in the folder; a folder that names no rule trusts nothing"
    )]
    Empty,
    /// A rule name an earlier file uses.
    #[error(
        "rule {name:?} is defined in {} too; give each rule of the folder its own name",
        first.display()
    )]
    DuplicateRule {
        /// The rule's name.
        name: String,
        /// The file that defined it first.
        first: PathBuf,
    },
    /// A policy-wide field an earlier file sets.
    #[error(
        "{field} is set in {} too; set it in one file of the folder, as it applies to every model",
        first.display()
    )]
    SetTwice {
        /// The field.
        field: &'static str,
        /// The file that set it first.
        first: PathBuf,
    },
}

/// What is wrong with `spec.gpu`; each message starts with the field below
/// `spec.gpu.`.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// A bound of `driverVersion` is not a version.
    #[error(
        "driverVersion.{bound}: {text:?} is not a version of dot-separated numbers, such as \"535.104.05\""
    )]
    NotVersion {
        /// `min` or `max`.
        bound: &'static str,
        /// The value given.
        text: String,
    },
    /// `driverVersion` has neither bound.
    #[error("driverVersion: give min (inclusive), max (exclusive) or both")]
    NoBound,
    /// `driverVersion` allows no version.
    #[error(
        "driverVersion: min {min} is not below max {max}, so no driver is allowed (min is inclusive, max exclusive)"
    )]
    EmptyRange {
        /// The lower bound (inclusive).
        min: DriverVersion,
        /// The upper bound (exclusive).
        max: DriverVersion,
    },
    /// A pinned library is not one modelgate measures.
    #[error(
        "libraries[{index}].name: {name:?} is not a driver library modelgate measures (a file name starting with one of {})",
        LIBRARY_FAMILIES.join(", ")
    )]
    NotDriverLibrary {
        /// Its index in `libraries`.
        index: usize,
        /// The name given.
        name: String,
    },
    /// A library is pinned twice.
    #[error("libraries[{index}].name: {name:?} is listed twice")]
    DuplicateLibrary {
        /// The second pin's index.
        index: usize,
        /// The name.
        name: String,
    },
    /// A pin's digest is not 64 hex digits.
    #[error(
        "libraries[{index}].sha256: {value:?} is not 64 hex digits (sha256sum's output, without a sha256: prefix)"
    )]
    NotHex {
        /// The pin's index.
        index: usize,
        /// The value given.
        value: String,
    },
}

/// What is wrong with a rule of `spec.models`.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A glob does not compile.
    #[error("{field}: bad glob {pattern:?}: {source}")]
    Glob {
        /// `match.names`, `match.repositories` or `requireCovered`.
        field: &'static str,
        /// The glob given.
        pattern: String,
        /// Why it does not compile.
        source: glob::PatternError,
    },
    /// `match` names no model.
    #[error("match names no model (use names: [\"*\"] to match every model)")]
    NoMatch,
    /// `authorities` is empty.
    #[error("authorities is empty: a rule must name who may sign")]
    NoAuthorities,
    /// Two authorities have one name.
    #[error("authority name {name:?} is used twice")]
    DuplicateAuthority {
        /// The name.
        name: String,
    },
    /// An authority cannot be used.
    #[error("authority {name}: {source}")]
    Authority {
        /// The authority's name.
        name: String,
        /// What is wrong with it.
        source: Box<AuthorityError>,
    },
    /// `count` is 0 or more than the authorities.
    #[error("count is {count}, but must be between 1 and the {authorities} authorities")]
    Count {
        /// The count given.
        count: usize,
        /// How many authorities the rule has.
        authorities: usize,
    },
    /// `rootDigest` is not a SHA-256 digest.
    #[error("rootDigest {value:?} is not sha256:<64 hex digits>")]
    RootDigest {
        /// The value given.
        value: String,
    },
}

/// What is wrong with an authority of a rule.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// `ctlog` without `key`.
    #[error(
        "ctlog goes with a key authority (keyless signatures are always checked against their log)"
    )]
    CtlogWithoutKey,
    /// Not exactly one of `key`, `keyless` and `certificate`.
    #[error("give exactly one of key, keyless or certificate")]
    NotOneKind,
    /// Inline data or a file that cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `key` is not a usable public key.
    #[error("key: {0}")]
    Key(KeyError),
    /// `ctlog.trustedRoot` is not a usable trusted root.
    #[error("ctlog.trustedRoot: {0}")]
    CtlogRoot(SigstoreTrustError),
    /// `keyless.trustedRoot` is not a usable trusted root.
    #[error(transparent)]
    KeylessRoot(SigstoreTrustError),
    /// `keyless.identities` is empty.
    #[error("keyless.identities is empty: name who may sign")]
    NoIdentities,
    /// An identity gives both or neither of a field and its `RegExp`.
    #[error("an identity needs exactly one of {field} and {field}RegExp")]
    IdentityField {
        /// `subject` or `issuer`.
        field: &'static str,
    },
    /// An identity's regular expression does not compile.
    #[error(transparent)]
    IdentityRegex(SigstoreTrustError),
    /// `certificate.anchors` is empty.
    #[error("certificate.anchors is empty")]
    NoAnchors,
    /// `certificate.anchors` holds no usable certificate.
    #[error("certificate.anchors: {0}")]
    Anchors(ChainError),
}

/// Why inline data or a referenced file (`data` or `path`) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Both or neither of `data` and `path`.
    #[error("{field}: give exactly one of data or path")]
    NotOne {
        /// The field.
        field: &'static str,
    },
    /// The file cannot be read.
    #[error("{field}: {source}")]
    Read {
        /// The field.
        field: &'static str,
        /// Why.
        source: ReadError,
    },
    /// The file is not UTF-8 text.
    #[error("{field}: {} is not text", path.display())]
    NotText {
        /// The field.
        field: &'static str,
        /// The file, joined to the policy's folder.
        path: PathBuf,
    },
}
