//! What the reference implementation (model_signing 1.1.1) signs, modelgate
//! verifies, and the other way round, across methods, hashes and curves.

use std::path::Path;

use crate::common::*;

/// One signing configuration, spelled for both tools.
struct Case {
    curve: &'static str,
    hash: &'static str,
    shard_size: Option<u64>,
}

const CASES: [Case; 6] = [
    Case {
        curve: "P-256",
        hash: "sha256",
        shard_size: None,
    },
    Case {
        curve: "P-384",
        hash: "blake2b",
        shard_size: None,
    },
    Case {
        curve: "P-521",
        hash: "blake3",
        shard_size: None,
    },
    Case {
        curve: "P-521",
        hash: "sha256",
        shard_size: Some(1000),
    },
    Case {
        curve: "P-256",
        hash: "blake2b",
        shard_size: Some(1000),
    },
    // 2048-byte file in 512-byte shards: shard ends fall exactly on the file end.
    Case {
        curve: "P-384",
        hash: "sha256",
        shard_size: Some(512),
    },
];

impl Case {
    fn reference_args(&self) -> Vec<String> {
        let mut args = vec![
            "--hash".into(),
            self.hash.into(),
            "--ignore".into(),
            "README.md".into(),
        ];
        if let Some(size) = self.shard_size {
            args.extend([
                "--method".into(),
                "shards".into(),
                "--shard-size".into(),
                size.to_string(),
            ]);
        }
        args
    }

    fn modelgate_args(&self) -> Vec<String> {
        let mut args = vec![
            "--hash".into(),
            self.hash.into(),
            "--ignore-paths".into(),
            "README.md".into(),
        ];
        if let Some(size) = self.shard_size {
            args.extend(["--shard-size".into(), size.to_string()]);
        }
        args
    }
}

