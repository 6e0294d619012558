//! Turning a model on disk into resources and hashing them: the one hashing
//! path that `attest`, `digest` and `verify` share. A resource is a file, or
//! a shard of one; the serialization says how a model is cut and hashed.

use super::dir::{EntryKind, FsError, ModelRoot};
use super::hashing::{self, HashAlgorithm, Span};

/// How a model was cut into resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// One resource per file.
    Files,
    /// One resource per `shard_size` bytes of each non-empty file.
    Shards {
        /// Bytes per shard; the last shard of a file may be shorter.
        shard_size: u64,
    },
}

/// How a model is cut into resources and hashed (the OMS predicate's
/// `serialization` section): everything needed to hash the model again the
/// way the signer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serialization {
    /// Files or shards.
    pub method: Method,
    /// The hash of each resource.
    pub hash: HashAlgorithm,
    /// Whether symlinks (inside the root) were hashed as their targets.
    pub allow_symlinks: bool,
    /// Root-relative paths excluded from the model, with everything below them.
    pub ignore_paths: Vec<String>,
}

impl Serialization {
    /// The `algorithm` every resource must carry under this serialization.
    pub fn resource_algorithm(&self) -> String {
        match self.method {
            Method::Files => self.hash.name().to_string(),
            Method::Shards { shard_size } => format!("{}-sharded-{shard_size}", self.hash.name()),
        }
    }
}

/// The file a resource belongs to and the bytes it covers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// Root-relative `/`-separated path.
    pub path: String,
    /// `None` for a whole file; `(start, end)` with `end` exclusive for a shard.
    pub range: Option<(u64, u64)>,
}

impl ResourceKey {
    /// The resource name this key is written as.
    pub fn name(&self) -> String {
        match self.range {
            None => self.path.clone(),
            Some((start, end)) => format!("{}:{start}:{end}", self.path),
        }
    }

    /// The keys of one file of `size` bytes under `method`. Empty files have
    /// no shards: the reference signer skips them, so the format cannot see them.
    pub fn for_file(path: &str, size: u64, method: Method) -> Vec<ResourceKey> {
        match method {
            Method::Files => vec![ResourceKey {
                path: path.to_string(),
                range: None,
            }],
            Method::Shards { shard_size } => (0..size.div_ceil(shard_size))
                .map(|i| {
                    let start = i * shard_size;
                    ResourceKey {
                        path: path.to_string(),
                        range: Some((start, (start + shard_size).min(size))),
                    }
                })
                .collect(),
        }
    }

    /// The order the reference signer writes: by path components, then by
    /// offset as a number. (The OMS spec's plain code-point order of names is
    /// accepted too: verification hashes the digests in the order listed.)
    pub fn canonical_cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.path
            .split('/')
            .cmp(other.path.split('/'))
            .then(self.range.cmp(&other.range))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_keys_cover_the_file_and_skip_empty_files() {
        let keys = ResourceKey::for_file("w", 2500, Method::Shards { shard_size: 1000 });
        let names: Vec<_> = keys.iter().map(ResourceKey::name).collect();
        assert_eq!(names, ["w:0:1000", "w:1000:2000", "w:2000:2500"]);
        assert!(ResourceKey::for_file("e", 0, Method::Shards { shard_size: 1000 }).is_empty());
        assert_eq!(ResourceKey::for_file("e", 0, Method::Files).len(), 1);
    }

    #[test]
    fn canonical_order_is_by_components_then_offset() {
        let key = |p: &str, r| ResourceKey {
            path: p.into(),
            range: r,
        };
        let mut keys = [
            key("a-c", None),
            key("a/b", None),
            key("w", Some((1000, 2000))),
            key("w", Some((0, 1000))),
        ];
        keys.sort_by(ResourceKey::canonical_cmp);
        let names: Vec<_> = keys.iter().map(ResourceKey::name).collect();
        assert_eq!(names, ["a/b", "a-c", "w:0:1000", "w:1000:2000"]);
    }
}
