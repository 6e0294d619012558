//! Reading untrusted files with a size bound, and writing files atomically.

use std::io::Read;
use std::path::{Path, PathBuf};

/// A file that could not be read, or was larger than its limit.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot read {what} {path}: {reason}")]
pub struct ReadError {
    /// What the file is (signature, key, ...).
    pub what: &'static str,
    /// Its path.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Largest signature file read (a sharded manifest of a very large model is
/// a few MiB; this bounds memory against a hostile file).
pub const MAX_SIGNATURE_BYTES: u64 = 256 << 20;
/// Largest key file read.
pub const MAX_KEY_BYTES: u64 = 1 << 20;

/// Reads a whole regular file, refusing anything larger than `limit` bytes.
///
/// Symbolic links are followed (Kubernetes mounts ConfigMaps and Secrets
/// through them), but the file must be a regular file: a FIFO, a device or
/// a socket named where a key or policy belongs is refused at once instead
/// of blocking the run or streaming without end. The open is non-blocking
/// for that reason; it has no effect on a regular file.
pub fn read_bounded(what: &'static str, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |reason: String| ReadError {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    let meta = file.metadata().map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err(
            "it is not a regular file (a FIFO, device, socket or folder); name the file itself"
                .into(),
        ));
    }
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

    #[test]
    fn read_bounded_refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for path in [fifo.as_path(), dir.path(), Path::new("/dev/zero")] {
            let err = read_bounded("key", path, 16).unwrap_err().to_string();
            assert!(err.contains("it is not a regular file"), "{err}");
        }
    }
}
