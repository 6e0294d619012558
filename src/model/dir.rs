//! The model on disk: listing it and opening its files without ever leaving it.
//!
//! Nothing here resolves a path string below the model root. The walk reads
//! each directory through a descriptor opened relative to its parent with
//! `O_NOFOLLOW`, and [`ModelRoot::open_file`] opens a file one component at a
//! time the same way, then checks with `fstat` that the descriptor is a regular
//! file. The caller hashes that same descriptor, so a file swapped for a
//! symlink or a FIFO between the walk and the read is caught, not followed.
//!
//! Symlinks are opened only when the signature says `allow_symlinks`, and then
//! with `openat2(RESOLVE_BENEATH)`: the kernel refuses any target outside the
//! root (absolute targets and `..` escapes alike).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};

use super::paths::{IgnoreRules, SINGLE_FILE_NAME};

/// What kind of thing a path below the model root is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of this many bytes (at the time of the walk).
    File {
        /// Size from `fstatat` during the walk.
        size: u64,
    },
    /// A symbolic link (not followed by the walk).
    Symlink,
    /// A FIFO, socket or device: never part of a model.
    Special(&'static str),
}

/// One non-directory entry found below the model root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the root, components joined by `/`.
    pub name: String,
    /// What the entry is.
    pub kind: EntryKind,
}

/// Why the model could not be listed or a file in it not opened.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The model path itself cannot be used.
    #[error("cannot open model {path}: {source}")]
    Root {
        /// The model path as given.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The model path is neither a folder nor a regular file.
    #[error("model {0} is neither a folder nor a regular file")]
    RootKind(PathBuf),
    /// A name below the root is not UTF-8, so no manifest can name it.
    #[error("{0:?} is not a UTF-8 file name; the signature format cannot name it")]
    NotUtf8(PathBuf),
    /// Reading a directory or opening a file failed.
    #[error("{path}: {reason}")]
    Entry {
        /// Path relative to the root.
        path: String,
        /// What went wrong, in words a user can act on.
        reason: String,
    },
}

impl FsError {
    fn entry(path: &str, errno: Errno) -> Self {
        let reason = match errno {
            Errno::ELOOP => "is a symbolic link, and the signature does not allow symlinks".into(),
            Errno::ENOTDIR => "a parent folder was replaced by a file or a symlink".into(),
            Errno::EXDEV => "is a symbolic link that leads outside the model root".into(),
            Errno::ENOENT => "does not exist".into(),
            Errno::EACCES | Errno::EPERM => "permission denied; the verifier cannot read it".into(),
            Errno::ENOSYS => "following symlinks safely needs openat2 (Linux 5.6 or later)".into(),
            other => other.desc().to_string(),
        };
        Self::Entry {
            path: path.to_string(),
            reason,
        }
    }
}

/// What `stat` says of a path, enough to tell that it changed without
/// reading it: which inode it is, its type and permission bits, its size,
/// and its modification and status-change times (a write moves `mtime`;
/// a write, a `chmod`, a new hard link or a rename of it moves `ctime`,
/// which no unprivileged call can set back). Reading a file changes none
/// of these (`atime` is left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The device.
    pub dev: u64,
    /// The inode.
    pub ino: u64,
    /// `st_mode`: the type and the permission bits.
    pub mode: u32,
    /// Bytes.
    pub size: u64,
    /// Modification time, seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Status-change time, seconds and nanoseconds.
    pub ctime: (i64, i64),
}

impl Stamp {
    fn of(stat: &FileStat) -> Self {
        Self {
            dev: stat.st_dev,
            ino: stat.st_ino,
            mode: stat.st_mode,
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mtime: (stat.st_mtime, stat.st_mtime_nsec),
            ctime: (stat.st_ctime, stat.st_ctime_nsec),
        }
    }

    /// Whether it is a folder.
    pub fn is_dir(&self) -> bool {
        self.mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()
    }

