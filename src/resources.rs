//! Turning a model on disk into resources and hashing them: the one hashing
//! path that `attest`, `digest` and `verify` share.

use crate::hashing::{self, Span};
use crate::manifest::{ResourceKey, Serialization};
use crate::model_dir::{EntryKind, FsError, ModelRoot};

/// A resource to hash: which file and which bytes of it.
#[derive(Clone, Debug)]
pub struct HashTask {
    /// The resource.
    pub key: ResourceKey,
    /// Bytes to hash, for ordering work largest first.
    pub len: u64,
}

impl HashTask {
    /// A task for `key`, given the file size for whole-file resources.
    pub fn new(key: ResourceKey, file_size: u64) -> Self {
        let len = key.range.map_or(file_size, |(start, end)| end - start);
        Self { key, len }
    }
}

/// Why a resource could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Opening or checking the file failed.
    #[error(transparent)]
    Open(#[from] FsError),
    /// Reading failed, or the file changed size under us.
    #[error("{path}: {reason}")]
    Read {
        /// The resource's file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Hashes every task on `workers` threads, largest first, and returns the
/// digests in the order of `tasks`.
///
/// Each task opens its file through [`ModelRoot::open_file`] (no symlink
/// followed unless `allow_symlinks`, then only within the root) and hashes the
/// descriptor it checked.
pub fn hash_all(
    root: &ModelRoot,
    tasks: &[HashTask],
    serialization: &Serialization,
    workers: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<Result<Vec<u8>, HashError>> {
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tasks[i].len));
    let digests = hashing::run_parallel(&order, workers, |&i, buf| {
        hash_one(root, &tasks[i].key, serialization, buf, progress)
    });
    let mut out: Vec<Option<Result<Vec<u8>, HashError>>> = (0..tasks.len()).map(|_| None).collect();
    for (i, digest) in order.into_iter().zip(digests) {
        out[i] = Some(digest);
    }
    out.into_iter().flatten().collect()
}

fn hash_one(
    root: &ModelRoot,
    key: &ResourceKey,
    serialization: &Serialization,
    buf: &mut [u8],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<u8>, HashError> {
    let (file, size) = root.open_file(&key.path, serialization.allow_symlinks)?;
    let read_err = |reason: String| HashError::Read {
        path: key.path.clone(),
        reason,
    };
    let span = match key.range {
        None => Span::Whole,
        Some((start, end)) => {
            if size < end {
                return Err(read_err(format!(
                    "is {size} bytes, shorter than the shard that ends at {end}"
                )));
            }
            Span::Range { start, end }
        }
    };
    hashing::hash_file(&file, span, serialization.hash, buf, progress)
        .map_err(|e| read_err(e.to_string()))
}

/// The size of the file behind an entry: from the walk for a regular file,
/// through a checked open for a symlink the serialization allows.
pub fn entry_size(
    root: &ModelRoot,
    name: &str,
    kind: &EntryKind,
    serialization: &Serialization,
) -> Result<u64, FsError> {
    match kind {
        EntryKind::File { size } => Ok(*size),
        _ => root
            .open_file(name, serialization.allow_symlinks)
            .map(|(_, size)| size),
    }
}
