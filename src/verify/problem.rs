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
    /// A signed file's permission bits differ from the ones it had when it
    /// verified (`modelgate watch`; the signature does not cover modes).
    ModeChanged {
        /// The file.
        path: String,
        /// The bits when it verified.
        expected: u32,
        /// The bits now.
        actual: u32,
    },
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
            Self::ModeChanged { .. } => "mode-changed",
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
            | Self::NotRegular { path, .. }
            | Self::ModeChanged { path, .. } => Some(path),
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
            Self::ModeChanged {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path}: mode changed from {expected:04o} to {actual:04o} after it verified; set it back (chmod {expected:04o}) or find out who changed it"
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(problems: Vec<Problem>) -> Rejection {
        Rejection {
            problems,
            evidence: Box::default(),
        }
    }

    fn unreadable() -> Problem {
        Problem::CouldNotCheck("weights.bin: permission denied".into())
    }

    fn modified() -> Problem {
        Problem::Modified {
            path: "weights.bin".into(),
            expected: "aa".into(),
            actual: "bb".into(),
        }
    }

    /// One of each kind.
    fn every_kind() -> Vec<Problem> {
        vec![
            Problem::Signature("bad".into()),
            Problem::EmptyManifest,
            modified(),
            Problem::SizeChanged {
                path: "s".into(),
                expected: 1,
                actual: 2,
            },
            Problem::LayerDiffers {
                path: "l".into(),
                expected: "aa".into(),
                layer: "cc".into(),
            },
            Problem::Missing {
                path: "m".into(),
                expected: "aa".into(),
            },
            Problem::Extra { path: "e".into() },
            Problem::Symlink { path: "y".into() },
            Problem::NotRegular {
                path: "f".into(),
                what: "is a FIFO".into(),
            },
            unreadable(),
            Problem::Threshold {
                rule: "r".into(),
                required: 2,
                verified: vec![],
            },
            Problem::PinnedDigest {
                expected: "aa".into(),
                actual: "bb".into(),
            },
            Problem::NotCovered {
                pattern: "*.bin".into(),
            },
            Problem::Policy("no rule".into()),
        ]
    }

    #[test]
    fn a_model_that_could_not_be_checked_at_all_is_an_error() {
        let r = rejection(vec![unreadable()]);
        assert_eq!(r.verdict(), Verdict::Error);
        assert_eq!(r.summary(), "model could not be verified: 1 problem");
        let r = rejection(vec![unreadable(), unreadable()]);
        assert_eq!(r.verdict(), Verdict::Error);
        assert_eq!(r.summary(), "model could not be verified: 2 problems");
    }

    #[test]
    fn anything_found_wrong_is_a_rejection_even_beside_what_could_not_be_checked() {
        for problem in every_kind() {
            if problem.is_could_not_check() {
                continue;
            }
            let kind = problem.kind();
            let r = rejection(vec![unreadable(), problem]);
            assert_eq!(r.verdict(), Verdict::Rejected, "{kind}");
            assert_eq!(r.summary(), "model was rejected: 2 problems", "{kind}");
        }
        let r = Rejection::new(modified(), Evidence::default());
        assert_eq!(r.verdict(), Verdict::Rejected);
        assert_eq!(r.summary(), "model was rejected: 1 problem");
    }

    #[test]
    fn only_an_unreadable_input_counts_as_could_not_check() {
        let could_not: Vec<&str> = every_kind()
            .iter()
            .filter(|p| p.is_could_not_check())
            .map(Problem::kind)
            .collect();
        assert_eq!(could_not, ["unreadable"]);
    }

    #[test]
    fn every_kind_has_its_own_name_for_logs_and_measurements() {
        let kinds: Vec<&str> = every_kind().iter().map(Problem::kind).collect();
        assert_eq!(
            kinds,
            [
                "signature",
                "empty-manifest",
                "modified",
                "size-changed",
                "layer-differs",
                "missing",
                "extra",
                "symlink",
                "not-regular",
                "unreadable",
                "threshold",
                "pinned-digest",
                "not-covered",
                "policy",
            ]
        );
    }

    #[test]
    fn problems_about_a_file_name_it_and_the_others_name_none() {
        let problems = every_kind();
        let with_path: Vec<(&str, &str)> = problems
            .iter()
            .filter_map(|p| Some((p.kind(), p.path()?)))
            .collect();
        assert_eq!(
            with_path,
            [
                ("modified", "weights.bin"),
                ("size-changed", "s"),
                ("layer-differs", "l"),
                ("missing", "m"),
                ("extra", "e"),
                ("symlink", "y"),
                ("not-regular", "f"),
            ]
        );
    }

    #[test]
    fn each_message_names_what_is_wrong_and_what_to_do() {
        let text = |p: Problem| p.to_string();
        assert_eq!(
            text(Problem::Threshold {
                rule: "release".into(),
                required: 2,
                verified: vec![],
            }),
            "rule release needs signatures from 2 distinct authorities, 0 verified; add the missing signatures"
        );
        assert_eq!(
            text(Problem::Threshold {
                rule: "release".into(),
                required: 3,
                verified: vec!["key-a".into(), "key-b".into()],
            }),
            "rule release needs signatures from 3 distinct authorities, 2 verified (key-a, key-b); add the missing signatures"
        );
        let layer = text(Problem::LayerDiffers {
            path: "model.bin".into(),
            expected: "aa".into(),
            layer: "cc".into(),
        });
        assert!(
            layer.starts_with(
                "model.bin: the registry's manifest gives its blob digest sha256:cc, but the file is signed with sha256:aa; rejected from the manifest, before any download"
            ),
            "{layer}"
        );
        assert_eq!(
            text(Problem::PinnedDigest {
                expected: "aa".into(),
                actual: "bb".into(),
            }),
            "the signed root digest is sha256:bb, but the policy pins sha256:aa; this is not the model the policy names"
        );
        assert_eq!(
            text(Problem::NotCovered {
                pattern: "*.bin".into()
            }),
            "the policy requires the signature to cover \"*.bin\", and no signed file matches it; sign the model with those files"
        );
        assert_eq!(
            text(Problem::NotRegular {
                path: "pipe".into(),
                what: "is a FIFO".into(),
            }),
            "pipe: is a FIFO; only regular files can be part of a model"
        );
        assert_eq!(
            text(unreadable()),
            "could not check: weights.bin: permission denied"
        );
        assert_eq!(
            text(Problem::Signature("not by a trusted key".into())),
            "signature rejected: not by a trusted key"
        );
        assert_eq!(
            text(Problem::Policy("no rule matches".into())),
            "no rule matches"
        );
    }
}
