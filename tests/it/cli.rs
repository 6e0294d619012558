//! The command line as users and kubelet meet it: exit codes, usage errors,
//! and the measurement document.

use crate::common::*;
use serde_json::Value;

fn signed_model() -> (tempfile::TempDir, tempfile::TempDir, Keys) {
    let keys = keypair("P-384");
    let model = rich_model();
    let out = tempfile::tempdir().unwrap();
    let sig = out.path().join("m.sig");
    attest(model.path(), &keys.private, &sig);
    (model, out, keys)
}

fn verify_with_measurement(
    model: &std::path::Path,
    out: &std::path::Path,
    key: &std::path::Path,
) -> (Run, Value) {
    let meas = out.join("measurement.json");
    let mut args = verify_args(model, out.join("m.sig"), key);
    args.extend(["--measurement".into(), meas.clone().into()]);
    let run = modelgate(args);
    let doc = serde_json::from_slice(
        &std::fs::read(&meas).expect("a measurement is written whatever the verdict"),
    )
    .unwrap();
    (run, doc)
}

#[test]
fn measurement_of_a_verified_model_records_what_and_who() {
    let (model, out, keys) = signed_model();
    let (run, doc) = verify_with_measurement(model.path(), out.path(), &keys.public);
    run.expect_code(0);
    assert_eq!(doc["schemaVersion"], "modelgate.dev/measurement/v1");
    assert_eq!(doc["verdict"], "verified");
    assert_eq!(doc["tool"]["name"], "modelgate");
    assert!(
        doc["time"].as_str().unwrap().ends_with('Z'),
        "UTC time: {}",
        doc["time"]
    );
    assert_eq!(doc["model"]["path"], model.path().to_str().unwrap());
    assert!(
        doc["model"]["rootDigest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(doc["model"]["serialization"]["method"], "files");
    assert_eq!(doc["model"]["serialization"]["hashType"], "sha256");
    let files: Vec<&str> = doc["model"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"config.json") && files.contains(&"empty.txt"),
        "{files:?}"
    );
    assert_eq!(doc["signers"][0]["method"], "key");
    assert_eq!(doc["signers"][0]["curve"], "P-384");
    assert!(
        doc["signers"][0]["keyFingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let sig_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(out.path().join("m.sig")).unwrap(),
    ));
    assert_eq!(doc["signatures"][0]["sha256"], sig_sha);
    assert_eq!(doc["policy"]["rule"], "command-line");
    assert_eq!(doc["signers"][0]["authority"], "command-line");
    assert_eq!(doc["reasons"], serde_json::json!([]));
}

#[test]
fn a_rejected_run_replaces_an_earlier_verified_measurement() {
    let (model, out, keys) = signed_model();
    let (_, first) = verify_with_measurement(model.path(), out.path(), &keys.public);
    assert_eq!(first["verdict"], "verified");
    std::fs::write(model.path().join("config.json"), "{}").unwrap();
    let (run, doc) = verify_with_measurement(model.path(), out.path(), &keys.public);
    run.expect_code(1);
    assert_eq!(doc["verdict"], "rejected");
    assert_eq!(doc["reasons"][0]["kind"], "modified");
    assert_eq!(doc["reasons"][0]["path"], "config.json");
    assert_eq!(
        doc["reasons"][0]["actual"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"{}"))
    );
    assert!(
        !serde_json::to_string(&doc)
            .unwrap()
            .contains("\"verified\"")
    );
}

#[test]
fn an_unusable_key_is_exit_2_and_recorded_as_error() {
    let (model, out, _) = signed_model();
    let bad = out.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let (run, doc) = verify_with_measurement(model.path(), out.path(), &bad);
    run.expect_code(2)
        .expect_stderr("not a PEM SubjectPublicKeyInfo EC key");
    assert_eq!(doc["verdict"], "error");
}

