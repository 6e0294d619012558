//! modelgate: refuse to start an AI model that is not exactly the one that
//! was signed.
//!
//! The library holds all the logic; `src/main.rs` only parses arguments and
//! maps outcomes to exit codes, so tests and benchmarks run the same code as
//! the binary. Dependencies point one way:
//! `cli` -> `verify`/`attest` -> `resources` -> `hashing`/`model_dir`/`manifest`/`bundle`/`trust`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod attest;
pub mod authenticate;
pub mod bundle;
pub mod cli;
pub mod hashing;
pub mod logging;
pub mod manifest;
mod mapped;
pub mod measurement;
pub mod model_dir;
pub mod policy;
pub mod resources;
pub mod trust;
pub mod verify;
pub mod verify_bundle;

use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest signature file read (a sharded manifest of a very large model is
/// a few MiB; this bounds memory against a hostile file).
pub const MAX_SIGNATURE_BYTES: u64 = 256 << 20;
/// Largest key file read.
pub const MAX_KEY_BYTES: u64 = 1 << 20;

/// Something that stops a command from running to a verdict: bad arguments,
/// unreadable input, I/O. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read.
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        /// What the file is (signature, key, ...).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
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
    /// The model could not be listed or opened.
    #[error(transparent)]
    Fs(#[from] model_dir::FsError),
    /// A model file could not be hashed.
    #[error(transparent)]
    Hash(#[from] resources::HashError),
}

/// Reads a whole file, refusing anything larger than `limit` bytes.
pub fn read_bounded(what: &'static str, path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let err = |reason: String| Error::Read {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(err(format!("it is larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// Writes a file atomically: a temporary file in the same folder, flushed to
/// disk with mode `mode`, then renamed over `path`. Readers see the old file
/// or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".modelgate-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_bounded_refuses_a_file_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 17]).unwrap();
        assert_eq!(read_bounded("test", &path, 17).unwrap().len(), 17);
        let err = read_bounded("test", &path, 16).unwrap_err().to_string();
        assert!(err.contains("it is larger than 16 bytes"), "{err}");
    }
}
