//! Models signed in the pre-1.0 format: by model_signing 0.2.0 itself
//! (`fixtures/legacy-v0.2`, key and certificate methods), and the same
//! statement signed over the proper PAE (as the Go signer of that time did) or
//! keylessly. Refused by default with a message that says what it is and what
//! to do; accepted only under `--allow-legacy-format` or a policy rule's
//! `allowLegacyFormat`, verified as the reference verifies it, and compared
//! with the model as strictly as a v1.0 signature.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::common::*;
use base64::Engine as _;
use modelgate::oms::bundle::{self, Bundle};
use modelgate::trust::{PrivateKey, PublicKey};
use serde_json::Value;

const LEGACY_ENCODING: &str = "but over the pre-1.0 encoding that model_signing 0.2 wrote (a bug of that release), not the DSSE PAE; nothing was altered, but that format is not accepted by default: re-sign the model with a current signer (model_signing 1.x, or modelgate attest); during a migration window, --allow-legacy-format (allowLegacyFormat: true in a policy rule) accepts it";
const LEGACY_PREDICATE: &str = "the signature is in the pre-1.0 format that model_signing 0.2 wrote (predicate https://model_signing/Digests/v0.1); nothing was altered, but that format is not accepted by default: re-sign the model with a current signer";

fn fixture(name: &str) -> PathBuf {
    repo("fixtures/legacy-v0.2").join(name)
}

/// A writable copy of the legacy model.
fn model_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in walk(&fixture("model")) {
        let rel = entry.strip_prefix(fixture("model")).unwrap();
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
    dir
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn key_args(model: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut args = verify_args(model, fixture("key.sig"), fixture("key.pub.pem"));
    args.extend(extra.iter().map(OsString::from));
    args
}

fn cert_args(model: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "verify".into(),
        model.into(),
        "--signature".into(),
        fixture("cert.sig").into(),
        "--certificate-chain".into(),
        fixture("ca.pem").into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    args
}

#[test]
fn the_reference_verifies_what_model_signing_0_2_signed() {
    // The fixture is what the current reference accepts through its
    // compatibility path, for both methods.
    reference_cli([
        OsString::from("verify"),
        "key".into(),
        "--signature".into(),
        fixture("key.sig").into(),
        "--public_key".into(),
        fixture("key.pub.pem").into(),
        fixture("model").into(),
    ])
    .expect_code(0);
    reference_cli([
        OsString::from("verify"),
        "certificate".into(),
        "--signature".into(),
        fixture("cert.sig").into(),
        "--certificate_chain".into(),
        fixture("ca.pem").into(),
        fixture("model").into(),
    ])
    .expect_code(0);
}

#[test]
fn a_legacy_signature_is_refused_by_default_with_what_to_do() {
    let model = fixture("model");
    modelgate(key_args(&model, &[]))
        .expect_code(1)
        .expect_stderr(&format!(
            "signature rejected: the DSSE signature verifies with the trusted key {}, {LEGACY_ENCODING}",
            PublicKey::from_pem(&std::fs::read_to_string(fixture("key.pub.pem")).unwrap())
                .unwrap()
                .fingerprint()
        ));
    modelgate(cert_args(&model, &[]))
        .expect_code(1)
        .expect_stderr(&format!(
            "the DSSE signature verifies with the key of certificate CN=legacy signer, {LEGACY_ENCODING}"
        ));
}

#[test]
fn a_legacy_signature_verifies_with_the_opt_in_and_is_recorded() {
    let out = tempfile::tempdir().unwrap();
    let measurement = out.path().join("m.json");
    let m = s(&measurement);
    for args in [
        key_args(
            &fixture("model"),
            &["--allow-legacy-format", "--measurement", &m],
        ),
        cert_args(
            &fixture("model"),
            &["--allow-legacy-format", "--measurement", &m],
        ),
    ] {
        modelgate(args)
            .expect_code(0)
            .expect_stderr("the signature is in the pre-1.0 format (model_signing 0.2), accepted because the legacy format is allowed");
        let doc: Value = serde_json::from_slice(&std::fs::read(&measurement).unwrap()).unwrap();
        assert_eq!(doc["verdict"], "verified");
        assert_eq!(doc["policy"]["allowLegacyFormat"], true);
        assert_eq!(
            doc["model"]["predicateType"],
            "https://model_signing/Digests/v0.1"
        );
        assert_eq!(doc["model"]["legacyFormat"], true);
        assert_eq!(doc["signers"][0]["legacyEncoding"], true);
        let names: Vec<&str> = doc["model"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "back\\slash.txt",
                "config.json",
                "it's \u{fc}.txt",
                "tokenizer/vocab.txt",
                "weights.bin"
            ]
        );
    }
}

