//! Sigstore keyless verification, offline: the conformance sample through
//! `verify-bundle`, and models signed keylessly by the reference's releases
//! through `verify`, against the embedded production trusted root.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

const BEACON_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const BEACON_ISSUER: &str = "https://token.actions.githubusercontent.com";
const OMS_IDENTITY: &str = "stefanb@us.ibm.com";
const OMS_ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data))
}

/// Runs one conformance case as the suite drives a client, with the
/// artifact as a file or as its digest.
fn run_case(case: &Path, by_digest: bool) -> Run {
    let base = repo("fixtures/sigstore-conformance");
    let read = |name: &str| {
        std::fs::read_to_string(case.join(name))
            .ok()
            .map(|t| t.trim().to_string())
    };
    let artifact: PathBuf = if case.join("artifact").exists() {
        case.join("artifact")
    } else {
        base.join("a.txt")
    };
    let mut args = vec![
        "verify-bundle".to_string(),
        "--bundle".into(),
        s(&case.join("bundle.sigstore.json")),
    ];
    if case.join("key.pub").exists() {
        args.extend(["--key".into(), s(&case.join("key.pub"))]);
    } else {
        args.extend([
            "--certificate-identity".into(),
            read("identity").unwrap_or(BEACON_IDENTITY.into()),
        ]);
        args.extend([
            "--certificate-oidc-issuer".into(),
            read("issuer").unwrap_or(BEACON_ISSUER.into()),
        ]);
    }
    if case.join("trusted_root.json").exists() {
        args.extend(["--trusted-root".into(), s(&case.join("trusted_root.json"))]);
    }
    args.push(if by_digest {
        format!("sha256:{}", sha256_hex(&std::fs::read(&artifact).unwrap()))
    } else {
        s(&artifact)
    });
    modelgate(args)
}

#[test]
fn every_conformance_case_passes_with_the_file_and_with_its_digest() {
    let base = repo("fixtures/sigstore-conformance");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&base)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 8,
        "the sample has 8 cases, found {}",
        cases.len()
    );
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        for by_digest in [false, true] {
            let run = run_case(case, by_digest);
            if name.ends_with("_fail") {
                assert_ne!(
                    run.code, 0,
                    "{name} (digest: {by_digest}) must fail:\n{}",
                    run.stderr
                );
            } else {
                assert_eq!(
                    run.code, 0,
                    "{name} (digest: {by_digest}) must pass:\n{}",
                    run.stderr
                );
            }
        }
    }
}

#[test]
fn verify_bundle_rejects_a_wrong_identity_issuer_or_artifact() {
    let case = repo("fixtures/sigstore-conformance/happy-path-v0.3");
    let bundle = s(&case.join("bundle.sigstore.json"));
    let a = s(&repo("fixtures/sigstore-conformance/a.txt"));
    modelgate([
        "verify-bundle",
        "--bundle",
        &bundle,
        "--certificate-identity",
        "https://example.com/other",
        "--certificate-oidc-issuer",
        BEACON_ISSUER,
        &a,
    ])
    .expect_code(1)
    .expect_stderr("but the trusted identity is \"https://example.com/other\"");
    modelgate([
        "verify-bundle",
        "--bundle",
        &bundle,
        "--certificate-identity",
        BEACON_IDENTITY,
        "--certificate-oidc-issuer",
        "https://accounts.google.com",
        &a,
    ])
    .expect_code(1)
    .expect_stderr(
        "the certificate's OIDC issuer is \"https://token.actions.githubusercontent.com\"",
    );
    let wrong = format!("sha256:{}", "00".repeat(32));
    modelgate([
        "verify-bundle",
        "--bundle",
        &bundle,
        "--certificate-identity",
        BEACON_IDENTITY,
        "--certificate-oidc-issuer",
        BEACON_ISSUER,
        &wrong,
    ])
    .expect_code(1)
    .expect_stderr("Sigstore verification failed");
    modelgate([
        "verify-bundle",
        "--bundle",
        &bundle,
        "--certificate-identity",
        BEACON_IDENTITY,
        "--certificate-oidc-issuer",
        BEACON_ISSUER,
        "sha256:zz",
    ])
    .expect_code(2)
    .expect_stderr("not a SHA-256 digest");
}

