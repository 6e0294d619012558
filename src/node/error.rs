//! Why something below the root could not be read: the root itself, a
//! file, a driver library. Messages name the path as seen inside the root.

use std::path::PathBuf;

use nix::errno::Errno;

/// The root folder cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the root {}: {}", .path.display(), describe(*.errno))]
pub(super) struct RootError {
    /// The root, as given.
    pub(super) path: PathBuf,
    /// Why.
    pub(super) errno: Errno,
}

/// Why a file below the root could not be read or hashed.
#[derive(Debug, thiserror::Error)]
pub(super) enum FileError {
    /// It could not be opened.
    #[error("{}", describe(*.0))]
    Open(Errno),
    /// Reading it failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// It holds more than was allowed.
    #[error("it is larger than {limit} bytes")]
    TooLarge {
        /// The bound.
        limit: u64,
    },
    /// It is not a regular file.
    #[error("it is {}, not a regular file", kind(*.mode))]
    NotRegular {
        /// Its `st_mode`.
        mode: u32,
    },
    /// It is larger than modelgate hashes.
    #[error("it is {size} bytes, larger than the {limit} bytes modelgate hashes")]
    TooLargeToHash {
        /// Its size.
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// It grew past the bound while it was hashed.
    #[error("it grew past {limit} bytes while it was read")]
    Grew {
        /// The bound.
        limit: u64,
    },
}

/// Why a driver library could not be measured; each message names it.
#[derive(Debug, thiserror::Error)]
pub(super) enum LibraryError {
    /// It could not be stat'ed.
    #[error("cannot stat {path}: {}", describe(*.errno))]
    Stat {
        /// The library, inside the root.
        path: String,
        /// Why.
        errno: Errno,
    },
    /// It could not be opened.
    #[error("cannot open {path}: {}", describe(*.errno))]
    Open {
        /// The library, inside the root.
        path: String,
        /// Why.
        errno: Errno,
    },
    /// It could not be hashed.
    #[error("{path}: {source}")]
    Hash {
        /// The library, inside the root.
        path: String,
        /// Why.
        source: FileError,
    },
    /// It is neither a file nor a symbolic link.
    #[error("{path}: it is {}, not a library file", kind(*.mode))]
    NotLibrary {
        /// The entry, inside the root.
        path: String,
        /// Its `st_mode`.
        mode: u32,
    },
    /// The symbolic link could not be read.
    #[error("cannot read the link {path}: {}", describe(*.errno))]
    ReadLink {
        /// The link, inside the root.
        path: String,
        /// Why.
        errno: Errno,
    },
    /// The link's target could not be opened.
    #[error("cannot open {path} -> {target}: {}", describe(*.errno))]
    OpenTarget {
        /// The link, inside the root.
        path: String,
        /// What it says.
        target: String,
        /// Why.
        errno: Errno,
    },
    /// The link's target could not be hashed.
    #[error("{path} -> {target}: {source}")]
    HashTarget {
        /// The link, inside the root.
        path: String,
        /// What it says.
        target: String,
        /// Why.
        source: FileError,
    },
}

/// What a file of this `st_mode` is, in words.
fn kind(mode: u32) -> &'static str {
    use nix::sys::stat::SFlag;
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a folder",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "of an unknown file type",
    }
}

/// An errno in words a node operator can act on.
pub(super) fn describe(errno: Errno) -> String {
    match errno {
        Errno::EACCES | Errno::EPERM => "permission denied; the verifier cannot read it".into(),
        Errno::ENOTDIR => "a folder on its path is not a folder".into(),
        Errno::ELOOP => "too many symbolic links, or a symbolic link where none may be".into(),
        Errno::EXDEV => "it leads through a magic link".into(),
        Errno::ENOSYS => "opening files inside a root needs openat2 (Linux 5.6 or later)".into(),
        other => other.desc().to_string(),
    }
}
