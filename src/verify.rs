//! Verifying a model against a signature: the signature first, then every
//! file, and every problem reported, not just the first.
//!
//! [`verify`] returns `Result<Verified, Rejection>`: there is no boolean to
//! forget and no path that starts a model it did not check. A [`Verified`] is
//! only built after the signature verified with a trusted key, the manifest
//! parsed cleanly, and the model on disk matched it exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq;

pub use crate::authenticate::Signer;
use crate::authenticate::authenticate;
use crate::bundle::{self, Bundle};
use crate::hashing;
use crate::manifest::{IgnoreRules, Manifest, Method, ResourceKey};
use crate::model_dir::{self, EntryKind, ModelRoot};
use crate::resources::{self, HashTask};
use crate::trust::TrustedMaterial;
use crate::{MAX_SIGNATURE_BYTES, read_bounded};

/// What to verify, against what.
pub struct Request<'a> {
    /// The model folder or file.
    pub model: &'a Path,
    /// The signature (Sigstore bundle) file.
    pub signature: &'a Path,
    /// What the signature must be made with: trusted keys or certificate anchors.
    pub trust: &'a TrustedMaterial,
    /// More root-relative paths to exclude, besides the signed ones.
    pub extra_ignores: &'a [String],
    /// Tolerate files on disk that the signature does not list.
    pub ignore_unsigned_files: bool,
    /// Hashing threads.
    pub workers: usize,
    /// Called with the number of bytes hashed, for a progress bar.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// What is known about a verification so far; a measurement records it
/// whatever the verdict.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// Hex SHA-256 of the signature file's bytes.
    pub signature_sha256: Option<String>,
    /// The signed manifest, once its signature verified.
    pub manifest: Option<Manifest>,
    /// The signer, once the signature verified.
    pub signer: Option<Signer>,
    /// Paths excluded from the comparison (signed and extra ignores).
    pub ignored: Vec<String>,
}

/// A model that matched its signature, file for file.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The verified manifest: every resource and its digest.
    pub manifest: Manifest,
    /// Who signed it.
    pub signer: Signer,
    /// Hex SHA-256 of the signature file.
    pub signature_sha256: String,
    /// Paths excluded from the comparison.
    pub ignored: Vec<String>,
    /// Files present but unsigned, tolerated by `--ignore-unsigned-files`.
    pub unsigned_tolerated: Vec<String>,
}

/// One reason a model is not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The signature is malformed, does not verify, or is not by a trusted key.
    Signature(String),
    /// The signature verified but lists no files.
    EmptyManifest,
    /// A signed file's content differs.
    Modified {
        /// Resource name (file, or `file:start:end` for a shard).
        path: String,
        /// Signed digest, hex.
        expected: String,
        /// Digest on disk, hex.
        actual: String,
    },
    /// A sharded file's size differs, so its shards cannot match.
    SizeChanged {
        /// The file.
        path: String,
        /// Size the signature implies.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A signed file is not on disk.
    Missing {
        /// Resource name.
        path: String,
        /// Signed digest, hex.
        expected: String,
    },
    /// A file on disk that the signature does not list.
    Extra {
        /// The file.
        path: String,
    },
    /// A symlink where the signature does not allow symlinks.
    Symlink {
        /// The link.
        path: String,
    },
    /// A FIFO, socket, device, or a symlink to something other than a file.
    NotRegular {
        /// The entry.
        path: String,
        /// What it is.
        what: String,
    },
    /// Something could not be read, so it could not be checked.
    CouldNotCheck(String),
}

impl Problem {
    /// Whether this problem only means "could not check" (exit 2) rather than
    /// "checked and wrong" (exit 1).
    pub fn is_could_not_check(&self) -> bool {
        matches!(self, Self::CouldNotCheck(_))
    }