fn oms(version: &str) -> (PathBuf, PathBuf) {
    let dir = repo(&format!("fixtures/oms-released/{version}-sigstore"));
    let sig = dir.join("model.sig");
    (dir, sig)
}

fn verify_keyless(dir: &Path, sig: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["verify".to_string(), s(dir), "--signature".into(), s(sig)];
    args.extend(extra.iter().map(|a| a.to_string()));
    modelgate(args)
}

#[test]
fn models_signed_keylessly_by_reference_releases_verify_offline() {
    for version in ["v1.0.0", "v1.0.1", "v1.1.0"] {
        let (dir, sig) = oms(version);
        let out = tempfile::tempdir().unwrap();
        let meas = out.path().join("m.json");
        verify_keyless(
            &dir,
            &sig,
            &[
                "--certificate-identity",
                OMS_IDENTITY,
                "--certificate-oidc-issuer",
                OMS_ISSUER,
                "--ignore-paths",
                "ignore-me",
                "--measurement",
                &s(&meas),
            ],
        )
        .expect_code(0)
        .expect_stderr("signer=sigstore stefanb@us.ibm.com");
        let doc: Value = serde_json::from_slice(&std::fs::read(&meas).unwrap()).unwrap();
        let signer = &doc["signers"][0];
        assert_eq!(signer["method"], "sigstore", "{version}");
        assert_eq!(signer["sigstore"]["identity"], OMS_IDENTITY);
        assert_eq!(signer["sigstore"]["issuer"], OMS_ISSUER);
        assert!(
            signer["sigstore"]["rekor"]["logIndex"].as_i64().unwrap() > 0,
            "{version}: {signer}"
        );
        assert!(
            signer["sigstore"]["rekor"]["integratedTime"]
                .as_str()
                .unwrap()
                .starts_with("2025-")
        );
    }
}

#[test]
fn keyless_identity_issuer_and_root_must_all_match() {
    let (dir, sig) = oms("v1.1.0");
    verify_keyless(&dir, &sig, &["--certificate-identity", "eve@us.ibm.com", "--certificate-oidc-issuer", OMS_ISSUER])
        .expect_code(1)
        .expect_stderr("the certificate identity is \"stefanb@us.ibm.com\", but the trusted identity is \"eve@us.ibm.com\"");
    verify_keyless(
        &dir,
        &sig,
        &[
            "--certificate-identity",
            OMS_IDENTITY,
            "--certificate-oidc-issuer",
            "https://accounts.google.com",
        ],
    )
    .expect_code(1)
    .expect_stderr("the certificate's OIDC issuer is \"https://sigstore.verify.ibm.com/oauth2\"");
    // regular expressions match the whole value
    verify_keyless(
        &dir,
        &sig,
        &[
            "--certificate-identity-regexp",
            ".*@us\\.ibm\\.com",
            "--certificate-oidc-issuer-regexp",
            "https://sigstore\\.verify\\.ibm\\.com/.*",
        ],
    )
    .expect_code(0);
    verify_keyless(
        &dir,
        &sig,
        &[
            "--certificate-identity-regexp",
            "stefanb",
            "--certificate-oidc-issuer",
            OMS_ISSUER,
        ],
    )
    .expect_code(1)
    .expect_stderr("but the trusted identity is /stefanb/");
    // a private trusted root does not vouch for the public-good instance
    let custom = s(&repo(
        "fixtures/sigstore-conformance/intoto-with-custom-trust-root/trusted_root.json",
    ));
    verify_keyless(
        &dir,
        &sig,
        &[
            "--certificate-identity",
            OMS_IDENTITY,
            "--certificate-oidc-issuer",
            OMS_ISSUER,
            "--trusted-root",
            &custom,
        ],
    )
    .expect_code(1)
    .expect_stderr("Sigstore verification failed");
    // and a keyless bundle is not a key-signed one
    let key = s(&repo("fixtures/oms-released/keys/signing-key-pub.pem"));
    verify_keyless(&dir, &sig, &["--key", &key]).expect_code(1);
}