#[test]
fn a_v1_signature_records_its_predicate_and_no_legacy_flags() {
    let out = tempfile::tempdir().unwrap();
    let measurement = out.path().join("m.json");
    let mut args = verify_args(
        repo("fixtures/tiny-model"),
        repo("fixtures/tiny-model.sig"),
        repo("fixtures/keys/test-signer.pub.pem"),
    );
    args.extend(["--measurement".into(), measurement.clone().into()]);
    modelgate(args).expect_code(0);
    let doc: Value = serde_json::from_slice(&std::fs::read(&measurement).unwrap()).unwrap();
    assert_eq!(
        doc["model"]["predicateType"],
        "https://model_signing/signature/v1.0"
    );
    assert!(doc["model"].get("legacyFormat").is_none());
    assert!(doc["signers"][0].get("legacyEncoding").is_none());
    assert!(doc["policy"].get("allowLegacyFormat").is_none());
}

#[test]
fn with_the_opt_in_the_files_are_compared_as_strictly_as_ever() {
    type Tamper = fn(&Path);
    let cases: [(&str, Tamper, &str); 5] = [
        (
            "modified",
            |m| std::fs::write(m.join("config.json"), b"{}").unwrap(),
            "config.json: modified: expected digest 11fca1d0bd557a9cde7a975ab51c0aaf711332287bc128a87f792a256dbd2aea",
        ),
        (
            "missing",
            |m| std::fs::remove_file(m.join("tokenizer/vocab.txt")).unwrap(),
            "tokenizer/vocab.txt: missing: signed with digest 4a1e67f2fe1d1cc7b31d0ca2ec441da4778203a036a77da10344c85e24ff0f92",
        ),
        (
            "extra",
            |m| std::fs::write(m.join("extra.bin"), b"x").unwrap(),
            "extra.bin: extra: on disk but not signed",
        ),
        (
            "symlink",
            |m| {
                std::fs::remove_file(m.join("weights.bin")).unwrap();
                std::os::unix::fs::symlink("config.json", m.join("weights.bin")).unwrap();
            },
            "weights.bin: is a symbolic link and the signature does not allow symlinks",
        ),
        (
            "renamed",
            |m| std::fs::rename(m.join("it's \u{fc}.txt"), m.join("its.txt")).unwrap(),
            "it's \u{fc}.txt: missing",
        ),
    ];
    for (what, tamper, message) in cases {
        let model = model_copy();
        modelgate(key_args(model.path(), &["--allow-legacy-format"])).expect_code(0);
        tamper(model.path());
        for args in [
            key_args(model.path(), &["--allow-legacy-format"]),
            cert_args(model.path(), &["--allow-legacy-format"]),
        ] {
            let run = modelgate(args);
            assert_eq!(run.code, 1, "{what}:\n{}", run.stderr);
            run.expect_stderr(message);
        }
    }
}

#[test]
fn an_altered_legacy_signature_is_refused_even_with_the_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut b: Value = serde_json::from_slice(&std::fs::read(fixture("key.sig")).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let edited = String::from_utf8(payload)
        .unwrap()
        .replace("11fca1d0", "00fca1d0");
    b["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
        .encode(edited)
        .into();
    let sig = dir.path().join("edited.sig");
    std::fs::write(&sig, serde_json::to_vec(&b).unwrap()).unwrap();
    modelgate(
        verify_args(fixture("model"), &sig, fixture("key.pub.pem"))
            .into_iter()
            .chain(["--allow-legacy-format".into()]),
    )
    .expect_code(1)
    .expect_stderr("the DSSE signature does not verify with the trusted key");
}

/// The legacy statement signed properly (the PAE, as the Go signer of that
/// time did) with a key of the test.
fn legacy_statement_over_the_pae(dir: &Path, keys: &Keys) -> PathBuf {
    let b: Value = serde_json::from_slice(&std::fs::read(fixture("key.sig")).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let key = PrivateKey::from_pem(&std::fs::read_to_string(&keys.private).unwrap()).unwrap();
    let signature = key.sign(&bundle::pae(bundle::IN_TOTO_PAYLOAD_TYPE, &payload));
    let bundle = Bundle::for_key(key.public_key().fingerprint(), &payload, &signature);
    let sig = dir.join("pae.sig");
    std::fs::write(&sig, serde_json::to_vec(&bundle).unwrap()).unwrap();
    sig
}

#[test]
fn a_legacy_statement_over_the_proper_pae_is_named_and_opt_in_too() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keypair("P-256");
    let sig = legacy_statement_over_the_pae(dir.path(), &keys);
    modelgate(verify_args(fixture("model"), &sig, &keys.public))
        .expect_code(1)
        .expect_stderr(&format!("signature rejected: {LEGACY_PREDICATE}"));
    let out = dir.path().join("m.json");
    let mut args = verify_args(fixture("model"), &sig, &keys.public);
    args.extend([
        "--allow-legacy-format".into(),
        "--measurement".into(),
        out.clone().into(),
    ]);
    modelgate(args).expect_code(0);
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["model"]["legacyFormat"], true);
    // Over the proper PAE: the encoding is not the legacy one.
    assert!(doc["signers"][0].get("legacyEncoding").is_none());
}