    /// A short machine-readable kind for logs and measurements.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Signature(_) => "signature",
            Self::EmptyManifest => "empty-manifest",
            Self::Modified { .. } => "modified",
            Self::SizeChanged { .. } => "size-changed",
            Self::Missing { .. } => "missing",
            Self::Extra { .. } => "extra",
            Self::Symlink { .. } => "symlink",
            Self::NotRegular { .. } => "not-regular",
            Self::CouldNotCheck(_) => "unreadable",
        }
    }

    /// The path the problem is about, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Modified { path, .. }
            | Self::SizeChanged { path, .. }
            | Self::Missing { path, .. }
            | Self::Extra { path }
            | Self::Symlink { path }
            | Self::NotRegular { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signature(why) => write!(f, "signature rejected: {why}"),
            Self::EmptyManifest => write!(
                f,
                "the signature lists no files; an empty model is never accepted"
            ),
            Self::Modified {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path}: modified: expected digest {expected}, found {actual}; restore the file from the signed source, or re-sign if the change is intended"
            ),
            Self::SizeChanged {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path}: modified: expected {expected} bytes, found {actual}; restore the file from the signed source"
            ),
            Self::Missing { path, expected } => write!(
                f,
                "{path}: missing: signed with digest {expected} but not on disk; restore it, or re-sign without it"
            ),
            Self::Extra { path } => write!(
                f,
                "{path}: extra: on disk but not signed; remove it, re-sign the model with it, or pass --ignore-unsigned-files"
            ),
            Self::Symlink { path } => write!(
                f,
                "{path}: is a symbolic link and the signature does not allow symlinks; replace it with the signed file"
            ),
            Self::NotRegular { path, what } => write!(
                f,
                "{path}: {what}; only regular files can be part of a model"
            ),
            Self::CouldNotCheck(why) => write!(f, "could not check: {why}"),
        }
    }
}

/// A model that must not be used, with every reason found.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// Every problem found, sorted by path.
    pub problems: Vec<Problem>,
    /// What was established before the verdict (boxed: it holds the whole
    /// manifest, and the error path should not make every `Result` large).
    pub evidence: Box<Evidence>,
}

impl Rejection {
    fn new(problem: Problem, evidence: Evidence) -> Self {
        Self {
            problems: vec![problem],
            evidence: Box::new(evidence),
        }
    }

    /// 1 when the model or signature was checked and found wrong; 2 when it
    /// could not be checked at all. Both mean: do not start.
    pub fn exit_code(&self) -> i32 {
        if self.problems.iter().all(Problem::is_could_not_check) {
            2
        } else {
            1
        }
    }
}

impl Rejection {
    /// One line: the verdict and how many problems back it.
    pub fn summary(&self) -> String {
        let verdict = if self.exit_code() == 2 {
            "could not be verified"
        } else {
            "was rejected"
        };
        let n = self.problems.len();
        format!(
            "model {verdict}: {n} problem{}",
            if n == 1 { "" } else { "s" }
        )
    }
}

/// Verifies `req.model` against `req.signature`, signed as `req.trust` requires.
pub fn verify(req: &Request<'_>) -> Result<Verified, Rejection> {
    let mut evidence = Evidence::default();
    let (manifest, signer) = match check_signature(req, &mut evidence) {
        Ok(v) => v,
        Err(p) => return Err(Rejection::new(p, evidence)),
    };
    evidence.signer = Some(signer.clone());
    let problems = if manifest.resources.is_empty() {
        vec![Problem::EmptyManifest]
    } else {
        match ModelRoot::open(req.model) {
            Err(e) => vec![Problem::CouldNotCheck(e.to_string())],
            Ok(root) => {
                let mut ignores: Vec<String> = manifest.serialization.ignore_paths.clone();
                ignores.extend(req.extra_ignores.iter().cloned());
                ignores.extend(model_dir::relative_inside(req.model, req.signature));
                let rules = IgnoreRules::new(&ignores);
                evidence.ignored = rules.to_sorted_vec();
                let (problems, unsigned) = compare(req, &root, &rules, &manifest);
                if problems.is_empty() {
                    return Ok(Verified {
                        manifest,
                        signer,
                        signature_sha256: evidence.signature_sha256.unwrap_or_default(),
                        ignored: evidence.ignored,
                        unsigned_tolerated: unsigned,
                    });
                }
                problems
            }
        }
    };
    evidence.manifest = Some(manifest);
    Err(Rejection {
        problems,
        evidence: Box::new(evidence),
    })
}

/// Reads the bundle, checks its signature against the trusted material, and only
/// then parses the manifest from the exact signed bytes.
fn check_signature(
    req: &Request<'_>,
    evidence: &mut Evidence,
) -> Result<(Manifest, Signer), Problem> {
    let bytes = read_bounded("signature", req.signature, MAX_SIGNATURE_BYTES)
        .map_err(|e| Problem::CouldNotCheck(e.to_string()))?;
    evidence.signature_sha256 = Some(hex::encode(hashing::sha256(&bytes)));
    // Each large buffer (file bytes, bundle, PAE) is dropped as soon as the
    // next form exists: a 10,000-file signature is a few MB in each form.
    let bundle = Bundle::from_json(&bytes).map_err(|e| Problem::Signature(e.to_string()))?;
    let signed = bundle
        .signed_payload()
        .map_err(|e| Problem::Signature(e.to_string()))?;
    let pae = bundle::pae(&signed.payload_type, &signed.payload);
    let signer =
        authenticate(req.trust, &bytes, &bundle, &signed, &pae).map_err(Problem::Signature)?;
    drop((bytes, bundle));
    drop(pae);
    if signed.payload_type != bundle::IN_TOTO_PAYLOAD_TYPE {
        return Err(Problem::Signature(format!(
            "the payload type is {:?}, expected {}",
            signed.payload_type,
            bundle::IN_TOTO_PAYLOAD_TYPE
        )));
    }
    let manifest =
        Manifest::from_statement(&signed.payload).map_err(|e| Problem::Signature(e.to_string()))?;
    Ok((manifest, signer))
}