#[test]
fn keyless_flags_need_both_identity_and_issuer_and_exclude_other_trust() {
    let (dir, sig) = oms("v1.1.0");
    verify_keyless(&dir, &sig, &["--certificate-identity", OMS_IDENTITY]).expect_code(2);
    verify_keyless(&dir, &sig, &["--certificate-oidc-issuer", OMS_ISSUER]).expect_code(2);
    verify_keyless(
        &dir,
        &sig,
        &[
            "--certificate-identity",
            OMS_IDENTITY,
            "--certificate-oidc-issuer",
            OMS_ISSUER,
            "--key",
            "k.pem",
        ],
    )
    .expect_code(2);
    verify_keyless(
        &dir,
        &sig,
        &[
            "--certificate-identity-regexp",
            "(",
            "--certificate-oidc-issuer",
            OMS_ISSUER,
        ],
    )
    .expect_code(2)
    .expect_stderr("invalid regular expression");
}

#[test]
fn a_tampered_keyless_model_is_rejected() {
    let (src, sig) = oms("v1.1.0");
    let copy = tempfile::tempdir().unwrap();
    for f in ["signme-1", "signme-2", "ignore-me"] {
        std::fs::copy(src.join(f), copy.path().join(f)).unwrap();
    }
    let args = [
        "--certificate-identity",
        OMS_IDENTITY,
        "--certificate-oidc-issuer",
        OMS_ISSUER,
    ];
    verify_keyless(copy.path(), &sig, &args).expect_code(0);
    std::fs::write(copy.path().join("signme-1"), "tampered").unwrap();
    verify_keyless(copy.path(), &sig, &args)
        .expect_code(1)
        .expect_stderr("signme-1: modified");
}

/// The reference's v1.1.0 keyless signature with one part changed; must be
/// rejected with exit 1 and a message naming the failed check.
fn mutated(edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    let (_, sig) = oms("v1.1.0");
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(sig).unwrap()).unwrap();
    edit(&mut bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.sig");
    std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    (dir, path)
}

fn b64_flip(text: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut bytes = engine.decode(text).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    engine.encode(bytes)
}

fn expect_keyless_rejection(edit: impl FnOnce(&mut Value), message: &str) {
    let (dir, _) = oms("v1.1.0");
    let (_keep, sig) = mutated(edit);
    verify_keyless(
        &dir,
        &sig,
        &[
            "--certificate-identity",
            OMS_IDENTITY,
            "--certificate-oidc-issuer",
            OMS_ISSUER,
        ],
    )
    .expect_code(1)
    .expect_stderr("signature rejected: Sigstore verification failed")
    .expect_stderr(message);
}

#[test]
fn a_broken_inclusion_proof_is_rejected() {
    expect_keyless_rejection(
        |b| {
            let h = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][3];
            *h = b64_flip(h.as_str().unwrap()).into();
        },
        "invalid inclusion proof: inclusion proof verification failed: root hash mismatch",
    );
}

#[test]
fn a_bad_checkpoint_signature_is_rejected() {
    expect_keyless_rejection(
        |b| {
            let cp = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
                ["envelope"];
            let text = cp.as_str().unwrap().to_string();
            // the signature line is "— <name> <base64(key hint || signature)>"
            let (head, sig_line) = text.trim_end().rsplit_once('\n').unwrap();
            let (prefix, sig) = sig_line.rsplit_once(' ').unwrap();
            *cp = format!("{head}\n{prefix} {}\n", b64_flip(sig)).into();
        },
        "invalid checkpoint: No valid Rekor signature found on checkpoint",
    );
}