#[test]
fn missing_inputs_are_exit_2() {
    let (model, out, keys) = signed_model();
    let m = model.path().to_str().unwrap();
    let k = keys.public.to_str().unwrap();
    let sig = out.path().join("m.sig");
    let s = sig.to_str().unwrap();
    modelgate(["verify", m, "--signature", "/nonexistent/m.sig", "--key", k])
        .expect_code(2)
        .expect_stderr("could not check: cannot read signature /nonexistent/m.sig");
    modelgate(["verify", "/nonexistent/model", "--signature", s, "--key", k])
        .expect_code(2)
        .expect_stderr("cannot open model /nonexistent/model");
    modelgate([
        "verify",
        m,
        "--signature",
        s,
        "--key",
        "/nonexistent/key.pub",
    ])
    .expect_code(2)
    .expect_stderr("cannot read public key /nonexistent/key.pub");
}

#[test]
fn usage_errors_are_exit_2() {
    modelgate(["verify", "m", "--key", "k.pub"])
        .expect_code(2)
        .expect_stderr("--signature is required for a model on disk");
    modelgate(["frobnicate"]).expect_code(2);
    modelgate([
        "attest",
        "m",
        "--key",
        "k",
        "--signature",
        "s",
        "--hash",
        "md5",
    ])
    .expect_code(2);
    modelgate(["--help"]).expect_code(0);
    let out = modelgate(["--version"]);
    out.expect_code(0);
    assert!(out.stdout.starts_with("modelgate "));
}

#[test]
fn attest_refuses_an_empty_model_and_blake3_shards() {
    let keys = keypair("P-256");
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join(".git")).unwrap();
    std::fs::write(empty.path().join(".git/HEAD"), "x").unwrap();
    let sig = tempfile::tempdir().unwrap();
    let s = sig.path().join("s.sig");
    let (e, k, sp) = (
        empty.path().to_str().unwrap(),
        keys.private.to_str().unwrap(),
        s.to_str().unwrap(),
    );
    modelgate(["attest", e, "--key", k, "--signature", sp])
        .expect_code(2)
        .expect_stderr("has no files to sign");
    assert!(!s.exists(), "no signature is written for an empty model");
    let model = rich_model();
    modelgate([
        "attest",
        model.path().to_str().unwrap(),
        "--key",
        k,
        "--signature",
        sp,
        "--hash",
        "blake3",
        "--shard-size",
        "1000",
    ])
    .expect_code(2)
    .expect_stderr("blake3 models are hashed by file");
}

#[test]
fn attest_rejects_unusable_private_keys() {
    let model = rich_model();
    let dir = tempfile::tempdir().unwrap();
    let enc = dir.path().join("enc.pem");
    std::fs::write(
        &enc,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let s = dir.path().join("s.sig");
    modelgate([
        "attest".as_ref(),
        model.path().as_os_str(),
        "--key".as_ref(),
        enc.as_os_str(),
        "--signature".as_ref(),
        s.as_os_str(),
    ])
    .expect_code(2)
    .expect_stderr("encrypted private keys are not supported");
    let public = keypair("P-256");
    modelgate([
        "attest".as_ref(),
        model.path().as_os_str(),
        "--key".as_ref(),
        public.public.as_os_str(),
        "--signature".as_ref(),
        s.as_os_str(),
    ])
    .expect_code(2)
    .expect_stderr("not an unencrypted SEC1 or PKCS#8 PEM EC private key");
}

#[test]
fn ignore_paths_are_taken_relative_to_the_model_or_through_it() {
    let keys = keypair("P-256");
    let model = rich_model();
    let m = model.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.sig");
    let sp = s.to_str().unwrap();
    let k = keys.private.to_str().unwrap();
    let through = format!("{m}/README.md");
    for spelling in ["README.md", "./README.md", through.as_str()] {
        modelgate([
            "attest",
            m,
            "--key",
            k,
            "--signature",
            sp,
            "--ignore-paths",
            spelling,
        ])
        .expect_code(0);
        let sig: Value = serde_json::from_slice(&std::fs::read(&s).unwrap()).unwrap();
        let payload = base64_decode(sig["dsseEnvelope"]["payload"].as_str().unwrap());
        let st: Value = serde_json::from_slice(&payload).unwrap();
        let ignores = st["predicate"]["serialization"]["ignore_paths"]
            .as_array()
            .unwrap();
        assert!(
            ignores.iter().any(|i| i == "README.md"),
            "{spelling}: {ignores:?}"
        );
    }
    modelgate([
        "attest",
        m,
        "--key",
        k,
        "--signature",
        sp,
        "--ignore-paths",
        "/etc/passwd",
    ])
    .expect_code(2)
    .expect_stderr("not a path inside the model");
    modelgate([
        "attest",
        m,
        "--key",
        k,
        "--signature",
        sp,
        "--ignore-paths",
        "../x",
    ])
    .expect_code(2)
    .expect_stderr("not a path inside the model");
}

#[test]
fn json_logs_when_not_on_a_terminal() {
    let (model, out, keys) = signed_model();
    let run = crate::common::modelgate_env(
        &[("MODELGATE_LOG_FORMAT", "auto")],
        verify_args(model.path(), out.path().join("m.sig"), &keys.public),
    );
    run.expect_code(0);
    for line in run.stderr.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string());
    }
    assert!(run.stderr.contains("\"message\":\"verified\""));
}