/// Compares the model on disk with the manifest. Returns every problem and
/// the unsigned files tolerated by `--ignore-unsigned-files`.
fn compare(
    req: &Request<'_>,
    root: &ModelRoot,
    rules: &IgnoreRules,
    manifest: &Manifest,
) -> (Vec<Problem>, Vec<String>) {
    let serialization = &manifest.serialization;
    let mut expected: BTreeMap<&str, Vec<(&ResourceKey, &[u8])>> = BTreeMap::new();
    for (key, digest) in &manifest.resources {
        expected
            .entry(key.path.as_str())
            .or_default()
            .push((key, digest));
    }
    let entries = match root.walk(rules) {
        Ok(entries) => entries,
        Err(e) => return (vec![Problem::CouldNotCheck(e.to_string())], Vec::new()),
    };
    let mut problems = Vec::new();
    let mut unsigned = Vec::new();
    let mut seen = BTreeSet::new();
    let mut tasks = Vec::new();
    let mut wanted: Vec<&[u8]> = Vec::new();
    for entry in &entries {
        let signed = expected.get(entry.name.as_str());
        if signed.is_some() {
            seen.insert(entry.name.as_str());
        } else {
            let empty = entry.kind == EntryKind::File { size: 0 };
            if empty && matches!(serialization.method, Method::Shards { .. }) {
                // An empty file has no shards, so the format cannot list it;
                // the reference skips it the same way.
                continue;
            }
            if req.ignore_unsigned_files {
                unsigned.push(entry.name.clone());
                continue;
            }
        }
        let path = entry.name.clone();
        match &entry.kind {
            EntryKind::Symlink if !serialization.allow_symlinks => {
                problems.push(Problem::Symlink { path });
                continue;
            }
            EntryKind::Special(what) => {
                problems.push(Problem::NotRegular {
                    path,
                    what: format!("is {what}"),
                });
                continue;
            }
            _ => {}
        }
        let Some(signed) = signed else {
            problems.push(Problem::Extra { path });
            continue;
        };
        let size = match resources::entry_size(root, &entry.name, &entry.kind, serialization) {
            Ok(size) => size,
            Err(e) => {
                problems.push(Problem::NotRegular {
                    path: entry.name.clone(),
                    what: e.to_string(),
                });
                continue;
            }
        };
        let on_disk = ResourceKey::for_file(&entry.name, size, serialization.method);
        if let Method::Shards { .. } = serialization.method {
            let signed_keys: BTreeSet<&ResourceKey> = signed.iter().map(|(k, _)| *k).collect();
            if on_disk.iter().collect::<BTreeSet<_>>() != signed_keys {
                let signed_size = signed
                    .iter()
                    .filter_map(|(k, _)| k.range.map(|r| r.1))
                    .max()
                    .unwrap_or(0);
                problems.push(Problem::SizeChanged {
                    path: entry.name.clone(),
                    expected: signed_size,
                    actual: size,
                });
                continue;
            }
        }
        for (key, digest) in signed {
            tasks.push(HashTask::new((*key).clone(), size));
            wanted.push(digest);
        }
    }
    for (path, signed) in &expected {
        if !seen.contains(path) {
            for (key, digest) in signed {
                problems.push(Problem::Missing {
                    path: key.name(),
                    expected: hex::encode(digest),
                });
            }
        }
    }
    let digests = resources::hash_all(root, &tasks, serialization, req.workers, req.progress);
    for ((task, want), got) in tasks.iter().zip(wanted).zip(digests) {
        match got {
            Ok(actual) if bool::from(actual.ct_eq(want)) => {}
            Ok(actual) => problems.push(Problem::Modified {
                path: task.key.name(),
                expected: hex::encode(want),
                actual: hex::encode(actual),
            }),
            Err(e) => problems.push(Problem::CouldNotCheck(e.to_string())),
        }
    }
    problems.sort_by(|a, b| a.path().cmp(&b.path()));
    (problems, unsigned)
}