#[test]
fn a_policy_rule_allows_the_legacy_format_only_when_it_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("key.pub.pem"), dir.path().join("legacy.pub")).unwrap();
    let policy = |allow: bool| {
        let path = dir.path().join(format!("policy-{allow}.yaml"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata:\n  name: migration\nspec:\n  models:\n    - name: old-models\n      match:\n        names: [\"*\"]\n      authorities:\n        - name: legacy-key\n          key:\n            path: legacy.pub\n{}",
                if allow { "      allowLegacyFormat: true\n" } else { "" }
            ),
        )
        .unwrap();
        path
    };
    let run = |policy: &Path| {
        modelgate([
            OsString::from("verify"),
            fixture("model").into(),
            "--signature".into(),
            fixture("key.sig").into(),
            "--policy".into(),
            policy.into(),
        ])
    };
    run(&policy(false))
        .expect_code(1)
        .expect_stderr(LEGACY_ENCODING);
    run(&policy(true)).expect_code(0);
    modelgate([
        OsString::from("policy"),
        "check".into(),
        policy(true).into(),
    ])
    .expect_code(0);
    let explained = modelgate([
        OsString::from("policy"),
        "check".into(),
        policy(true).into(),
    ]);
    assert!(
        explained
            .stdout
            .contains("pre-1.0 signatures (model_signing 0.2): ACCEPTED, for a migration window"),
        "{}",
        explained.stdout
    );
    // The flag belongs to the command-line rule; with a policy the rule decides.
    let args: Vec<OsString> = vec![
        "verify".into(),
        fixture("model").into(),
        "--signature".into(),
        fixture("key.sig").into(),
        "--policy".into(),
        policy(false).into(),
        "--allow-legacy-format".into(),
    ];
    modelgate(args).expect_code(2).expect_stderr(
        "the argument '--policy <FILE>' cannot be used with '--allow-legacy-format'",
    );
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_keyless_legacy_signature_is_named_and_opt_in_too() {
    // model_signing 0.2 signed keylessly over the proper PAE, with the
    // Digests/v0.1 statement: one subject per file.
    let dir = tempfile::tempdir().unwrap();
    let (sig, root) = (dir.path().join("keyless.sig"), dir.path().join("root.json"));
    make_keyless([
        "--payload-from",
        &s(&fixture("key.sig")),
        "--out",
        &s(&sig),
        "--root",
        &s(&root),
    ]);
    let args = |extra: &[&str]| {
        let mut a: Vec<OsString> = vec![
            "verify".into(),
            fixture("model").into(),
            "--signature".into(),
            sig.clone().into(),
            "--certificate-identity".into(),
            "signer@example.com".into(),
            "--certificate-oidc-issuer".into(),
            "https://oidc.example.com".into(),
            "--trusted-root".into(),
            root.clone().into(),
        ];
        a.extend(extra.iter().map(OsString::from));
        a
    };
    modelgate(args(&[]))
        .expect_code(1)
        .expect_stderr(&format!("signature rejected: {LEGACY_PREDICATE}"));
    modelgate(args(&["--allow-legacy-format"])).expect_code(0);
    let copy = model_copy();
    std::fs::write(copy.path().join("weights.bin"), b"swapped").unwrap();
    let mut tampered = args(&["--allow-legacy-format"]);
    tampered[1] = copy.path().into();
    modelgate(tampered)
        .expect_code(1)
        .expect_stderr("weights.bin: modified");
}