#[test]
fn a_log_entry_for_another_payload_logged_outside_the_certificates_validity_is_rejected() {
    // v1.0.1's entry is genuine (valid proof, checkpoint and promise) but for
    // another signature, logged days before this certificate was issued: the
    // signing time it vouches for lies outside the certificate's validity.
    let (_, other) = oms("v1.0.1");
    let other: Value = serde_json::from_slice(&std::fs::read(other).unwrap()).unwrap();
    expect_keyless_rejection(
        |b| {
            b["verificationMaterial"]["tlogEntries"] =
                other["verificationMaterial"]["tlogEntries"].clone()
        },
        "certificate chain validation failed: CertNotValidYet",
    );
}

#[test]
fn a_tampered_log_entry_body_or_promise_is_rejected() {
    expect_keyless_rejection(
        |b| {
            let body = &mut b["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"];
            *body = b64_flip(body.as_str().unwrap()).into();
        },
        "invalid inclusion promise: SET verification failed",
    );
    expect_keyless_rejection(
        |b| {
            let t = &mut b["verificationMaterial"]["tlogEntries"][0]["integratedTime"];
            let shifted = t.as_str().unwrap().parse::<i64>().unwrap() - 3600;
            *t = shifted.to_string().into();
        },
        "invalid inclusion promise: SET verification failed",
    );
}

#[test]
fn a_bundle_without_its_log_entry_is_rejected() {
    expect_keyless_rejection(
        |b| b["verificationMaterial"]["tlogEntries"] = serde_json::json!([]),
        "bundle must have an inclusion proof",
    );
}

#[test]
fn a_tampered_certificate_is_rejected() {
    expect_keyless_rejection(
        |b| {
            let c = &mut b["verificationMaterial"]["certificate"]["rawBytes"];
            *c = b64_flip(c.as_str().unwrap()).into();
        },
        "certificate chain validation failed",
    );
}

