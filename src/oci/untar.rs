//! Unpacking a tar layer (plain, gzip or zstd) into the model folder, from
//! a blob whose digest has already been checked, refusing anything that
//! could reach outside the folder or carry more than files:
//!
//! - entry paths must be relative, with no `..`, `.`-only or empty
//!   components once a leading `./` is dropped;
//! - regular files and folders only, plus symbolic links whose target stays
//!   inside the folder and hard links to files already unpacked; never a
//!   device node, FIFO or socket, never a whiteout (`.wh.*`, an image-layer
//!   deletion marker), never a setuid, setgid or sticky bit;
//! - nothing is written through a symbolic link, and no entry replaces
//!   another (an archive that names a path twice is refused);
//! - the unpacked bytes are bounded: [`UNPACK_RATIO`] times the blob's
//!   size, which bounds a decompression bomb while leaving room for any
//!   real model (weights barely compress).
//!
//! Every refusal names the layer and the entry.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use super::layout::Compression;
use super::registry::OciError;

/// Unpacked bytes allowed per byte of (compressed) blob.
pub const UNPACK_RATIO: u64 = 64;

/// Where a tar layer goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// The model folder.
    pub root: PathBuf,
    /// The folder below it that entries are relative to.
    pub under: String,
    /// A folder every entry must lie in, if any.
    pub within: Option<String>,
    /// Only entries below this folder are unpacked, relative to it; the
    /// rest are skipped unread (`--subpath` in a container image).
    pub select: Option<String>,
    /// Stops the unpacking between two entries when raised (the pull's
    /// deadline passed, or it was cancelled).
    pub stop: Option<std::sync::Arc<Stop>>,
}

/// The stop signal of an unpacking that runs on a blocking thread while
/// its caller may give up: [`Stop::raise`] sets it and waits for the entry
/// in progress to end, so that nothing is written below the model once it
/// returns (the caller then removes the folder without a race).
#[derive(Debug, Default)]
pub struct Stop {
    raised: std::sync::atomic::AtomicBool,
    busy: std::sync::Mutex<()>,
}

