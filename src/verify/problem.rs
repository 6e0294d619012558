//! Why a model is rejected: every problem found, and the verdict they add
//! up to.

use std::fmt;

use super::{Evidence, Verdict};

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
    /// A registry's layer for a signed file has another digest than the
    /// signature gives it: found from the manifest, before any download.
    LayerDiffers {
        /// The file.
        path: String,
        /// Signed digest, hex.
        expected: String,
        /// The layer's digest, hex.
        layer: String,
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
    /// Fewer distinct authorities signed than the rule requires.
    Threshold {
        /// The rule.
        rule: String,
        /// Distinct authorities required.
        required: usize,
        /// Authorities whose signatures verified.
        verified: Vec<String>,
    },
    /// The signed root digest is not the one the policy pins.
    PinnedDigest {
        /// Pinned digest, hex.
        expected: String,
        /// Signed digest, hex.
        actual: String,
    },
    /// A pattern the signature must cover matches no signed file.
    NotCovered {
        /// The glob from the policy.
        pattern: String,
    },
    /// No policy rule applies to the model.
    Policy(String),
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
            Self::LayerDiffers { .. } => "layer-differs",
            Self::SizeChanged { .. } => "size-changed",
            Self::Missing { .. } => "missing",
            Self::Extra { .. } => "extra",
            Self::Symlink { .. } => "symlink",
            Self::NotRegular { .. } => "not-regular",
            Self::CouldNotCheck(_) => "unreadable",
            Self::Threshold { .. } => "threshold",
            Self::PinnedDigest { .. } => "pinned-digest",
            Self::NotCovered { .. } => "not-covered",
            Self::Policy(_) => "policy",
        }
    }

    /// The path the problem is about, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Modified { path, .. }
            | Self::LayerDiffers { path, .. }
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
            Self::LayerDiffers {
                path,
                expected,
                layer,
            } => write!(
                f,
                "{path}: the registry's manifest gives its blob digest sha256:{layer}, but the file is signed with sha256:{expected}; rejected from the manifest, before any download: the artifact is not the signed model (re-pushed or altered); pull the digest that was signed"
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
            Self::Threshold {
                rule,
                required,
                verified,
            } => write!(
                f,
                "rule {rule} needs signatures from {required} distinct authorities, {} verified{}; add the missing signatures",
                verified.len(),
                if verified.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", verified.join(", "))
                }
            ),
            Self::PinnedDigest { expected, actual } => write!(
                f,
                "the signed root digest is sha256:{actual}, but the policy pins sha256:{expected}; this is not the model the policy names"
            ),
            Self::NotCovered { pattern } => write!(
                f,
                "the policy requires the signature to cover {pattern:?}, and no signed file matches it; sign the model with those files"
            ),
            Self::Policy(why) => write!(f, "{why}"),
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
    /// A rejection for one problem.
    pub fn new(problem: Problem, evidence: Evidence) -> Self {
        Self {
            problems: vec![problem],
            evidence: Box::new(evidence),
        }
    }

    /// [`Verdict::Rejected`] when the model or signature was checked and
    /// found wrong; [`Verdict::Error`] when it could not be checked at all.
    /// Both mean: do not start.
    pub fn verdict(&self) -> Verdict {
        if self.problems.iter().all(Problem::is_could_not_check) {
            Verdict::Error
        } else {
            Verdict::Rejected
        }
    }
}

impl Rejection {
    /// One line: the verdict and how many problems back it.
    pub fn summary(&self) -> String {
        let verdict = if self.verdict() == Verdict::Error {
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
