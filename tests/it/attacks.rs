//! Attacks on a mounted model by someone who can write it while modelgate
//! runs (another container on the volume, a node user): entries swapped
//! between the walk and the open, a folder replaced by a symbolic link
//! mid-walk, a file that grows or shrinks while it is hashed, hard links to
//! files outside the model, names no signer should be able to smuggle
//! (newlines, invalid UTF-8), and a filesystem that lies about sizes (a FUSE
//! file system, tests/support/lying_fs.py).
//!
//! The property in every case: the run is verified exactly (every byte
//! hashed is the signed byte, exit 0) or rejected (exit 1, the file named),
//! within a time bound; never a hang, never exit 0 on other bytes.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

/// A signed model of `files` (plus `count` filler files, so that a walk
/// takes long enough to race), its signature and key.
struct Signed {
    dir: tempfile::TempDir,
    keys: Keys,
}

impl Signed {
    fn new(files: &[(&str, &[u8])], filler: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        write_files(&model, files);
        if filler > 0 {
            std::fs::create_dir(model.join("filler")).unwrap();
        }
        for i in 0..filler {
            std::fs::write(model.join(format!("filler/{i:03}")), [i as u8; 64]).unwrap();
        }
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        let keys = keypair("P-256");
        attest(&model, &keys.private, dir.path().join("model.sig"));
        Self { dir, keys }
    }

    fn model(&self) -> PathBuf {
        self.dir.path().join("model")
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// Runs verify with a deadline of its own: a hang is a failure.
    fn verify(&self) -> (Run, Duration) {
        let started = Instant::now();
        // A hung run is killed by the panic below (Process's drop).
        let mut child = Process::spawn(
            Command::new(env!("CARGO_BIN_EXE_modelgate"))
                .args(verify_args(
                    self.model(),
                    self.dir.path().join("model.sig"),
                    &self.keys.public,
                ))
                .env("MODELGATE_LOG_FORMAT", "text")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!("modelgate verify hung for 20 s under attack");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (run, started.elapsed())
    }
}

/// Runs `attack` in a loop on another thread while `runs` verifications
/// run. Every run must end (within `Signed::verify`'s bound) with exit 0
/// (verified), 1 (the model is wrong) or 2 (a file could not be checked),
/// never a crash; `judge` checks what else each case requires.
fn race(s: &Signed, runs: usize, attack: impl Fn() + Send + 'static, judge: impl Fn(&Run)) {
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                attack();
            }
        })
    };
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..runs {
        let (run, _) = s.verify();
        assert!(
            (0..=2).contains(&run.code),
            "exit {} (-1: killed by a signal):\n{}",
            run.code,
            run.stderr
        );
        judge(&run);
        *codes.entry(run.code).or_insert(0) += 1;
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    eprintln!("exit codes under attack: {codes:?}");
}

#[test]
fn a_file_swapped_for_a_link_to_a_fifo_between_walk_and_open_never_hangs_or_passes() {
    // The attacker flips `config.json` between the signed file and a
    // symbolic link to a FIFO outside the model (opening a FIFO for reading
    // blocks until a writer comes: a reader that followed the link would
    // hang the pod's start for ever).
    let s = Signed::new(&[("config.json", b"{\"signed\": true}")], 200);
    let fifo = s.outside().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (path, spare) = (s.model().join("config.json"), s.outside().join("spare"));
    std::fs::copy(&path, &spare).unwrap();
    let link = s.outside().join("link");
    symlink(&fifo, &link).unwrap();
    let (p, l, f) = (path, link, spare);
    race(
        &s,
        30,
        move || {
            // rename() swaps atomically: the name always exists.
            let _ = std::fs::hard_link(&l, s_tmp(&l));
            let _ = std::fs::rename(s_tmp(&l), &p);
            let _ = std::fs::copy(&f, s_tmp(&f));
            let _ = std::fs::rename(s_tmp(&f), &p);
        },
        |run| {
            // The walk saw the link: exit 1 (the model is wrong). The walk
            // saw the file and the open found the link: exit 2 (could not
            // check that file). Either way the link is named, not followed.
            if run.code != 0 {
                assert!(
                    run.stderr.contains("config.json: is a symbolic link"),
                    "{}",
                    run.stderr
                );
            }
        },
    );
}