#[test]
fn the_readme_first_command_verifies_the_committed_fixture() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let first = readme
        .lines()
        .find(|l| l.starts_with("cargo run"))
        .expect("README starts with a cargo run command");
    assert!(first.contains("verify fixtures/tiny-model --signature fixtures/tiny-model.sig --key fixtures/keys/test-signer.pub.pem"));
    let tiny = repo("fixtures/tiny-model");
    verify(
        tiny,
        repo("fixtures/tiny-model.sig"),
        repo("fixtures/keys/test-signer.pub.pem"),
    )
    .expect_code(0);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn a_file_the_verifier_cannot_read_is_exit_2() {
    use std::os::unix::fs::PermissionsExt;
    let (model, out, keys) = signed_model();
    // Everything traversable, the one file not readable, by the user we run as.
    for p in [model.path(), out.path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in [out.path().join("m.sig"), keys.public.clone()] {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(
        keys.public.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let locked = model.path().join("config.json");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let args = verify_args(model.path(), out.path().join("m.sig"), &keys.public);
    // root reads any file, so drop to an unprivileged user when we are root.
    let run = if nix_is_root() {
        crate::common::run_as_nobody(env!("CARGO_BIN_EXE_modelgate"), &args)
    } else {
        modelgate(args)
    };
    run.expect_code(2)
        .expect_stderr(
            "could not check: config.json: permission denied; the verifier cannot read it",
        )
        .expect_stderr("model could not be verified: 1 problem");
}

#[test]
fn a_signature_that_is_a_folder_and_a_model_that_is_a_fifo_are_exit_2() {
    let (model, out, keys) = signed_model();
    let k = keys.public.to_str().unwrap();
    modelgate([
        "verify",
        model.path().to_str().unwrap(),
        "--signature",
        out.path().to_str().unwrap(),
        "--key",
        k,
    ])
    .expect_code(2)
    .expect_stderr("could not check: cannot read signature");
    let fifo = out.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    modelgate([
        "verify",
        fifo.to_str().unwrap(),
        "--signature",
        out.path().join("m.sig").to_str().unwrap(),
        "--key",
        k,
    ])
    .expect_code(2)
    .expect_stderr("is neither a folder nor a regular file");
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn a_verified_model_whose_measurement_cannot_be_written_does_not_start() {
    let (model, out, keys) = signed_model();
    // a folder where the document should go: the atomic rename cannot replace it
    let blocked = out.path().join("measurement.json");
    std::fs::create_dir(&blocked).unwrap();
    let mut args = verify_args(model.path(), out.path().join("m.sig"), &keys.public);
    args.extend(["--measurement".into(), blocked.into()]);
    let run = modelgate(args);
    run.expect_code(2)
        .expect_stderr("cannot write measurement")
        .expect_stderr("the model matched its signature, but its measurement could not be written; do not start the workload");
    assert!(
        !run.stderr.contains("INFO verified"),
        "no success line beside a failure:\n{}",
        run.stderr
    );
}
