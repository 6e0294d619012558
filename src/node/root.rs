//! Opening files below a root folder as that root's own filesystem resolves
//! them, and reading them with a bound.
//!
//! The root is `/` in a pod, or the host's filesystem mounted somewhere
//! (`--host-root`), or a fake root in tests. Every open goes through
//! `openat2(RESOLVE_IN_ROOT)` on a descriptor of the root: the kernel
//! resolves `..` and absolute symlink targets as a chroot would, so a
//! symlink in a host root that says `/usr/lib64/libcuda.so.550.54.15` means
//! that file in the host root, and nothing outside the root is ever opened,
//! whatever the links say. (`RESOLVE_BENEATH`, which the model walk uses,
//! would refuse absolute targets instead, and the driver's own links may be
//! absolute.) Magic links (`/proc/self/fd/*`) are refused.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use sha2::{Digest, Sha256};

use super::error::{FileError, RootError};

/// `O_NONBLOCK` so that opening a FIFO cannot hang; it changes nothing for
/// regular files. `O_NOCTTY` so that a terminal device is never adopted.
pub(super) const FILE_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC);
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

/// A root folder held by descriptor.
pub(super) struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens the root itself. Its own path may pass through symlinks (a
    /// host mount often does); what is below it is resolved inside it.
    pub(super) fn open(path: &Path) -> Result<Self, RootError> {
        nix::fcntl::open(path, DIR_FLAGS, nix::sys::stat::Mode::empty())
            .map(|fd| Self { fd })
            .map_err(|errno| RootError {
                path: path.to_path_buf(),
                errno,
            })
    }

    /// Opens `path` (written as seen inside the root, `/dev/...`) for
    /// reading, following symlinks only inside the root.
    pub(super) fn open_file(&self, path: &str) -> Result<File, Errno> {
        self.open_in(path, FILE_FLAGS).map(File::from)
    }

    /// Opens the folder `path` (as seen inside the root).
    pub(super) fn open_dir(&self, path: &str) -> Result<OwnedFd, Errno> {
        self.open_in(path, DIR_FLAGS)
    }

    fn open_in(&self, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        // Relative to the root's descriptor; RESOLVE_IN_ROOT would also
        // accept the leading `/`, this keeps the intent plain.
        openat2(&self.fd, path.trim_start_matches('/'), how)
    }
}

/// Opens the folder `path`, written as seen inside the root `root`
/// (another container's `/proc/<pid>/root`), resolved inside that root
/// whatever its links say; the error says why, in words.
pub fn open_folder_in(root: &Path, path: &str) -> Result<OwnedFd, String> {
    let root = Root::open(root).map_err(|e| e.to_string())?;
    root.open_dir(path)
        .map_err(|errno| format!("{path}: {}", super::error::describe(errno)))
}

/// Reads an opened file whole, refusing more than `limit` bytes. Files in
/// `/proc` report size 0, so the bound is on what is read, not on `fstat`.
pub(super) fn read_limited(file: File, limit: u64) -> Result<Vec<u8>, FileError> {
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge { limit });
    }
    Ok(bytes)
}

/// The SHA-256 (lowercase hex) and size of an opened file, which must be a
/// regular file of at most `limit` bytes. The descriptor that was checked is
/// the one hashed, so a file swapped after the check is not read.
pub(super) fn hash_regular(file: File, limit: u64) -> Result<(String, u64), FileError> {
    let meta = file.metadata().map_err(FileError::Io)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular { mode: meta.mode() });
    }
    if meta.len() > limit {
        return Err(FileError::TooLargeToHash {
            size: meta.len(),
            limit,
        });
    }
    let mut hasher = Sha256::new();
    let mut reader = file.take(limit + 1);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FileError::Io(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    if size > limit {
        return Err(FileError::Grew { limit });
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// `name` in the in-root folder `dir`, for messages and records.
pub(super) fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}
