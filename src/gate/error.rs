//! The error of a run that cannot reach a verdict: a setting that cannot
//! be used, unreadable input, a registry that cannot be used, I/O. Each is
//! [`crate::verify::Verdict::Error`] (exit 2), except content a registry
//! served wrong, which is a rejection.

use std::path::PathBuf;

use super::settings::SettingsError;
use super::stage::StageError;
use crate::io::ReadError;
use crate::oci::OciError;
use crate::oms::sign::SignError;
use crate::policy::PolicyError;
use crate::trust;
use crate::verify::Verdict;

/// Something that stops a run from reaching a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// A setting (a flag or a `MODELGATE_*` variable) cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The policy file cannot be used.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A registry could not be used, or served wrong content.
    #[error(transparent)]
    Registry(#[from] OciError),
    /// The model could not be staged or placed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file holds no usable key.
    #[error("key {path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why it is unusable.
        source: trust::KeyError,
    },
    /// A certificate file holds no usable certificate.
    #[error("certificate {path}: {source}")]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// Why it is unusable.
        source: trust::ChainError,
    },
    /// A model could not be hashed or signed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl Error {
    /// [`Verdict::Rejected`] for content a registry served wrong; otherwise
    /// [`Verdict::Error`].
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::Registry(e) => e.verdict(),
            _ => Verdict::Error,
        }
    }
}
