//! Properties over generated models (proptest): whatever the tree, signing
//! then verifying succeeds; any single change of bytes, names, file types
//! or the signature is rejected; the root digest does not depend on the
//! order the folder lists its entries in nor on the number of hashing
//! threads; verification is deterministic; and a model pushed to a registry
//! and pulled back is the same model.
//!
//! Trees are small (up to 8 files, 3 levels, 64 KiB each) so that every
//! case runs the real binary; a failing case is shrunk and printed by
//! proptest, and its seed is kept in tests/it/properties.proptest-regressions.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use crate::common::registry::{Mode, Registry};
use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// A model: relative path -> contents. Names are drawn from a set that
/// includes spaces, dots, unicode and names that differ only in case.
fn tree() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    let segment = prop::sample::select(vec![
        "a",
        "B",
        "b",
        "config.json",
        "model.safetensors",
        "dir",
        "x y",
        "é",
        "..a",
        "z.bin",
    ]);
    let path = prop::collection::vec(segment, 1..=3).prop_map(|parts| parts.join("/"));
    let content = prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 1..64),
        (1usize..65_536, any::<u64>()).prop_map(|(len, seed)| bytes(len, seed)),
    ];
    prop::collection::btree_map(path, content, 1..=8).prop_filter(
        "a path cannot be both a file and a folder",
        |files| {
            files.keys().all(|p| {
                !files
                    .keys()
                    .any(|q| q.len() > p.len() && q.starts_with(p) && q.as_bytes()[p.len()] == b'/')
            })
        },
    )
}

/// Writes `files` under `root`, in the order `order` gives (a permutation
/// seed): tmpfs and ext4 list a folder's entries in an order that depends
/// on how they were created, so two orders give two walk orders.
fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>, reverse: bool) {
    let mut entries: Vec<_> = files.iter().collect();
    if reverse {
        entries.reverse();
    }
    for (path, content) in entries {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
    }
}

fn digest(model: &Path, jobs: &str) -> String {
    let run = modelgate([
        OsString::from("--jobs"),
        jobs.into(),
        "digest".into(),
        model.into(),
    ]);
    run.expect_code(0);
    run.stdout.trim().to_string()
}

/// One single change to a signed model or its signature.
#[derive(Clone, Debug)]
enum Mutation {
    /// Flip one bit of one file (index into the sorted files, byte offset).
    FlipBit(usize, usize, u8),
    /// Append one byte to one file.
    Grow(usize),
    /// Remove one file.
    Remove(usize),
    /// Rename one file (append a suffix to its name).
    Rename(usize),
    /// Add a file the signature does not list.
    Add,
    /// Replace one file by a symbolic link to an identical copy outside.
    Symlink(usize),
    /// Replace one file by a folder of the same name.
    Folder(usize),
    /// Flip one bit of the signed payload or of the signature.
    Signature(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(f, o, b)| Mutation::FlipBit(f, o, b)),
        any::<usize>().prop_map(Mutation::Grow),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Rename),
        Just(Mutation::Add),
        any::<usize>().prop_map(Mutation::Symlink),
        any::<usize>().prop_map(Mutation::Folder),
        (any::<usize>(), 0u8..8).prop_map(|(o, b)| Mutation::Signature(o, b)),
    ]
}

/// Applies `m` to the model at `root` (files as signed) and its signature.
fn apply(m: &Mutation, root: &Path, files: &BTreeMap<String, Vec<u8>>, sig: &Path, outside: &Path) {
    let names: Vec<&String> = files.keys().collect();
    let pick = |i: usize| root.join(names[i % names.len()]);
    match *m {
        Mutation::FlipBit(f, o, b) => {
            let path = pick(f);
            let mut content = std::fs::read(&path).unwrap();
            if content.is_empty() {
                content.push(1 << b);
            } else {
                let at = o % content.len();
                content[at] ^= 1 << b;
            }
            std::fs::write(path, content).unwrap();
        }
        Mutation::Grow(f) => {
            let path = pick(f);
            let mut content = std::fs::read(&path).unwrap();
            content.push(0);
            std::fs::write(path, content).unwrap();
        }
        Mutation::Remove(f) => std::fs::remove_file(pick(f)).unwrap(),
        Mutation::Rename(f) => {
            let path = pick(f);
            let mut renamed = path.clone().into_os_string();
            renamed.push(".renamed");
            std::fs::rename(&path, renamed).unwrap();
        }
        Mutation::Add => std::fs::write(root.join("added-after-signing"), b"x").unwrap(),
        Mutation::Symlink(f) => {
            let path = pick(f);
            let copy = outside.join("copy");
            std::fs::copy(&path, &copy).unwrap();
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(&copy, &path).unwrap();
        }
        Mutation::Folder(f) => {
            let path = pick(f);
            std::fs::remove_file(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
        }
        Mutation::Signature(o, b) => {
            // A bit of what the signature authenticates, or of the signature
            // itself: the DSSE payload or signature, decoded, changed and
            // encoded again (the bundle's other fields, such as the key
            // hint, are not authenticated, and need not be).
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut doc: serde_json::Value =
                serde_json::from_slice(&std::fs::read(sig).unwrap()).unwrap();
            let field = if o % 2 == 0 {
                &mut doc["dsseEnvelope"]["payload"]
            } else {
                &mut doc["dsseEnvelope"]["signatures"][0]["sig"]
            };
            let mut raw = b64.decode(field.as_str().unwrap()).unwrap();
            let at = (o / 2) % raw.len();
            raw[at] ^= 1 << b;
            *field = b64.encode(raw).into();
            std::fs::write(sig, serde_json::to_vec(&doc).unwrap()).unwrap();
        }
    }
}

/// Runs `property` on `cases` values of `strategy`, as `proptest!` runs a
/// `#[test]` body: a failure is shrunk, its seed kept beside this file
/// (tests/it/properties.proptest-regressions) and the minimal input printed.
/// Called by an ordinary `#[test]` rather than through the `proptest!` macro
/// so that what the cases share (a key pair, a registry) is a local value of
/// that test, dropped (the registry stopped) when the test ends, instead of
/// a `static` that outlives the suite.
fn check<S: Strategy>(
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, property) {
        panic!("{e}\n{runner}");
    }
}