impl Stop {
    /// Stops the unpacking, and waits until no entry is being written.
    pub fn raise(&self) {
        self.raised.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(self.busy.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn raised(&self) -> bool {
        self.raised.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Where an entry of a container image layer lands when only `folder` is the
/// model: `Some` with the path below the folder (`./` for the folder
/// itself), `None` for an entry outside it, which is skipped. Image layers
/// write `models/x`, `./models/x` or `/models/x`; all mean the same.
fn select_below(raw: &[u8], folder: &str) -> Option<Vec<u8>> {
    let mut path = raw;
    loop {
        if let Some(rest) = path.strip_prefix(b"./") {
            path = rest;
        } else if let Some(rest) = path.strip_prefix(b"/") {
            path = rest;
        } else {
            break;
        }
    }
    let rest = path.strip_prefix(folder.as_bytes())?;
    if rest.is_empty() || rest == b"/" {
        return Some(b"./".to_vec());
    }
    rest.strip_prefix(b"/").map(<[u8]>::to_vec)
}

/// Unpacks the tar `blob` (the layer `digest`, `size` bytes, already
/// verified) as `target` says.
pub fn unpack(
    blob: &Path,
    size: u64,
    compression: Compression,
    target: &Target,
    digest: &str,
) -> Result<u64, OciError> {
    let (root, under) = (target.root.as_path(), target.under.as_str());
    let refuse = |entry: &str, why: &str| {
        OciError::Content(format!(
            "layer {digest}: tar entry {entry:?}: {why}; the layer is refused and nothing of the model is kept"
        ))
    };
    let io = |what: String, e: std::io::Error| {
        OciError::Registry(format!("layer {digest}: {what}: {e}"))
    };
    let file = File::open(blob).map_err(|e| io("cannot read the blob".into(), e))?;
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(BufReader::new(file)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(BufReader::new(file))
                .map_err(|e| refuse("", &format!("not zstd: {e}")))?,
        ),
    };
    let base = root.join(under);
    std::fs::create_dir_all(&base).map_err(|e| io(format!("cannot create {under}"), e))?;
    let limit = size.saturating_mul(UNPACK_RATIO).max(1 << 20);
    let mut total: u64 = 0;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| refuse("", &format!("not a tar archive: {e}")))?;
    for entry in entries {
        // Held while this entry is written: a stop waits for it.
        let _busy = target
            .stop
            .as_ref()
            .map(|s| s.busy.lock().unwrap_or_else(|e| e.into_inner()));
        if target.stop.as_ref().is_some_and(|s| s.raised()) {
            return Err(OciError::Registry(format!(
                "layer {digest}: unpacking stopped (the deadline passed, or the run was cancelled)"
            )));
        }
        let mut entry = entry.map_err(|e| refuse("", &format!("unreadable archive: {e}")))?;
        let full = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&full).into_owned();
        let raw = match &target.select {
            None => full,
            Some(folder) => match select_below(&full, folder) {
                None => continue, // outside the model folder: not read
                Some(below) => below,
            },
        };
        let rel = entry_path(&raw).map_err(|why| refuse(&shown, why))?;
        let Some(rel) = rel else {
            // "./": the folder itself, which must be a folder.
            if target.select.is_some() && entry.header().entry_type() != tar::EntryType::Directory {
                return Err(refuse(
                    &shown,
                    "is the model folder --subpath names, but is not a folder",
                ));
            }
            continue;
        };
        if let Some(within) = &target.within
            && !rel.starts_with(within)
        {
            return Err(refuse(
                &shown,
                &format!("lies outside the folder {within:?} that the layer names"),
            ));
        }
        let header = entry.header();
        let mode = header.mode().map_err(|e| refuse(&shown, &e.to_string()))?;
        if mode & 0o7000 != 0 {
            return Err(refuse(&shown, "has a setuid, setgid or sticky bit"));
        }
        if rel
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".wh."))
        {
            return Err(refuse(
                &shown,
                "is a whiteout (an image-layer deletion marker)",
            ));
        }
        let path = base.join(&rel);
        no_symlink_below(&base, &rel).map_err(|why| refuse(&shown, &why.to_string()))?;
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&path)
                    .map_err(|e| io(format!("cannot create {shown}"), e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                total = total.saturating_add(entry.size());
                if total > limit {
                    return Err(refuse(
                        &shown,
                        &format!(
                            "the archive unpacks to more than {limit} bytes ({UNPACK_RATIO} times the blob's size)"
                        ),
                    ));
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| io(format!("cannot create the folder of {shown}"), e))?;
                }
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                    .mode(0o644)
                    .open(&path)
                    .map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            refuse(&shown, "names a path the archive already wrote")
                        } else {
                            io(format!("cannot create {shown}"), e)
                        }
                    })?;
                let expected = entry.size();
                let copied = std::io::copy(&mut (&mut entry).take(expected), &mut out)
                    .map_err(|e| refuse(&shown, &format!("unreadable content: {e}")))?;
                if copied != expected {
                    return Err(refuse(&shown, "is shorter than its header says"));
                }
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse(&shown, "is a symbolic link without a target"))?;
                let link = PathBuf::from(String::from_utf8_lossy(&link).into_owned());
                if !stays_inside(&rel, &link) {
                    return Err(refuse(
                        &shown,
                        &format!(
                            "is a symbolic link to {} , which leaves the model",
                            link.display()
                        ),
                    ));
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| io(format!("cannot create the folder of {shown}"), e))?;
                }
                std::os::unix::fs::symlink(&link, &path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        refuse(&shown, "names a path the archive already wrote")
                    } else {
                        io(format!("cannot create {shown}"), e)
                    }
                })?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse(&shown, "is a hard link without a target"))?;
                let link = match &target.select {
                    None => link.into_owned(),
                    Some(folder) => select_below(&link, folder).ok_or_else(|| {
                        refuse(
                            &shown,
                            &format!(
                                "is a hard link to {:?}, outside the model folder",
                                String::from_utf8_lossy(&link)
                            ),
                        )
                    })?,
                };
                let source = match entry_path(&link) {
                    Ok(Some(p)) => p,
                    _ => {
                        return Err(refuse(
                            &shown,
                            &format!(
                                "is a hard link to {:?}, which leaves the model",
                                String::from_utf8_lossy(&link)
                            ),
                        ));
                    }
                };
                no_symlink_below(&base, &source).map_err(|why| refuse(&shown, &why.to_string()))?;
                let from = base.join(&source);
                let meta = std::fs::symlink_metadata(&from).map_err(|_| {
                    refuse(
                        &shown,
                        "is a hard link to a file the archive has not unpacked",
                    )
                })?;
                if !meta.is_file() {
                    return Err(refuse(
                        &shown,
                        "is a hard link to something other than a file",
                    ));
                }
                std::fs::hard_link(&from, &path)
                    .map_err(|e| io(format!("cannot link {shown}"), e))?;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            other => {
                let what = match other {
                    tar::EntryType::Char => "a character device",
                    tar::EntryType::Block => "a block device",
                    tar::EntryType::Fifo => "a FIFO",
                    _ => "an entry type a model cannot hold",
                };
                return Err(refuse(&shown, &format!("is {what}")));
            }
        }
    }
    Ok(total)
}

