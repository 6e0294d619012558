//! The error of a command that cannot run to a verdict: bad arguments,
//! unreadable input, I/O. It maps to exit code 2.

use std::path::PathBuf;

use crate::io::ReadError;
use crate::oms::sign::SignError;
use crate::trust;

/// Something that stops a command from running to a verdict: bad arguments,
/// unreadable input, I/O. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
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