/// Every file under `root`, by relative path (the model as a user sees it).
fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A model pushed (signed) to a real registry and pulled back, with the
/// signature found in the registry, is the same files with the same bytes.
#[test]
fn a_pulled_model_equals_the_pushed_one() {
    // One registry for every case, stopped when the test ends.
    let reg = Registry::start(Mode::Plain);
    let keys = keypair("P-256");
    check(8, (tree(), 0u32..1_000_000), |(files, tag)| {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        write_tree(&model, &files, false);
        let reference = reg.reference(&format!("models/prop:t{tag}"));
        let mut push: Vec<OsString> = vec![
            "push".into(),
            (&model).into(),
            (&reference).into(),
            "--key".into(),
            (&keys.private).into(),
        ];
        push.extend(reg.flags().into_iter().map(OsString::from));
        modelgate(push).expect_code(0);
        let dest = dir.path().join("pulled");
        let mut pull: Vec<OsString> = vec![
            "pull".into(),
            (&reference).into(),
            (&dest).into(),
            "--key".into(),
            (&keys.public).into(),
        ];
        pull.extend(reg.flags().into_iter().map(OsString::from));
        modelgate(pull).expect_code(0);
        prop_assert_eq!(read_tree(&dest), files);
        Ok(())
    });
}

/// Sign then verify succeeds for any tree, twice with the same result,
/// and the root digest is the same whatever the walk order or the
/// number of hashing threads.
#[test]
fn any_signed_tree_verifies_the_same_way_every_time() {
    let keys = keypair("P-256");
    check(64, tree(), |files| {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_tree(&a, &files, false);
        write_tree(&b, &files, true);
        let sig = dir.path().join("model.sig");
        attest(&a, &keys.private, &sig);
        let m1 = dir.path().join("m1.json");
        let m2 = dir.path().join("m2.json");
        for (model, measurement) in [(&a, &m1), (&b, &m2)] {
            let mut args = verify_args(model, &sig, &keys.public);
            args.extend(["--measurement".into(), measurement.into()]);
            modelgate(args).expect_code(0);
        }
        let read = |p: &Path| -> serde_json::Value {
            let mut doc: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            // What differs between two runs by design: when, and which folder.
            doc.as_object_mut().unwrap().remove("time");
            doc["model"].as_object_mut().unwrap().remove("path");
            doc
        };
        prop_assert_eq!(read(&m1), read(&m2));
        let one = digest(&a, "1");
        prop_assert_eq!(&one, &digest(&a, "4"));
        prop_assert_eq!(&one, &digest(&b, "3"));
        Ok(())
    });
}

/// Any single change after signing is rejected with exit 1.
#[test]
fn any_single_change_is_rejected() {
    let keys = keypair("P-256");
    check(64, (tree(), mutation()), |(files, m)| {
        let dir = tempfile::tempdir().unwrap();
        let (model, outside) = (dir.path().join("model"), dir.path().join("outside"));
        std::fs::create_dir(&outside).unwrap();
        write_tree(&model, &files, false);
        let sig = dir.path().join("model.sig");
        attest(&model, &keys.private, &sig);
        apply(&m, &model, &files, &sig, &outside);
        let run = verify(&model, &sig, &keys.public);
        prop_assert_eq!(run.code, 1, "{:?} was accepted:\n{}", m, run.stderr);
        Ok(())
    });
}