/// The entry's path relative to the unpack folder; `None` for the folder
/// itself (`./`); an error for anything that is not a plain relative path.
fn entry_path(raw: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    let text =
        std::str::from_utf8(raw).map_err(|_| "is not a UTF-8 name; no signature can name it")?;
    if text.contains('\0') {
        return Err("contains a NUL byte");
    }
    let path = Path::new(text);
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
            Component::ParentDir => return Err("has a '..' component"),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// An entry whose path passes through something other than a folder.
#[derive(Debug, thiserror::Error)]
enum NotBelowFolder {
    /// A parent is a symbolic link.
    #[error("would be written through the symbolic link {}", .0.display())]
    Symlink(PathBuf),
    /// A parent is a file.
    #[error("would be written below the file {}", .0.display())]
    File(PathBuf),
}

/// Refuses a path whose existing parents include a symbolic link: nothing
/// is ever written through one.
fn no_symlink_below(base: &Path, rel: &Path) -> Result<(), NotBelowFolder> {
    let mut at = base.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for component in parents.iter().take(parents.len().saturating_sub(1)) {
        at.push(component);
        let shown = || at.strip_prefix(base).unwrap_or(&at).to_path_buf();
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(NotBelowFolder::Symlink(shown()));
            }
            Ok(meta) if !meta.is_dir() => return Err(NotBelowFolder::File(shown())),
            _ => {}
        }
    }
    Ok(())
}

/// Whether a symbolic link at `link` (relative to the unpack folder) with
/// target `target` resolves inside the folder, read lexically.
fn stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> = link
        .parent()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    for component in target.components() {
        match component {
            Component::Normal(part) => depth.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subpath_selects_its_folder_in_any_spelling() {
        assert_eq!(select_below(b"models/a", "models"), Some(b"a".to_vec()));
        assert_eq!(
            select_below(b"./models/a/b", "models"),
            Some(b"a/b".to_vec())
        );
        assert_eq!(select_below(b"/models/", "models"), Some(b"./".to_vec()));
        assert_eq!(select_below(b"models", "models"), Some(b"./".to_vec()));
        assert_eq!(select_below(b"modelsx/a", "models"), None);
        assert_eq!(select_below(b"etc/passwd", "models"), None);
        assert_eq!(
            select_below(b"models/../x", "models"),
            Some(b"../x".to_vec())
        );
    }

    #[test]
    fn entry_paths_and_link_targets_are_read_strictly() {
        assert_eq!(entry_path(b"./a/b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(entry_path(b"./").unwrap(), None);
        assert!(entry_path(b"/etc/passwd").is_err());
        assert!(entry_path(b"a/../../b").is_err());
        assert!(entry_path(b"\xff").is_err());
        assert!(stays_inside(Path::new("a/link"), Path::new("../b")));
        assert!(stays_inside(Path::new("a/link"), Path::new("c/d")));
        assert!(!stays_inside(Path::new("link"), Path::new("../x")));
        assert!(!stays_inside(Path::new("a/link"), Path::new("../../x")));
        assert!(!stays_inside(Path::new("a/link"), Path::new("/etc/passwd")));
    }
}
