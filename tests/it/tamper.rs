//! The tamper matrix: every way of changing a signed model or its signature
//! is rejected, with the exit code and the message a user needs.

use std::os::unix::fs::symlink;
use std::process::Command;

use crate::common::*;
use tempfile::TempDir;

/// A model signed by modelgate with a P-256 key, signature outside the model.
struct Signed {
    model: TempDir,
    sig_dir: TempDir,
    keys: Keys,
}

impl Signed {
    fn new(extra: &[&str]) -> Self {
        let keys = keypair("P-256");
        let model = rich_model();
        let sig_dir = tempfile::tempdir().unwrap();
        let s = Self {
            model,
            sig_dir,
            keys,
        };
        let mut args = vec![
            "attest".to_string(),
            s.m(),
            "--key".into(),
            s.keys.private.to_string_lossy().into(),
            "--signature".into(),
            s.sig(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        modelgate(&args).expect_code(0);
        s
    }
    fn m(&self) -> String {
        self.model.path().to_string_lossy().into_owned()
    }
    fn sig(&self) -> String {
        self.sig_dir
            .path()
            .join("model.sig")
            .to_string_lossy()
            .into_owned()
    }
    fn file(&self, rel: &str) -> std::path::PathBuf {
        self.model.path().join(rel)
    }
    fn verify(&self) -> Run {
        modelgate([
            "verify",
            &self.m(),
            "--signature",
            &self.sig(),
            "--key",
            &self.keys.public.to_string_lossy(),
        ])
    }
    fn digest_of(&self, rel: &str) -> String {
        let sig: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.sig()).unwrap()).unwrap();
        let payload = decode(sig["dsseEnvelope"]["payload"].as_str().unwrap());
        let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let resources = statement["predicate"]["resources"].as_array().unwrap();
        let r = resources.iter().find(|r| r["name"] == rel).unwrap();
        r["digest"].as_str().unwrap().to_string()
    }
}

fn decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

const WEIGHTS: &str = "sub dir/\u{fc}nicode weights.bin";

#[test]
fn untouched_model_verifies() {
    Signed::new(&[]).verify().expect_code(0);
}

#[test]
fn flipped_bit_names_file_and_both_digests() {
    let s = Signed::new(&[]);
    let expected = s.digest_of(WEIGHTS);
    let mut data = std::fs::read(s.file(WEIGHTS)).unwrap();
    data[1234] ^= 0x01;
    std::fs::write(s.file(WEIGHTS), &data).unwrap();
    let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
    s.verify()
        .expect_code(1)
        .expect_stderr(&format!(
            "{WEIGHTS}: modified: expected digest {expected}, found {actual}"
        ))
        .expect_stderr("restore the file from the signed source");
}

#[test]
fn truncated_and_appended_files_are_modified() {
    let s = Signed::new(&[]);
    let data = std::fs::read(s.file(WEIGHTS)).unwrap();
    std::fs::write(s.file(WEIGHTS), &data[..data.len() - 1]).unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr(&format!("{WEIGHTS}: modified"));
    let mut longer = data.clone();
    longer.push(0);
    std::fs::write(s.file(WEIGHTS), &longer).unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr(&format!("{WEIGHTS}: modified"));
}

#[test]
fn removed_file_is_missing() {
    let s = Signed::new(&[]);
    std::fs::remove_file(s.file("config.json")).unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr("config.json: missing: signed with digest");
}

#[test]
fn added_files_and_dotfiles_are_extra() {
    let s = Signed::new(&[]);
    std::fs::write(s.file("nested/new.bin"), "x").unwrap();
    std::fs::write(s.file(".env"), "SECRET=1").unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr("nested/new.bin: extra: on disk but not signed")
        .expect_stderr(".env: extra")
        .expect_stderr("2 problems");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let s = Signed::new(&[]);
    std::fs::remove_file(s.file("config.json")).unwrap();
    std::fs::write(s.file("tokenizer.json"), "{}").unwrap();
    std::fs::write(s.file("added"), "x").unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr("config.json: missing")
        .expect_stderr("tokenizer.json: modified")
        .expect_stderr("added: extra")
        .expect_stderr("3 problems");
}

#[test]
fn renamed_file_is_missing_and_extra() {
    let s = Signed::new(&[]);
    std::fs::rename(s.file("config.json"), s.file("config2.json")).unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr("config.json: missing")
        .expect_stderr("config2.json: extra");
}