    /// The permission bits (`0o644`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// An opened model: a folder held by descriptor, or a single regular file.
#[derive(Debug)]
pub struct ModelRoot {
    path: PathBuf,
    root: Root,
}

#[derive(Debug)]
enum Root {
    Dir(OwnedFd),
    File(File),
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
/// `O_NONBLOCK` so that opening a FIFO cannot hang; it changes nothing for
/// regular files. `O_NOCTTY` so that a terminal device is never adopted.
const FILE_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC);

impl ModelRoot {
    /// Opens the model at `path`: a folder, or a regular file for a one-file
    /// model. The path itself may pass through symlinks (a Kubernetes volume
    /// mount often does); nothing below it may.
    pub fn open(path: &Path) -> Result<Self, FsError> {
        let root_err = |source| FsError::Root {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(root_err)?;
        let root = if meta.is_dir() {
            let fd = nix::fcntl::open(
                path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| root_err(e.into()))?;
            Root::Dir(fd)
        } else if meta.is_file() {
            let fd = nix::fcntl::open(
                path,
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| root_err(e.into()))?;
            let file = File::from(fd);
            if !file.metadata().map_err(root_err)?.is_file() {
                return Err(FsError::RootKind(path.to_path_buf()));
            }
            Root::File(file)
        } else {
            return Err(FsError::RootKind(path.to_path_buf()));
        };
        Ok(Self {
            path: path.to_path_buf(),
            root,
        })
    }

    /// The model path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the model is a single file rather than a folder.
    pub fn is_single_file(&self) -> bool {
        matches!(self.root, Root::File(_))
    }

    /// The model's name as the reference signer records it: the last component
    /// of the path, or of its canonical form when the path ends in `.` or `..`.
    pub fn name(&self) -> String {
        super::paths::display_name(&self.path)
    }

    /// Lists every non-directory entry below the root that `ignore` does not
    /// exclude. Ignored folders are not descended into.
    pub fn walk(&self, ignore: &IgnoreRules) -> Result<Vec<Entry>, FsError> {
        match &self.root {
            Root::File(file) => {
                let size = file
                    .metadata()
                    .map_err(|e| FsError::Root {
                        path: self.path.clone(),
                        source: e,
                    })?
                    .len();
                Ok(vec![Entry {
                    name: SINGLE_FILE_NAME.into(),
                    kind: EntryKind::File { size },
                }])
            }
            Root::Dir(fd) => {
                let mut out = Vec::new();
                walk_dir(fd, "", ignore, &mut |name, _, kind| {
                    if let Kind::Entry(kind) = kind {
                        out.push(Entry { name, kind });
                    }
                })?;
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            }
        }
    }

    /// The [`Stamp`] of every path below the root that `ignore` does not
    /// exclude, folders included, and of the root itself (named `""`; a
    /// one-file model has only its file, [`SINGLE_FILE_NAME`]). Nothing is
    /// read but the folders: a sweep of 10,000 files is 10,000 `fstatat`.
    pub fn survey(&self, ignore: &IgnoreRules) -> Result<BTreeMap<String, Stamp>, FsError> {
        let root_err = |e: io::Error| FsError::Root {
            path: self.path.clone(),
            source: e,
        };
        let mut out = BTreeMap::new();
        match &self.root {
            Root::File(file) => {
                let stat = nix::sys::stat::fstat(file).map_err(|e| root_err(e.into()))?;
                out.insert(SINGLE_FILE_NAME.to_string(), Stamp::of(&stat));
            }
            Root::Dir(fd) => {
                let stat = nix::sys::stat::fstat(fd).map_err(|e| root_err(e.into()))?;
                out.insert(String::new(), Stamp::of(&stat));
                walk_dir(fd, "", ignore, &mut |name, stat, _| {
                    out.insert(name, Stamp::of(stat));
                })?;
            }
        }
        Ok(out)
    }

    /// Opens the folder `name` below the root (`""`: the root itself),
    /// every component with `O_NOFOLLOW`.
    pub fn open_folder(&self, name: &str) -> Result<OwnedFd, FsError> {
        let Root::Dir(fd) = &self.root else {
            return Err(FsError::RootKind(self.path.clone()));
        };
        if name.is_empty() {
            return fd.try_clone().map_err(|e| FsError::Entry {
                path: ".".into(),
                reason: e.to_string(),
            });
        }
        let mut current: Option<OwnedFd> = None;
        for part in name.split('/') {
            let parent = current.as_ref().unwrap_or(fd);
            current = Some(
                openat(parent, part, DIR_FLAGS, Mode::empty())
                    .map_err(|e| FsError::entry(name, e))?,
            );
        }
        current.ok_or_else(|| FsError::entry(name, Errno::ENOENT))
    }

    /// Opens the regular file `name` (relative, `/`-separated, already
    /// checked by the caller to stay inside the root) for hashing.
    ///
    /// Returns the descriptor and its size from `fstat` on that descriptor.
    pub fn open_file(&self, name: &str, allow_symlinks: bool) -> Result<(File, u64), FsError> {
        let file = match &self.root {
            Root::File(file) if name == SINGLE_FILE_NAME => {
                file.try_clone().map_err(|e| FsError::Entry {
                    path: name.into(),
                    reason: e.to_string(),
                })?
            }
            Root::File(_) => return Err(FsError::entry(name, Errno::ENOENT)),
            Root::Dir(fd) if allow_symlinks => {
                File::from(open_beneath(fd, name).map_err(|e| FsError::entry(name, e))?)
            }
            Root::Dir(fd) => {
                File::from(open_no_follow(fd, name).map_err(|e| FsError::entry(name, e))?)
            }
        };
        let meta = file.metadata().map_err(|e| FsError::Entry {
            path: name.into(),
            reason: e.to_string(),
        })?;
        if !meta.is_file() {
            return Err(FsError::Entry {
                path: name.into(),
                reason: "is not a regular file".into(),
            });
        }
        Ok((file, meta.len()))
    }
}

/// Opens `name` below `dir`, every component with `O_NOFOLLOW`.
fn open_no_follow(dir: &OwnedFd, name: &str) -> Result<OwnedFd, Errno> {
    let mut parts = name.split('/').peekable();
    let mut current: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        let parent = current.as_ref().unwrap_or(dir);
        if parts.peek().is_none() {
            return openat(parent, part, FILE_FLAGS, Mode::empty());
        }
        current = Some(openat(parent, part, DIR_FLAGS, Mode::empty())?);
    }
    Err(Errno::ENOENT)
}

/// Opens `name` below `dir`, following symlinks only while they stay beneath it.
fn open_beneath(dir: &OwnedFd, name: &str) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(FILE_FLAGS.difference(OFlag::O_NOFOLLOW))
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(dir, name, how)
}

