//! Staging and placement: a model is fetched or copied into a temporary
//! folder, verified there, and only then put where the workload reads it.
//! The destination never holds an unverified or partial model: the staging
//! folder is beside it and renamed into place; or, when the destination is
//! an empty mount point whose parent cannot be written (an emptyDir at
//! `/mnt/models` under a read-only root, KServe's layout), inside it, with a
//! marker file until every entry has moved up. A run killed mid-move leaves
//! the marker, and the next run clears the folder.

use std::path::{Path, PathBuf};

use super::cancel::Cancel;

/// Marks a target being filled in place; an earlier run that left it is
/// cleared by the next one.
pub const INCOMPLETE: &str = ".modelgate-incomplete";

/// Why a model cannot be staged or placed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A temporary folder could not be made.
    #[error("cannot make a temporary folder in {}: {source}", folder.display())]
    Temporary {
        /// Where.
        folder: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The destination cannot be examined, cleared or read.
    #[error("cannot {doing} {}: {source}", path.display())]
    Destination {
        /// What was being done (`use destination`, `clear`, `read destination`).
        doing: &'static str,
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The destination holds something already.
    #[error("destination {} exists and is not empty; pull into a new or empty folder", .0.display())]
    NotEmpty(PathBuf),
    /// The destination is a file or a link.
    #[error("destination {} exists and is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// Neither beside the destination nor in it can be written.
    #[error("{beside}; and cannot write in the destination {} either: {source}", dest.display())]
    Unwritable {
        /// Why the folder beside failed.
        beside: Box<StageError>,
        /// The destination.
        dest: PathBuf,
        /// Why writing the marker failed.
        source: std::io::Error,
    },
    /// Copying a mounted folder failed.
    #[error("cannot copy {} to {}: {source}", from.display(), to.display())]
    Copy {
        /// The folder copied.
        from: PathBuf,
        /// The destination.
        to: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The verified model could not be moved into place.
    #[error("the model verified, but cannot be moved into place at {}: {source}", dest.display())]
    Place {
        /// The destination.
        dest: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where a model is staged until it is verified.
pub struct Stage {
    /// The model's files go here.
    pub staging: tempfile::TempDir,
    /// Tar layers until their digest is proven.
    pub blobs: tempfile::TempDir,
    /// For a stage inside the destination: its marker, removed when the
    /// placement ends either way (left only by a killed run).
    marker: Option<Marker>,
}

/// The marker file of a destination filled in place.
struct Marker(PathBuf);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Stage {
    /// A stage for `destination` (beside it, or inside it as a last resort),
    /// or in the system's temporary folder for a model only verified. Its
    /// folders are registered with `cancel`.
    pub fn prepare(destination: Option<&Path>, cancel: &Cancel) -> Result<Self, StageError> {
        let Some(dest) = destination else {
            return Self::in_folder(&std::env::temp_dir(), cancel);
        };
        let parent = prepare_destination(dest)?;
        match Self::in_folder(&parent, cancel) {
            Ok(stage) => Ok(stage),
            Err(beside) if dest.is_dir() => {
                let marker = dest.join(INCOMPLETE);
                crate::io::write_atomic(&marker, b"", 0o644).map_err(|source| {
                    StageError::Unwritable {
                        beside: Box::new(beside),
                        dest: dest.to_path_buf(),
                        source,
                    }
                })?;
                let marker = Marker(marker);
                let mut stage = Self::in_folder(dest, cancel)?;
                stage.marker = Some(marker);
                Ok(stage)
            }
            Err(beside) => Err(beside),
        }
    }

    fn in_folder(folder: &Path, cancel: &Cancel) -> Result<Self, StageError> {
        let staging = temp_dir_in(folder, ".modelgate-pull-")?;
        cancel.register(staging.path().to_path_buf());
        let blobs = temp_dir_in(folder, ".modelgate-blobs-")?;
        cancel.register(blobs.path().to_path_buf());
        Ok(Self {
            staging,
            blobs,
            marker: None,
        })
    }

    /// Where the model's files are until placed.
    pub fn files(&self) -> &Path {
        self.staging.path()
    }

    /// Puts the verified model at `dest`, unless the run was cancelled.
    pub fn place(self, dest: &Path, cancel: &Cancel) -> Result<(), StageError> {
        cancel
            .commit(|| self.put_in_place(dest))
            .map_err(|source| StageError::Place {
                dest: dest.to_path_buf(),
                source,
            })
    }

    fn put_in_place(self, dest: &Path) -> std::io::Result<()> {
        let Self {
            staging,
            blobs,
            marker,
        } = self;
        drop(blobs);
        let staged = staging.keep();
        let Some(marker) = marker else {
            let renamed = std::fs::rename(&staged, dest);
            if renamed.is_err() {
                let _ = std::fs::remove_dir_all(&staged);
            }
            return renamed;
        };
        let moved = (|| {
            for entry in std::fs::read_dir(&staged)? {
                let entry = entry?;
                if entry.file_name() == INCOMPLETE {
                    return Err(std::io::Error::other(format!(
                        "the model has a file named {INCOMPLETE}, the marker of a target filled in place; rename it"
                    )));
                }
                std::fs::rename(entry.path(), dest.join(entry.file_name()))?;
            }
            std::fs::remove_dir(&staged)
        })();
        if moved.is_err() && clear_folder(dest).is_err() {
            // Not cleared: the marker stays, so the next run clears it.
            std::mem::forget(marker);
            let _ = std::fs::remove_dir_all(&staged);
            return moved;
        }
        let _ = std::fs::remove_dir_all(&staged);
        drop(marker);
        moved
    }
}

/// Removes everything inside `folder`, not the folder.
fn clear_folder(folder: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A new private folder in `parent`, removed when dropped.
fn temp_dir_in(parent: &Path, prefix: &str) -> Result<tempfile::TempDir, StageError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|source| StageError::Temporary {
            folder: parent.to_path_buf(),
            source,
        })
}

/// The destination's parent, once the destination is known to be absent or
/// an empty folder (which the rename replaces).
fn prepare_destination(dest: &Path) -> Result<PathBuf, StageError> {
    fn failed(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StageError {
        let path = path.to_path_buf();
        move |source| StageError::Destination {
            doing,
            path,
            source,
        }
    }
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed("use destination", dest)(e)),
        Ok(meta) if meta.is_dir() => {
            if dest.join(INCOMPLETE).exists() {
                tracing::warn!(destination = %dest.display(), "clearing an incomplete model an earlier run left (it was killed while putting the model in place)");
                clear_folder(dest).map_err(failed("clear", dest))?;
            }
            let mut entries = std::fs::read_dir(dest).map_err(failed("read destination", dest))?;
            if entries.next().is_some() {
                return Err(StageError::NotEmpty(dest.to_path_buf()));
            }
        }
        Ok(_) => return Err(StageError::NotAFolder(dest.to_path_buf())),
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(failed("create", parent))?;
    std::path::absolute(parent).map_err(failed("resolve", parent))
}

/// Copies the tree at `from` into the existing empty folder `to`, never
/// following a link: links are copied as links (the signature decides
/// whether any may exist); anything but files, folders and links is
/// refused.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if kind.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if kind.is_file() {
            let mut input = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(&src)?;
            let mut output = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(&dst)?;
            std::io::copy(&mut input, &mut output)?;
            output.sync_all()?;
        } else {
            return Err(std::io::Error::other(format!(
                "{} is not a file, folder or symbolic link",
                src.display()
            )));
        }
    }
    Ok(())
}
