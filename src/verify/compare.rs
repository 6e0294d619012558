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
    /// Hash only these files (model-relative paths) and take the others as
    /// unchanged; `None` hashes every file. A watch that saw these files
    /// change on disk re-verifies only them; which files are there, and
    /// their sizes under a sharded manifest, are always checked.
    pub hash_only: Option<&'a BTreeSet<String>>,
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
            if req
                .hash_only
                .is_some_and(|only| !only.contains(&entry.name))
            {
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::model::Serialization;
    use crate::model::hashing::sha256;

    /// A model folder holding `files`.
    fn model(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            write(dir.path(), name, content);
        }
        dir
    }

    fn write(root: &Path, name: &str, content: &[u8]) {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// The manifest a signer makes of `files` under `method` (SHA-256).
    fn signed(files: &[(&str, &[u8])], method: Method) -> Manifest {
        let resources = files
            .iter()
            .flat_map(|(name, content)| {
                ResourceKey::for_file(name, content.len() as u64, method)
                    .into_iter()
                    .map(|key| {
                        let bytes = match key.range {
                            None => &content[..],
                            Some((start, end)) => &content[start as usize..end as usize],
                        };
                        (key, sha256(bytes).to_vec())
                    })
            })
            .collect();
        let serialization = Serialization {
            method,
            hash: HashAlgorithm::Sha256,
            allow_symlinks: false,
            ignore_paths: Vec::new(),
        };
        Manifest::new("model".into(), serialization, resources)
    }

    /// What a comparison found, with how many bytes were hashed.
    struct Found {
        problems: Vec<Problem>,
        unsigned: Vec<String>,
        hashed: u64,
    }

    /// How to compare: the defaults of a plain `verify`.
    #[derive(Default)]
    struct Compare<'a> {
        ignore_unsigned_files: bool,
        ignore: &'a [&'a str],
        known: KnownDigests,
        blobs: BlobResources,
        hash_only: Option<&'a BTreeSet<String>>,
    }

    impl Compare<'_> {
        fn run(&self, dir: &Path, manifest: &Manifest) -> Found {
            let hashed = AtomicU64::new(0);
            let progress = |n: u64| {
                hashed.fetch_add(n, Ordering::Relaxed);
            };
            let options = Options {
                ignore_unsigned_files: self.ignore_unsigned_files,
                workers: 2,
                progress: &progress,
                known_sha256: &self.known,
                blob_resources: &self.blobs,
                hash_only: self.hash_only,
            };
            let root = ModelRoot::open(dir).unwrap();
            let rules = IgnoreRules::new(self.ignore);
            let (mut problems, unsigned) = compare(&options, &root, &rules, manifest);
            problems.sort_by(|a, b| a.path().cmp(&b.path()));
            Found {
                problems,
                unsigned,
                hashed: hashed.into_inner(),
            }
        }
    }

    const FILES: &[(&str, &[u8])] = &[
        ("config.json", b"{\"layers\": 2}"),
        ("weights/model.bin", b"0123456789"),
    ];

    #[test]
    fn the_signed_model_matches_and_every_byte_is_hashed() {
        let dir = model(FILES);
        let found = Compare::default().run(dir.path(), &signed(FILES, Method::Files));
        assert_eq!(found.problems, []);
        assert!(found.unsigned.is_empty());
        assert_eq!(found.hashed, 13 + 10);
    }

    #[test]
    fn a_changed_file_is_named_with_both_digests() {
        let dir = model(FILES);
        write(dir.path(), "weights/model.bin", b"0123456788");
        let found = Compare::default().run(dir.path(), &signed(FILES, Method::Files));
        let expected = hex::encode(sha256(b"0123456789"));
        let actual = hex::encode(sha256(b"0123456788"));
        assert_eq!(
            found.problems,
            [Problem::Modified {
                path: "weights/model.bin".into(),
                expected: expected.clone(),
                actual: actual.clone(),
            }]
        );
        assert_eq!(
            found.problems[0].to_string(),
            format!(
                "weights/model.bin: modified: expected digest {expected}, found {actual}; restore the file from the signed source, or re-sign if the change is intended"
            )
        );
    }

    #[test]
    fn hashing_only_the_files_named_reads_only_their_bytes_and_still_sees_the_file_set() {
        let dir = model(FILES);
        write(dir.path(), "weights/model.bin", b"0123456788");
        write(dir.path(), "added.txt", b"x");
        let manifest = signed(FILES, Method::Files);
        // The changed file is not named: taken as unchanged, nothing hashed,
        // but the added file is still found.
        let only = BTreeSet::from(["config.json".to_string()]);
        let found = Compare {
            hash_only: Some(&only),
            ..Compare::default()
        }
        .run(dir.path(), &manifest);
        assert_eq!(
            found.problems,
            [Problem::Extra {
                path: "added.txt".into()
            }]
        );
        assert_eq!(found.hashed, 13);
        let only = BTreeSet::from(["weights/model.bin".to_string()]);
        let found = Compare {
            hash_only: Some(&only),
            ..Compare::default()
        }
        .run(dir.path(), &manifest);
        assert_eq!(found.hashed, 10);
        assert_eq!(found.problems.len(), 2, "{:?}", found.problems);
    }

    #[test]
    fn missing_and_extra_files_are_all_reported_in_one_comparison() {
        let dir = model(&[FILES[1], ("notes.txt", b"unsigned")]);
        let found = Compare::default().run(dir.path(), &signed(FILES, Method::Files));
        assert_eq!(
            found.problems,
            [
                Problem::Missing {
                    path: "config.json".into(),
                    expected: hex::encode(sha256(FILES[0].1)),
                },
                Problem::Extra {
                    path: "notes.txt".into()
                },
            ]
        );
        assert!(
            found.problems[0]
                .to_string()
                .starts_with("config.json: missing: signed with digest ")
        );
        assert_eq!(
            found.problems[1].to_string(),
            "notes.txt: extra: on disk but not signed; remove it, re-sign the model with it, or pass --ignore-unsigned-files"
        );
    }

    #[test]
    fn unsigned_files_are_tolerated_only_when_asked_and_then_listed() {
        let dir = model(&[FILES[0], FILES[1], ("notes.txt", b"unsigned")]);
        let compare = Compare {
            ignore_unsigned_files: true,
            ..Compare::default()
        };
        let found = compare.run(dir.path(), &signed(FILES, Method::Files));
        assert_eq!(found.problems, []);
        assert_eq!(found.unsigned, ["notes.txt"]);
        // A signed file that is missing is still a problem.
        std::fs::remove_file(dir.path().join("config.json")).unwrap();
        let found = compare.run(dir.path(), &signed(FILES, Method::Files));
        assert_eq!(found.problems.len(), 1);
        assert_eq!(found.problems[0].kind(), "missing");
    }

    #[test]
    fn ignored_paths_are_neither_compared_nor_listed() {
        let dir = model(&[FILES[0], FILES[1], ("logs/run.txt", b"x")]);
        let compare = Compare {
            ignore: &["./logs/"],
            ..Compare::default()
        };
        let found = compare.run(dir.path(), &signed(FILES, Method::Files));
        assert_eq!(found.problems, []);
        assert!(found.unsigned.is_empty());
    }

    #[test]
    fn links_and_special_files_are_refused_where_a_file_is_signed() {
        let dir = model(FILES);
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "copy", FILES[0].1);
        std::fs::remove_file(dir.path().join("config.json")).unwrap();
        // A link to an identical copy: the bytes match, the kind does not.
        std::os::unix::fs::symlink(outside.path().join("copy"), dir.path().join("config.json"))
            .unwrap();
        std::fs::remove_file(dir.path().join("weights/model.bin")).unwrap();
        nix::unistd::mkfifo(
            &dir.path().join("weights/model.bin"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let found = Compare::default().run(dir.path(), &signed(FILES, Method::Files));
        assert_eq!(
            found.problems,
            [
                Problem::Symlink {
                    path: "config.json".into()
                },
                Problem::NotRegular {
                    path: "weights/model.bin".into(),
                    what: "is a FIFO".into(),
                },
            ]
        );
        assert_eq!(found.hashed, 0, "nothing but regular files is read");
    }

    #[test]
    fn a_sharded_file_of_another_size_is_reported_by_size_and_a_changed_shard_by_name() {
        let shards = Method::Shards { shard_size: 4 };
        let dir = model(FILES);
        write(dir.path(), "weights/model.bin", b"0123456789A");
        let found = Compare::default().run(dir.path(), &signed(FILES, shards));
        assert_eq!(
            found.problems,
            [Problem::SizeChanged {
                path: "weights/model.bin".into(),
                expected: 10,
                actual: 11,
            }]
        );
        assert_eq!(
            found.problems[0].to_string(),
            "weights/model.bin: modified: expected 10 bytes, found 11; restore the file from the signed source"
        );
        write(dir.path(), "weights/model.bin", b"0123X56789");
        let found = Compare::default().run(dir.path(), &signed(FILES, shards));
        assert_eq!(found.problems.len(), 1);
        assert_eq!(found.problems[0].path(), Some("weights/model.bin:4:8"));
        assert_eq!(found.problems[0].kind(), "modified");
    }

    #[test]
    fn an_empty_file_has_no_shards_to_sign_and_is_not_extra() {
        let shards = Method::Shards { shard_size: 4 };
        let dir = model(&[FILES[0], FILES[1], ("empty", b"")]);
        let found = Compare::default().run(dir.path(), &signed(FILES, shards));
        assert_eq!(found.problems, []);
        // Under files, the same empty file is an extra file.
        let found = Compare::default().run(dir.path(), &signed(FILES, Method::Files));
        assert_eq!(
            found.problems,
            [Problem::Extra {
                path: "empty".into()
            }]
        );
    }

    #[test]
    fn a_digest_proven_on_the_way_in_replaces_hashing_the_file_again() {
        let dir = model(FILES);
        let manifest = signed(FILES, Method::Files);
        let mut known = KnownDigests::new();
        known.insert("weights/model.bin".into(), (sha256(FILES[1].1), 10));
        let compare = Compare {
            known,
            ..Compare::default()
        };
        let found = compare.run(dir.path(), &manifest);
        assert_eq!(found.problems, []);
        assert_eq!(found.hashed, 13, "only config.json is hashed");
        // A proven digest that is not the signed one is a modified file.
        let mut known = KnownDigests::new();
        known.insert("weights/model.bin".into(), (sha256(b"other"), 10));
        let found = Compare {
            known,
            ..Compare::default()
        }
        .run(dir.path(), &manifest);
        assert_eq!(found.problems.len(), 1);
        assert_eq!(found.problems[0].kind(), "modified");
        // One proven for another size than the file's now is not used: the
        // file is hashed.
        let mut known = KnownDigests::new();
        known.insert("weights/model.bin".into(), (sha256(FILES[1].1), 9));
        let found = Compare {
            known,
            ..Compare::default()
        }
        .run(dir.path(), &manifest);
        assert_eq!(found.problems, []);
        assert_eq!(found.hashed, 23);
    }

    #[test]
    fn a_signed_config_blob_counts_as_the_signed_file_of_its_name() {
        // An OCI artifact's config blob, signed as `config.json` but not
        // written as a file.
        let dir = model(&[FILES[1]]);
        let manifest = signed(FILES, Method::Files);
        let mut blobs = BlobResources::new();
        blobs.insert("config.json".into(), sha256(FILES[0].1));
        let found = Compare {
            blobs,
            ..Compare::default()
        }
        .run(dir.path(), &manifest);
        assert_eq!(found.problems, []);
        let mut blobs = BlobResources::new();
        blobs.insert("config.json".into(), sha256(b"{}"));
        let found = Compare {
            blobs,
            ..Compare::default()
        }
        .run(dir.path(), &manifest);
        assert_eq!(
            found.problems,
            [Problem::Modified {
                path: "config.json".into(),
                expected: hex::encode(sha256(FILES[0].1)),
                actual: hex::encode(sha256(b"{}")),
            }]
        );
    }
}
