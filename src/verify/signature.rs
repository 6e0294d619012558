//! A signature as verification receives it: its bytes and where they came
//! from. Reading files and registries happens at the edges (`gate`); the
//! core only sees bytes, and names their origin in every message.

use std::fmt;
use std::path::PathBuf;

use crate::io::ReadError;

/// Where a signature came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file given by the user (`--signature`, `MODELGATE_SIGNATURE`).
    File(PathBuf),
    /// A bundle found in the registry, attached to the model.
    Registry {
        /// `oci://registry/repository@sha256:<the signature's manifest>`.
        reference: String,
        /// How it was found.
        via: Via,
    },
}

/// How a signature in a registry was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The OCI referrers API, or its tag-schema fallback.
    Referrers,
    /// cosign's `sha256-<digest>.sig` / `.att` tags.
    CosignTag,
}

impl Via {
    /// `referrers` or `cosign-tag`, as the measurement records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Referrers => "referrers",
            Self::CosignTag => "cosign-tag",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Registry {
                reference,
                via: Via::Referrers,
            } => write!(f, "{reference} (referrer)"),
            Self::Registry {
                reference,
                via: Via::CosignTag,
            } => write!(f, "{reference} (cosign tag)"),
        }
    }
}

/// One signature to check: its origin and its bytes, or why they could not
/// be read (a rejection that says "could not check", or a disregarded
/// candidate when other signatures meet the rule).
#[derive(Clone, Debug)]
pub struct Signature {
    /// Where it came from.
    pub origin: Origin,
    /// Its bytes (bounded by [`crate::MAX_SIGNATURE_BYTES`] when read).
    pub bytes: Result<Vec<u8>, ReadError>,
}

impl Signature {
    /// A signature whose bytes are at hand.
    pub fn new(origin: Origin, bytes: Vec<u8>) -> Self {
        Self {
            origin,
            bytes: Ok(bytes),
        }
    }

    /// The file's path, for a signature given as a file.
    pub fn file(&self) -> Option<&std::path::Path> {
        match &self.origin {
            Origin::File(path) => Some(path),
            Origin::Registry { .. } => None,
        }
    }
}