#[test]
fn swapped_contents_are_both_modified() {
    let s = Signed::new(&[]);
    let a = std::fs::read(s.file("config.json")).unwrap();
    let b = std::fs::read(s.file("tokenizer.json")).unwrap();
    std::fs::write(s.file("config.json"), b).unwrap();
    std::fs::write(s.file("tokenizer.json"), a).unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr("config.json: modified")
        .expect_stderr("tokenizer.json: modified");
}

#[test]
fn symlink_to_an_identical_copy_is_rejected() {
    let s = Signed::new(&[]);
    let outside = tempfile::tempdir().unwrap();
    let copy = outside.path().join("config.json");
    std::fs::copy(s.file("config.json"), &copy).unwrap();
    std::fs::remove_file(s.file("config.json")).unwrap();
    symlink(&copy, s.file("config.json")).unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr("config.json: is a symbolic link and the signature does not allow symlinks");
}

#[test]
fn symlinked_parent_folder_is_rejected() {
    let s = Signed::new(&[]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::rename(s.file("nested"), outside.path().join("nested")).unwrap();
    symlink(outside.path().join("nested"), s.file("nested")).unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr("nested: is a symbolic link")
        .expect_stderr("nested/a/b/exact.bin: missing");
}

#[test]
fn file_turned_into_a_folder_is_rejected() {
    let s = Signed::new(&[]);
    std::fs::remove_file(s.file("config.json")).unwrap();
    std::fs::create_dir(s.file("config.json")).unwrap();
    std::fs::write(s.file("config.json/inner"), "{}").unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr("config.json: missing")
        .expect_stderr("config.json/inner: extra");
}

#[test]
fn fifo_in_place_of_a_file_is_rejected_without_hanging() {
    let s = Signed::new(&[]);
    std::fs::remove_file(s.file("config.json")).unwrap();
    let made = Command::new("mkfifo")
        .arg(s.file("config.json"))
        .status()
        .unwrap();
    assert!(made.success());
    s.verify()
        .expect_code(1)
        .expect_stderr("config.json: is a FIFO; only regular files can be part of a model");
}

#[test]
fn sockets_are_never_part_of_a_model() {
    let s = Signed::new(&[]);
    let _listener = std::os::unix::net::UnixListener::bind(s.file("nested/agent.sock")).unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr("nested/agent.sock: is a socket; only regular files can be part of a model");
}

#[test]
fn signature_for_another_model_is_rejected() {
    let s = Signed::new(&[]);
    let other = Signed::new(&[]);
    std::fs::write(other.file("config.json"), r#"{"model_type":"other"}"#).unwrap();
    modelgate([
        "attest",
        &other.m(),
        "--key",
        &other.keys.private.to_string_lossy(),
        "--signature",
        &other.sig(),
    ])
    .expect_code(0);
    modelgate([
        "verify",
        &s.m(),
        "--signature",
        &other.sig(),
        "--key",
        &other.keys.public.to_string_lossy(),
    ])
    .expect_code(1)
    .expect_stderr("config.json: modified");
}

#[test]
fn edited_payload_fails_the_signature_check() {
    let s = Signed::new(&[]);
    let mut sig: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.sig()).unwrap()).unwrap();
    let payload =
        String::from_utf8(decode(sig["dsseEnvelope"]["payload"].as_str().unwrap())).unwrap();
    // Point the signature at a tampered config, root digest and all: only
    // the DSSE signature can tell.
    let edited = payload.replace(&s.digest_of("config.json"), &"0".repeat(64));
    use base64::Engine as _;
    sig["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
        .encode(edited)
        .into();
    std::fs::write(s.sig(), serde_json::to_vec(&sig).unwrap()).unwrap();
    s.verify().expect_code(1).expect_stderr(
        "signature rejected: the DSSE signature does not verify with the trusted key",
    );
}

#[test]
fn wrong_key_is_rejected_with_both_fingerprints() {
    let s = Signed::new(&[]);
    let other = keypair("P-256");
    modelgate([
        "verify",
        &s.m(),
        "--signature",
        &s.sig(),
        "--key",
        &other.public.to_string_lossy(),
    ])
    .expect_code(1)
    .expect_stderr("signature rejected: it was made by the key with fingerprint")
    .expect_stderr("verify with the signer's public key");
    // same curve family, different size: still the wrong key
    let p384 = keypair("P-384");
    modelgate([
        "verify",
        &s.m(),
        "--signature",
        &s.sig(),
        "--key",
        &p384.public.to_string_lossy(),
    ])
    .expect_code(1);
}

#[test]
fn garbage_signature_files_are_rejected() {
    let s = Signed::new(&[]);
    for garbage in [
        &b"not json"[..],
        b"{}",
        b"[]",
        b"{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\"}",
        b"\xff\xfe",
    ] {
        std::fs::write(s.sig(), garbage).unwrap();
        s.verify()
            .expect_code(1)
            .expect_stderr("signature rejected: the signature is not a valid Sigstore bundle");
    }
}

#[test]
fn ignored_paths_may_change_but_nothing_else() {
    let s = Signed::new(&["--ignore-paths", "README.md"]);
    std::fs::write(s.file("README.md"), "edited").unwrap();
    std::fs::write(s.file(".git/HEAD"), "edited").unwrap();
    s.verify().expect_code(0);
    std::fs::write(s.file(".gitmodules"), "not a default ignore").unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr(".gitmodules: extra");
}

#[test]
fn ignore_unsigned_files_tolerates_extras_but_not_drift() {
    let s = Signed::new(&[]);
    std::fs::write(s.file("extra.txt"), "x").unwrap();
    let key = s.keys.public.to_string_lossy().into_owned();
    modelgate([
        "verify",
        &s.m(),
        "--signature",
        &s.sig(),
        "--key",
        &key,
        "--ignore-unsigned-files",
    ])
    .expect_code(0)
    .expect_stderr("unsigned file tolerated");
    std::fs::write(s.file("config.json"), "{}").unwrap();
    modelgate([
        "verify",
        &s.m(),
        "--signature",
        &s.sig(),
        "--key",
        &key,
        "--ignore-unsigned-files",
    ])
    .expect_code(1)
    .expect_stderr("config.json: modified");
}

#[test]
fn allowed_symlinks_must_stay_inside_the_model() {
    let keys = keypair("P-256");
    let model = tempfile::tempdir().unwrap();
    write_files(
        model.path(),
        &[("blobs/abc", b"weights"), ("config.json", b"{}")],
    );
    std::fs::create_dir(model.path().join("snapshots")).unwrap();
    symlink("../blobs/abc", model.path().join("snapshots/model.bin")).unwrap();
    let sig_dir = tempfile::tempdir().unwrap();
    let sig = sig_dir.path().join("m.sig");
    let m = model.path().to_string_lossy().into_owned();
    let (sig_s, prv, publ) = (
        sig.to_string_lossy().into_owned(),
        keys.private.to_string_lossy().into_owned(),
        keys.public.to_string_lossy().into_owned(),
    );

    // without --allow-symlinks attest refuses
    modelgate(["attest", &m, "--key", &prv, "--signature", &sig_s])
        .expect_code(2)
        .expect_stderr("snapshots/model.bin is a symbolic link");
    modelgate([
        "attest",
        &m,
        "--key",
        &prv,
        "--signature",
        &sig_s,
        "--allow-symlinks",
    ])
    .expect_code(0);
    modelgate(["verify", &m, "--signature", &sig_s, "--key", &publ]).expect_code(0);
    // the reference agrees on what a signed symlink means
    reference([
        "verify",
        "--model",
        &m,
        "--signature",
        &sig_s,
        "--key",
        &publ,
        "--allow-symlinks",
    ])
    .expect_code(0);

    // retarget the link outside the model, to a file with the same content
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("abc"), "weights").unwrap();
    std::fs::remove_file(model.path().join("snapshots/model.bin")).unwrap();
    symlink(
        outside.path().join("abc"),
        model.path().join("snapshots/model.bin"),
    )
    .unwrap();
    modelgate(["verify", &m, "--signature", &sig_s, "--key", &publ])
        .expect_code(1)
        .expect_stderr("snapshots/model.bin: is a symbolic link that leads outside the model root");
}

#[test]
fn sharded_signature_reports_a_size_change() {
    let s = Signed::new(&["--shard-size", "1000"]);
    let data = std::fs::read(s.file(WEIGHTS)).unwrap();
    std::fs::write(s.file(WEIGHTS), &data[..2500]).unwrap();
    s.verify().expect_code(1).expect_stderr(&format!(
        "{WEIGHTS}: modified: expected 3000 bytes, found 2500"
    ));
    let mut flipped = data.clone();
    flipped[2999] ^= 0x80;
    std::fs::write(s.file(WEIGHTS), &flipped).unwrap();
    s.verify()
        .expect_code(1)
        .expect_stderr(&format!("{WEIGHTS}:2000:3000: modified"));
}

#[test]
fn a_file_name_no_manifest_can_hold_stops_verification() {
    use std::os::unix::ffi::OsStrExt;
    let s = Signed::new(&[]);
    let name = std::ffi::OsStr::from_bytes(b"weights-\xff.bin");
    std::fs::write(s.model.path().join(name), "x").unwrap();
    s.verify()
        .expect_code(2)
        .expect_stderr("is not a UTF-8 file name; the signature format cannot name it");
}