/// Calls `visit` with every path below `dir` that `ignore` does not
/// exclude, its `fstatat` and its kind, folders before what they hold.
fn walk_dir(
    dir: &OwnedFd,
    prefix: &str,
    ignore: &IgnoreRules,
    visit: &mut dyn FnMut(String, &FileStat, Kind),
) -> Result<(), FsError> {
    let here = if prefix.is_empty() { "." } else { prefix };
    let listing = dir.try_clone().map_err(|e| FsError::Entry {
        path: here.into(),
        reason: e.to_string(),
    })?;
    let mut names = Vec::new();
    for entry in Dir::from_fd(listing)
        .map_err(|e| FsError::entry(here, e))?
        .iter()
    {
        let entry = entry.map_err(|e| FsError::entry(here, e))?;
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let name = std::str::from_utf8(raw)
            .map_err(|_| FsError::NotUtf8(Path::new(prefix).join(OsStr::from_bytes(raw))))?
            .to_string();
        names.push(name);
    }
    // The d_type in each entry is not trusted (some filesystems report
    // DT_UNKNOWN): fstatat on the parent descriptor costs one syscall.
    for name in names {
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if ignore.is_ignored(&rel) {
            continue;
        }
        let stat = fstatat(dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| FsError::entry(&rel, e))?;
        match file_kind(&stat) {
            Kind::Dir => {
                let child = openat(dir, name.as_str(), DIR_FLAGS, Mode::empty())
                    .map_err(|e| FsError::entry(&rel, e))?;
                visit(rel.clone(), &stat, Kind::Dir);
                walk_dir(&child, &rel, ignore, visit)?;
            }
            kind => visit(rel, &stat, kind),
        }
    }
    Ok(())
}

enum Kind {
    Dir,
    Entry(EntryKind),
}

fn file_kind(stat: &FileStat) -> Kind {
    let format = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
    match format {
        SFlag::S_IFDIR => Kind::Dir,
        SFlag::S_IFREG => Kind::Entry(EntryKind::File {
            size: u64::try_from(stat.st_size).unwrap_or(0),
        }),
        SFlag::S_IFLNK => Kind::Entry(EntryKind::Symlink),
        SFlag::S_IFIFO => Kind::Entry(EntryKind::Special("a FIFO")),
        SFlag::S_IFSOCK => Kind::Entry(EntryKind::Special("a socket")),
        SFlag::S_IFCHR => Kind::Entry(EntryKind::Special("a character device")),
        SFlag::S_IFBLK => Kind::Entry(EntryKind::Special("a block device")),
        _ => Kind::Entry(EntryKind::Special("of an unknown file type")),
    }
}