/// A model signed keylessly by a private Sigstore (Fulcio-like CA, CT log,
/// Rekor log) made in the test by tests/support/make_keyless.py, with its
/// trusted_root.json. `mutate` makes exactly one part wrong.
struct PrivateSigstore {
    model: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl PrivateSigstore {
    fn new(identity: &str, mutate: &str) -> Self {
        Self::with_rekor("v1", identity, mutate)
    }

    /// `rekor` is "v1" (dsse 0.0.1 with integrated time and SET) or "v2"
    /// (hashedrekord 0.0.2 over the PAE, timed by an RFC 3161 timestamp).
    fn with_rekor(rekor: &str, identity: &str, mutate: &str) -> Self {
        let model = rich_model();
        let dir = tempfile::tempdir().unwrap();
        // the manifest comes from a throwaway key signature of the same model
        let keys = keypair("P-256");
        let key_sig = dir.path().join("key.sig");
        attest(model.path(), &keys.private, &key_sig);
        let out = std::process::Command::new(venv().join("bin/python"))
            .arg(repo("tests/support/make_keyless.py"))
            .args([
                "--payload-from",
                &s(&key_sig),
                "--out",
                &s(&dir.path().join("model.sig")),
                "--root",
                &s(&dir.path().join("root.json")),
            ])
            .args([
                "--identity",
                identity,
                "--issuer",
                "https://oidc.example.com",
                "--mutate",
                mutate,
                "--rekor",
                rekor,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make_keyless.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { model, dir }
    }

    fn verify(&self, identity: &str, issuer: &str, root: bool) -> Run {
        let mut args = vec![
            "verify".to_string(),
            s(self.model.path()),
            "--signature".into(),
            s(&self.dir.path().join("model.sig")),
            "--certificate-identity".into(),
            identity.into(),
            "--certificate-oidc-issuer".into(),
            issuer.into(),
        ];
        if root {
            args.extend([
                "--trusted-root".into(),
                s(&self.dir.path().join("root.json")),
            ]);
        }
        modelgate(args)
    }
}

const PRIVATE_ISSUER: &str = "https://oidc.example.com";

/// A private-Sigstore signature with one part made wrong (`mutate`) must be
/// rejected, for each Rekor version, with that version's message.
fn private_rejection(mutate: &str, cases: &[(&str, &str)]) {
    for (rekor, message) in cases {
        PrivateSigstore::with_rekor(rekor, "signer@example.com", mutate)
            .verify("signer@example.com", PRIVATE_ISSUER, true)
            .expect_code(1)
            .expect_stderr(message);
    }
}

#[test]
fn a_private_sigstore_signature_verifies_with_its_trusted_root_only() {
    let p = PrivateSigstore::new("signer@example.com", "");
    p.verify("signer@example.com", PRIVATE_ISSUER, true)
        .expect_code(0)
        .expect_stderr("signer=sigstore signer@example.com");
    // the embedded public-good root does not know this CA or these logs
    p.verify("signer@example.com", PRIVATE_ISSUER, false)
        .expect_code(1)
        .expect_stderr("Sigstore verification failed");
    // a URI identity (a CI workflow), matched by an anchored regex
    let ci = PrivateSigstore::new(
        "https://github.com/acme/models/.github/workflows/release.yml@refs/tags/v1",
        "",
    );
    let mut args = vec![
        "verify".to_string(),
        s(ci.model.path()),
        "--signature".into(),
        s(&ci.dir.path().join("model.sig")),
    ];
    args.extend([
        "--certificate-identity-regexp".into(),
        "https://github\\.com/acme/models/.*@refs/tags/v.*".into(),
    ]);
    args.extend([
        "--certificate-oidc-issuer".into(),
        PRIVATE_ISSUER.into(),
        "--trusted-root".into(),
        s(&ci.dir.path().join("root.json")),
    ]);
    modelgate(args).expect_code(0);
}

#[test]
fn a_private_sigstore_signature_with_the_wrong_identity_or_issuer_is_rejected() {
    let p = PrivateSigstore::new("signer@example.com", "");
    p.verify("other@example.com", PRIVATE_ISSUER, true)
        .expect_code(1)
        .expect_stderr("but the trusted identity is \"other@example.com\"");
    p.verify("signer@example.com", "https://accounts.google.com", true)
        .expect_code(1)
        .expect_stderr("the certificate's OIDC issuer is \"https://oidc.example.com\"");
}

#[test]
fn a_certificate_expired_at_signing_time_is_rejected() {
    private_rejection(
        "expired",
        &[
            ("v1", "certificate chain validation failed: CertExpired"),
            ("v2", "certificate chain validation failed: CertExpired"),
        ],
    );
}

#[test]
fn a_private_log_with_a_broken_inclusion_proof_is_rejected() {
    let broken = "invalid inclusion proof: inclusion proof verification failed: root hash mismatch";
    private_rejection("broken-proof", &[("v1", broken), ("v2", broken)]);
}

#[test]
fn a_checkpoint_signed_by_another_key_is_rejected() {
    let bad = "invalid checkpoint: No valid Rekor signature found on checkpoint";
    private_rejection("bad-checkpoint", &[("v1", bad), ("v2", bad)]);
}

#[test]
fn a_log_entry_for_another_payload_is_rejected() {
    // Rekor v1 dsse: the entry's payload hash differs; Rekor v2 hashedrekord:
    // the logged digest of the PAE differs.
    private_rejection(
        "other-payload",
        &[
            (
                "v1",
                "log entry does not match the bundle: DSSE payload hash mismatch",
            ),
            ("v2", "artifact hash mismatch for hashedrekord entry"),
        ],
    );
}

#[test]
fn a_rekor_v2_bundle_verifies_with_its_rfc3161_timestamp() {
    let p = PrivateSigstore::with_rekor("v2", "signer@example.com", "");
    let meas = p.dir.path().join("m.json");
    let mut args = vec![
        "verify".to_string(),
        s(p.model.path()),
        "--signature".into(),
        s(&p.dir.path().join("model.sig")),
    ];
    args.extend([
        "--certificate-identity".into(),
        "signer@example.com".into(),
        "--certificate-oidc-issuer".into(),
        PRIVATE_ISSUER.into(),
    ]);
    args.extend([
        "--trusted-root".into(),
        s(&p.dir.path().join("root.json")),
        "--measurement".into(),
        s(&meas),
    ]);
    modelgate(args).expect_code(0);
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(p.dir.path().join("model.sig")).unwrap()).unwrap();
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"],
        "0.0.2"
    );
    // a Rekor v2 entry has no integrated time: the signing time is the TSA's
    let doc: Value = serde_json::from_slice(&std::fs::read(&meas).unwrap()).unwrap();
    let sigstore = &doc["signers"][0]["sigstore"];
    assert!(sigstore["rekor"]["integratedTime"].is_null(), "{sigstore}");
    assert_eq!(
        sigstore["verifiedTimestamps"].as_array().unwrap().len(),
        1,
        "{sigstore}"
    );
}

#[test]
fn a_rekor_v2_bundle_without_a_trusted_timestamp_is_rejected() {
    let p = PrivateSigstore::with_rekor("v2", "signer@example.com", "");
    // the timestamp token altered
    tamper_rfc3161_token(&p.dir.path().join("model.sig"));
    p.verify("signer@example.com", PRIVATE_ISSUER, true)
        .expect_code(1)
        .expect_stderr("invalid RFC 3161 timestamp");
    // or a trusted root that names no timestamp authority
    let q = PrivateSigstore::with_rekor("v2", "signer@example.com", "");
    let root_path = q.dir.path().join("root.json");
    let mut root: Value = serde_json::from_slice(&std::fs::read(&root_path).unwrap()).unwrap();
    root["timestampAuthorities"] = serde_json::json!([]);
    std::fs::write(&root_path, serde_json::to_vec(&root).unwrap()).unwrap();
    q.verify("signer@example.com", PRIVATE_ISSUER, true)
        .expect_code(1)
        .expect_stderr("no timestamp authorities configured");
}

#[test]
fn an_sct_from_an_untrusted_ct_log_key_is_rejected() {
    private_rejection(
        "bad-sct",
        &[(
            "v1",
            "invalid signed certificate timestamp: SCT signature verification failed",
        )],
    );
}

#[test]
fn a_policy_keyless_authority_uses_its_own_trusted_root() {
    let p = PrivateSigstore::new("signer@example.com", "");
    let policy = |trusted_root: &str| {
        let path = p.dir.path().join("policy.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nspec:\n  models:\n    - name: private\n      match:\n        names: [\"*\"]\n      authorities:\n        - name: private-sigstore\n          keyless:\n            identities:\n              - issuer: {PRIVATE_ISSUER}\n                subject: signer@example.com\n{trusted_root}"
            ),
        )
        .unwrap();
        path
    };
    let run = |policy: PathBuf| {
        modelgate([
            "verify".as_ref(),
            p.model.path().as_os_str(),
            "--policy".as_ref(),
            policy.as_os_str(),
            "--signature".as_ref(),
            p.dir.path().join("model.sig").as_os_str(),
        ])
    };
    run(policy(
        "            trustedRoot:\n              path: root.json\n",
    ))
    .expect_code(0)
    .expect_stderr("[private-sigstore]");
    // without it, the embedded public-good root applies and refuses the private CA
    run(policy(""))
        .expect_code(1)
        .expect_stderr("Sigstore verification failed");
}