/// A sibling temporary name for an atomic swap.
fn s_tmp(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".swap");
    PathBuf::from(name)
}

#[test]
fn a_folder_replaced_by_a_symlink_mid_walk_is_rejected_or_walked_as_signed() {
    // `weights/` flips between the signed folder and a symbolic link to a
    // folder outside with other bytes under the same names.
    let s = Signed::new(
        &[
            ("weights/a.bin", b"signed a"),
            ("weights/b.bin", b"signed b"),
        ],
        200,
    );
    let real = s.outside().join("real");
    let evil = s.outside().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    write_files(&evil, &[("a.bin", b"other a"), ("b.bin", b"other b")]);
    std::fs::rename(s.model().join("weights"), &real).unwrap();
    let weights = s.model().join("weights");
    let link = s.outside().join("link");
    symlink(&evil, &link).unwrap();
    // The attacker alternates: the real folder (moved in), then the link.
    std::fs::rename(&real, &weights).unwrap();
    let (w, r, l) = (weights, real, link);
    race(
        &s,
        30,
        move || {
            let _ = std::fs::rename(&w, &r);
            let _ = std::fs::hard_link(&l, s_tmp(&l));
            let _ = std::fs::rename(s_tmp(&l), &w);
            std::thread::yield_now();
            let _ = std::fs::remove_file(&w);
            let _ = std::fs::rename(&r, &w);
        },
        |run| {
            // Exit 1: the walk saw the link (or missing files); exit 2: a
            // file the walk listed was gone at the open ("could not check").
            // Never the other bytes: the link is never followed, so a
            // rejection is about the link or missing files, never a file
            // read through it and found modified.
            assert!(
                !run.stderr.contains(": modified"),
                "followed the link:\n{}",
                run.stderr
            );
        },
    );
}

#[test]
fn a_file_that_grows_or_shrinks_while_hashed_is_rejected_or_hashed_as_signed() {
    // 64 MiB, hashed in windows; the attacker truncates it to half and
    // writes it back, again and again. A window whose pages vanish raises
    // SIGBUS, which modelgate turns into exit 1 with a message (see
    // src/model/mapped.rs); a size change seen by fstat is exit 1 naming
    // the file.
    let big = bytes(64 << 20, 7);
    let s = Signed::new(&[("model.safetensors", &big)], 0);
    let path = s.model().join("model.safetensors");
    let (p, content) = (path.clone(), big.clone());
    let measurement = s.dir.path().join("m.json");
    let judge = |run: &Run| {
        assert_ne!(run.code, 2, "{}", run.stderr);
        if run.code == 1 {
            assert!(
                run.stderr.contains("model.safetensors")
                    || run
                        .stderr
                        .contains("a model file shrank while it was being hashed"),
                "{}",
                run.stderr
            );
        }
    };
    race(
        &s,
        12,
        move || {
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(32 << 20).unwrap();
            std::thread::sleep(Duration::from_millis(3));
            std::fs::write(&p, &content).unwrap();
            f.set_len(96 << 20).unwrap();
            std::thread::sleep(Duration::from_millis(3));
            f.set_len(64 << 20).unwrap();
        },
        judge,
    );
    // Left alone again, the file verifies: nothing was cached between runs.
    std::fs::write(&path, &big).unwrap();
    let mut args = verify_args(s.model(), s.dir.path().join("model.sig"), &s.keys.public);
    args.extend([OsString::from("--measurement"), measurement.into()]);
    modelgate(args).expect_code(0);
}

#[test]
fn hard_links_to_files_outside_the_model_verify_by_their_bytes() {
    // A hard link is the same file under two names; the bytes under the
    // model's name are the signed bytes, so the model verifies. Whoever can
    // write the other name can change the model afterwards: that is the
    // "the model must stay read-only after" limit in SECURITY.md, and the
    // deploy/ manifests mount the volume read-only for the server.
    let s = Signed::new(&[("config.json", b"{\"signed\": true}")], 0);
    let outside = s.outside().join("alias");
    std::fs::remove_file(s.model().join("config.json")).unwrap();
    std::fs::write(&outside, b"{\"signed\": true}").unwrap();
    std::fs::hard_link(&outside, s.model().join("config.json")).unwrap();
    s.verify().0.expect_code(0);
    // Changed through the other name: rejected, naming the file.
    std::fs::write(&outside, b"{\"signed\": false}").unwrap();
    s.verify().0.expect_code(1).expect_stderr("config.json");
}