fn sig_in(dir: &tempfile::TempDir) -> String {
    dir.path().join("model.sig").to_string_lossy().into_owned()
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn modelgate_verifies_what_the_reference_signs() {
    for case in &CASES {
        let keys = keypair(case.curve);
        let model = rich_model();
        let m = path(model.path());
        let sig = sig_in(&model); // the signature lies inside the model
        let mut args = vec![
            "sign".to_string(),
            "--model".into(),
            m.clone(),
            "--signature".into(),
            sig.clone(),
            "--key".into(),
            path(&keys.private),
        ];
        args.extend(case.reference_args());
        reference(&args).expect_code(0);

        let ok = modelgate([
            "verify",
            &m,
            "--signature",
            &sig,
            "--key",
            &path(&keys.public),
        ]);
        ok.expect_code(0).expect_stderr("verified");

        // The ignored README may change; a signed file may not.
        std::fs::write(model.path().join("README.md"), "changed").unwrap();
        modelgate([
            "verify",
            &m,
            "--signature",
            &sig,
            "--key",
            &path(&keys.public),
        ])
        .expect_code(0);
        std::fs::write(model.path().join("config.json"), "{}").unwrap();
        modelgate([
            "verify",
            &m,
            "--signature",
            &sig,
            "--key",
            &path(&keys.public),
        ])
        .expect_code(1)
        .expect_stderr("config.json")
        .expect_stderr("modified");
    }
}

#[test]
fn the_reference_verifies_what_modelgate_signs() {
    for case in &CASES {
        let keys = keypair(case.curve);
        let model = rich_model();
        let m = path(model.path());
        let sig = sig_in(&model);
        let mut args = vec![
            "attest".to_string(),
            m.clone(),
            "--key".into(),
            path(&keys.pkcs8),
            "--signature".into(),
            sig.clone(),
        ];
        args.extend(case.modelgate_args());
        modelgate(&args).expect_code(0);

        let mut check = vec![
            "verify".to_string(),
            "--model".into(),
            m.clone(),
            "--signature".into(),
            sig.clone(),
            "--key".into(),
            path(&keys.public),
        ];
        check.extend(case.reference_args());
        reference(&check).expect_code(0);
        // and the reference rejects drift in what modelgate signed
        std::fs::write(model.path().join("nested/a/b/exact.bin"), "x").unwrap();
        reference(&check).expect_code(1);
    }
}

#[test]
fn the_reference_cli_verifies_modelgate_files_sha256_and_modelgate_verifies_its_cli() {
    let keys = keypair("P-256");
    let model = rich_model();
    let m = path(model.path());
    let sig = sig_in(&model);
    modelgate([
        "attest",
        &m,
        "--key",
        &path(&keys.private),
        "--signature",
        &sig,
    ])
    .expect_code(0);
    reference_cli([
        "verify",
        "key",
        "--public_key",
        &path(&keys.public),
        "--signature",
        &sig,
        &m,
    ])
    .expect_code(0);

    let other = rich_model();
    let o = path(other.path());
    let osig = sig_in(&other);
    let readme = path(&other.path().join("README.md"));
    reference_cli([
        "sign",
        "key",
        "--private_key",
        &path(&keys.private),
        "--signature",
        &osig,
        "--ignore-paths",
        &readme,
        &o,
    ])
    .expect_code(0);
    modelgate([
        "verify",
        &o,
        "--signature",
        &osig,
        "--key",
        &path(&keys.public),
    ])
    .expect_code(0);
}

#[test]
fn single_file_models_verify_both_ways() {
    let keys = keypair("P-256");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.gguf");
    std::fs::write(&file, bytes(5000, 9)).unwrap();
    let f = path(&file);
    let ref_sig = path(&dir.path().join("ref.sig"));
    let our_sig = path(&dir.path().join("ours.sig"));

    reference([
        "sign",
        "--model",
        &f,
        "--signature",
        &ref_sig,
        "--key",
        &path(&keys.private),
    ])
    .expect_code(0);
    modelgate([
        "verify",
        &f,
        "--signature",
        &ref_sig,
        "--key",
        &path(&keys.public),
    ])
    .expect_code(0);

    modelgate([
        "attest",
        &f,
        "--key",
        &path(&keys.private),
        "--signature",
        &our_sig,
    ])
    .expect_code(0);
    reference([
        "verify",
        "--model",
        &f,
        "--signature",
        &our_sig,
        "--key",
        &path(&keys.public),
    ])
    .expect_code(0);

    std::fs::write(&file, bytes(5000, 10)).unwrap();
    modelgate([
        "verify",
        &f,
        "--signature",
        &our_sig,
        "--key",
        &path(&keys.public),
    ])
    .expect_code(1)
    .expect_stderr(".: modified");
}

#[test]
fn digest_prints_the_subject_digest_the_reference_signs() {
    let keys = keypair("P-256");
    let model = rich_model();
    let m = path(model.path());
    let outside = tempfile::tempdir().unwrap();
    let sig = path(&outside.path().join("m.sig"));
    reference([
        "sign",
        "--model",
        &m,
        "--signature",
        &sig,
        "--key",
        &path(&keys.private),
    ])
    .expect_code(0);
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    let payload = base64_decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap());
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let subject = statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap();

    let out = modelgate(["digest", &m]);
    out.expect_code(0);
    assert_eq!(out.stdout.trim(), format!("sha256:{subject}"));
}

#[test]
fn signatures_released_by_the_reference_verify() {
    // fixtures/oms-released: made by model_signing v1.1.0 (see its SOURCE.md)
    let dir = repo("fixtures/oms-released/v1.1.0-elliptic-key");
    let key = repo("fixtures/oms-released/keys/signing-key-pub.pem");
    verify(&dir, dir.join("model.sig"), key).expect_code(0);
    // the repo's own fixture, signed by the reference's CLI
    let tiny = repo("fixtures/tiny-model");
    let tiny_sig = repo("fixtures/tiny-model.sig");
    let tiny_key = repo("fixtures/keys/test-signer.pub.pem");
    verify(tiny, tiny_sig, tiny_key).expect_code(0);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
