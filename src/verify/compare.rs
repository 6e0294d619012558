//! Comparing the model on disk with a verified manifest: every file listed,
//! nothing else present, every digest equal.

use std::collections::{BTreeMap, BTreeSet};

use subtle::ConstantTimeEq;

use super::Problem;
use crate::model::resources::{self, HashTask};
use crate::model::{EntryKind, HashAlgorithm, IgnoreRules, Method, ModelRoot, ResourceKey};
use crate::oms::manifest::Manifest;

/// How to compare.
pub struct Options<'a> {
    /// Tolerate files on disk that the signature does not list.
    pub ignore_unsigned_files: bool,
    /// Hashing threads.
    pub workers: usize,
    /// Called with the number of bytes hashed.
    pub progress: &'a (dyn Fn(u64) + Sync),
    /// SHA-256 digests of whole files already proven from the exact bytes
    /// written (a pull checks each raw layer's digest on the way in): for a
    /// `files`/`sha256` manifest they are compared instead of hashing the
    /// file a second time.
    pub known_sha256: &'a KnownDigests,
    /// Resources of the model that are not files on disk, each with its
    /// proven SHA-256: an OCI artifact's config blob, which a signature over
    /// the OCI manifest (model-transparency-go) lists as `config.json`. A
    /// signed resource of that name is compared with it instead of being
    /// missing; a `files`/`sha256` manifest only.
    pub blob_resources: &'a BlobResources,
}

/// Resource name -> SHA-256 of a blob that is part of the model but not
/// written as a file.
pub type BlobResources = BTreeMap<String, [u8; 32]>;

/// Model-relative path -> SHA-256 of the file's content and its size.
pub type KnownDigests = BTreeMap<String, ([u8; 32], u64)>;

/// Compares the model on disk with the manifest. Returns every problem and
/// the unsigned files tolerated by `--ignore-unsigned-files`.
pub fn compare(
    req: &Options<'_>,
    root: &ModelRoot,
    rules: &IgnoreRules,
    manifest: &Manifest,
) -> (Vec<Problem>, Vec<String>) {
    let serialization = &manifest.serialization;
    let mut expected: BTreeMap<&str, Vec<(&ResourceKey, &[u8])>> = BTreeMap::new();
    for (key, digest) in &manifest.resources {
        expected
            .entry(key.path.as_str())
            .or_default()
            .push((key, digest));
    }
    let entries = match root.walk(rules) {
        Ok(entries) => entries,
        Err(e) => return (vec![Problem::CouldNotCheck(e.to_string())], Vec::new()),
    };
    let mut problems = Vec::new();
    let mut unsigned = Vec::new();
    let mut seen = BTreeSet::new();
    let mut tasks = Vec::new();
    let mut wanted: Vec<&[u8]> = Vec::new();
    for entry in &entries {
        let signed = expected.get(entry.name.as_str());
        if signed.is_some() {
            seen.insert(entry.name.as_str());
        } else {
            if let EntryKind::File { size } = entry.kind
                && ResourceKey::for_file(&entry.name, size, serialization.method).is_empty()
            {
                // A file with no resources under this method (an empty file
                // under shards) cannot be listed by any signature; the
                // reference skips it the same way.
                continue;
            }
            if req.ignore_unsigned_files {
                unsigned.push(entry.name.clone());
                continue;
            }
        }
        let path = entry.name.clone();
        match &entry.kind {
            EntryKind::Symlink if !serialization.allow_symlinks => {
                problems.push(Problem::Symlink { path });
                continue;
            }
            EntryKind::Special(what) => {
                problems.push(Problem::NotRegular {
                    path,
                    what: format!("is {what}"),
                });
                continue;
            }
            _ => {}
        }
        let Some(signed) = signed else {
            problems.push(Problem::Extra { path });
            continue;
        };
        let size = match resources::entry_size(root, &entry.name, &entry.kind, serialization) {
            Ok(size) => size,
            Err(e) => {
                problems.push(Problem::NotRegular {
                    path: entry.name.clone(),
                    what: e.to_string(),
                });
                continue;
            }
        };
        let on_disk = ResourceKey::for_file(&entry.name, size, serialization.method);
        if let Method::Shards { .. } = serialization.method {
            let signed_keys: BTreeSet<&ResourceKey> = signed.iter().map(|(k, _)| *k).collect();
            if on_disk.iter().collect::<BTreeSet<_>>() != signed_keys {
                let signed_size = signed
                    .iter()
                    .filter_map(|(k, _)| k.range.map(|r| r.1))
                    .max()
                    .unwrap_or(0);
                problems.push(Problem::SizeChanged {
                    path: entry.name.clone(),
                    expected: signed_size,
                    actual: size,
                });
                continue;
            }
        }
        let proven = req
            .known_sha256
            .get(&entry.name)
            .filter(|(_, known_size)| *known_size == size)
            .filter(|_| serialization.hash == HashAlgorithm::Sha256);
        for (key, digest) in signed {
            if let (Some((known, _)), None) = (proven, key.range) {
                if !bool::from(known.as_slice().ct_eq(digest)) {
                    problems.push(Problem::Modified {
                        path: key.name(),
                        expected: hex::encode(digest),
                        actual: hex::encode(known),
                    });
                }
                continue;
            }
            tasks.push(HashTask::new((*key).clone(), size));
            wanted.push(digest);
        }
    }
    let by_blob =
        serialization.method == Method::Files && serialization.hash == HashAlgorithm::Sha256;
    for (path, signed) in &expected {
        if !seen.contains(path) {
            if let (true, Some(blob), [(key, digest)]) =
                (by_blob, req.blob_resources.get(*path), signed.as_slice())
            {
                if !bool::from(blob.as_slice().ct_eq(digest)) {
                    problems.push(Problem::Modified {
                        path: key.name(),
                        expected: hex::encode(digest),
                        actual: hex::encode(blob),
                    });
                }
                continue;
            }
            for (key, digest) in signed {
                problems.push(Problem::Missing {
                    path: key.name(),
                    expected: hex::encode(digest),
                });
            }
        }
    }
    let digests = resources::hash_all(root, &tasks, serialization, req.workers, req.progress);
    for ((task, want), got) in tasks.iter().zip(wanted).zip(digests) {
        match got {
            Ok(actual) if bool::from(actual.ct_eq(want)) => {}
            Ok(actual) => problems.push(Problem::Modified {
                path: task.key.name(),
                expected: hex::encode(want),
                actual: hex::encode(actual),
            }),
            Err(e) => problems.push(Problem::CouldNotCheck(e.to_string())),
        }
    }
    // The caller adds policy problems and sorts the whole list once.
    (problems, unsigned)
}