#[test]
fn names_with_newlines_and_invalid_utf8_cannot_hide_or_pass() {
    // A name with a newline signs and verifies (model_signing signs any
    // name), and an extra file whose name is a newline-forged copy of a
    // signed line is reported as extra, with the name escaped.
    let s = Signed::new(&[("a\nb.txt", b"signed")], 0);
    s.verify().0.expect_code(0);
    std::fs::write(s.model().join("config.json\n"), b"x").unwrap();
    let (run, _) = s.verify();
    run.expect_code(1).expect_stderr("config.json\\n");
    // A name that is not UTF-8 cannot be written in a signature (JSON
    // strings are Unicode): the file is reported, escaped, not skipped, and
    // the model could not be checked (exit 2).
    let s = Signed::new(&[("ok.txt", b"signed")], 0);
    let bad = s
        .model()
        .join(std::ffi::OsString::from_vec(b"bad\xff.bin".to_vec()));
    std::fs::write(&bad, b"x").unwrap();
    let (run, _) = s.verify();
    run.expect_code(2).expect_stderr(
        r#""bad\xFF.bin" is not a UTF-8 file name; the signature format cannot name it"#,
    );
}

/// tests/support/lying_fs.py mounted over a copy of the tiny model, lying
/// about `model.safetensors`; unmounted (and the file system's process
/// stopped) when dropped.
struct LyingFs {
    dir: tempfile::TempDir,
    child: Process,
}

impl LyingFs {
    fn mount(mode: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (source, mnt) = (dir.path().join("source"), dir.path().join("model"));
        std::fs::create_dir(&source).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        for (name, path) in crate::common::registry::tiny_files() {
            std::fs::copy(path, source.join(name)).unwrap();
        }
        // Owned (and unmounted) from the start: a mount that does not come
        // up in time ends in a panic that drops it.
        let fs = Self {
            child: Process::spawn(
                Command::new(venv().join("bin/python"))
                    .arg(repo("tests/support/lying_fs.py"))
                    .args([&source, &mnt])
                    .args(["model.safetensors", mode])
                    .stderr(Stdio::piped()),
            ),
            dir,
        };
        let started = Instant::now();
        while !std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(mnt.to_str().unwrap())
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the FUSE file system did not mount (it needs root, /dev/fuse and libfuse2)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fs
    }

    fn model(&self) -> PathBuf {
        self.dir.path().join("model")
    }
}

impl Drop for LyingFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.model()).status();
        self.child.stop();
    }
}

#[test]
fn a_filesystem_that_lies_about_sizes_gets_the_bytes_a_reader_gets_hashed() {
    // modelgate hashes exactly what a reader of the mount gets (the kernel
    // bounds reads by the size the file system reports): verified when that
    // is the signed content, rejected naming the file when it is not.
    let signed = std::fs::read(repo("fixtures/tiny-model/model.safetensors")).unwrap();
    for (mode, verified) in [
        // stat tells the truth, reads stop at half: other bytes.
        ("short", false),
        // reads offer 4096 bytes past the end: the kernel stops at the size.
        ("long", true),
        // stat says half the size: readers get half.
        ("grows", false),
        // stat says 0, like a /proc file: readers get nothing.
        ("zero", false),
    ] {
        let fs = LyingFs::mount(mode);
        let seen = std::fs::read(fs.model().join("model.safetensors")).unwrap();
        assert_eq!(
            seen == signed,
            verified,
            "{mode}: a reader got {} bytes",
            seen.len()
        );
        let run = verify(
            fs.model(),
            repo("fixtures/tiny-model.sig"),
            repo("fixtures/keys/test-signer.pub.pem"),
        );
        if verified {
            run.expect_code(0);
        } else {
            run.expect_code(1)
                .expect_stderr("model.safetensors: modified: expected digest 364a484cf57f5f8798f57a78881dd5ea0d0a4c0a3c3a2ac602e05d1f615e92c9");
        }
    }
}
