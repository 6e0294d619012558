//! Managed-key bundles that also carry transparency-log evidence, as cosign
//! and the other Sigstore clients write them: `publicKey` material and
//! `tlogEntries`. With a trusted root (`--trusted-root` beside `--key`, or a
//! policy key authority with `ctlog`) the entries are required and verified:
//! each check has a passing case and a failing one, for Rekor v1 (dsse entry,
//! inclusion proof, checkpoint, signed entry timestamp) and Rekor v2
//! (hashedrekord over the PAE, checkpoint, RFC 3161 timestamp). The bundles
//! come from the private Sigstore that tests/support/make_keyless.py makes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

/// A model, its managed-key bundle with a log entry, and the root of the
/// private Sigstore that logged it.
struct Logged {
    model: tempfile::TempDir,
    dir: tempfile::TempDir,
    keys: Keys,
}

impl Logged {
    fn new(rekor: &str, mutate: &str) -> Self {
        let model = rich_model();
        let dir = tempfile::tempdir().unwrap();
        let keys = keypair("P-256");
        let plain = dir.path().join("plain.sig");
        attest(model.path(), &keys.private, &plain);
        make_keyless([
            "--payload-from".as_ref(),
            plain.as_os_str(),
            "--out".as_ref(),
            dir.path().join("model.sig").as_os_str(),
            "--root".as_ref(),
            dir.path().join("root.json").as_os_str(),
            "--managed-key".as_ref(),
            keys.private.as_os_str(),
            "--rekor".as_ref(),
            rekor.as_ref(),
            "--mutate".as_ref(),
            mutate.as_ref(),
        ]);
        Self { model, dir, keys }
    }

    fn sig(&self) -> PathBuf {
        self.dir.path().join("model.sig")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root.json")
    }

    /// `verify MODEL --signature SIG --key KEY [--trusted-root ROOT] extra...`
    fn verify(&self, root: Option<&Path>, extra: &[&str]) -> Run {
        let mut args = verify_args(self.model.path(), self.sig(), &self.keys.public);
        if let Some(root) = root {
            args.extend(["--trusted-root".into(), root.into()]);
        }
        args.extend(extra.iter().map(OsString::from));
        modelgate(args)
    }

    /// The statement's subject digest, for verify-bundle.
    fn subject(&self) -> String {
        use base64::Engine as _;
        let b: Value = serde_json::from_slice(&std::fs::read(self.sig()).unwrap()).unwrap();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let statement: Value = serde_json::from_slice(&payload).unwrap();
        format!(
            "sha256:{}",
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap()
        )
    }
}

/// Each failing case, for each Rekor version it applies to, with the
/// message it must be rejected with, by `verify` and by `verify-bundle`.
fn rejected(mutate: &str, cases: &[(&str, &str)]) {
    for (rekor, message) in cases {
        let l = Logged::new(rekor, mutate);
        let run = l.verify(Some(&l.root()), &[]);
        assert_eq!(run.code, 1, "{mutate} {rekor}:\n{}", run.stderr);
        run.expect_stderr(message);
        modelgate([
            OsString::from("verify-bundle"),
            "--bundle".into(),
            l.sig().into(),
            "--key".into(),
            l.keys.public.clone().into(),
            "--trusted-root".into(),
            l.root().into(),
            l.subject().into(),
        ])
        .expect_code(1)
        // verify-bundle words the same failure as a Sigstore verification
        .expect_stderr(message.trim_start_matches("transparency-log verification failed: "));
    }
}

#[test]
fn a_logged_key_signature_verifies_against_its_root_and_is_recorded() {
    for rekor in ["v1", "v2"] {
        let l = Logged::new(rekor, "");
        let measurement = l.dir.path().join("m.json");
        let m = measurement.display().to_string();
        l.verify(Some(&l.root()), &["--measurement", &m])
            .expect_code(0);
        let doc: Value = serde_json::from_slice(&std::fs::read(&measurement).unwrap()).unwrap();
        let signer = &doc["signers"][0];
        assert_eq!(signer["method"], "key", "{signer}");
        assert_eq!(
            signer["transparencyLog"]["rekor"]["logIndex"], 1,
            "{signer}"
        );
        let times = signer["transparencyLog"]["verifiedTimestamps"]
            .as_array()
            .unwrap();
        assert_eq!(times.len(), 1, "{signer}");
        if rekor == "v1" {
            // the signed entry timestamp vouches for the integrated time
            assert!(signer["transparencyLog"]["rekor"]["integratedTime"].is_string());
        } else {
            // Rekor v2 has none: the time comes from the RFC 3161 token
            assert!(signer["transparencyLog"]["rekor"]["integratedTime"].is_null());
        }
        // verify-bundle: the same, over the statement's subject digest
        modelgate([
            OsString::from("verify-bundle"),
            "--bundle".into(),
            l.sig().into(),
            "--key".into(),
            l.keys.public.clone().into(),
            "--trusted-root".into(),
            l.root().into(),
            l.subject().into(),
        ])
        .expect_code(0);
        // the embedded public-good root does not know this private log
        let production = repo("src/trust/sigstore-production-trusted-root.json");
        l.verify(Some(&production), &[])
            .expect_code(1)
            .expect_stderr("transparency-log verification failed: invalid checkpoint: No matching Rekor key found for checkpoint signature");
    }
}

#[test]
fn without_a_trusted_root_the_key_signature_alone_decides() {
    // A broken log entry is not looked at when no root is given: the
    // operator asked for the key alone.
    let l = Logged::new("v1", "broken-proof");
    l.verify(None, &[]).expect_code(0);
    l.verify(Some(&l.root()), &[]).expect_code(1);
    // ...and a plain key signature (no entries) still verifies by key alone.
    let plain = l.dir.path().join("plain.sig");
    verify(l.model.path(), &plain, &l.keys.public).expect_code(0);
}

#[test]
fn a_broken_inclusion_proof_is_rejected() {
    let broken = "transparency-log verification failed: invalid inclusion proof: inclusion proof verification failed: root hash mismatch";
    rejected("broken-proof", &[("v1", broken), ("v2", broken)]);
}

#[test]
fn a_checkpoint_signed_by_another_key_is_rejected() {
    let bad = "transparency-log verification failed: invalid checkpoint: No valid Rekor signature found on checkpoint";
    rejected("bad-checkpoint", &[("v1", bad), ("v2", bad)]);
}

#[test]
fn a_signed_entry_timestamp_by_another_key_is_rejected() {
    rejected(
        "bad-set",
        &[(
            "v1",
            "transparency-log verification failed: invalid inclusion promise: SET verification failed",
        )],
    );
}

#[test]
fn an_entry_for_another_payload_is_rejected() {
    rejected(
        "other-payload",
        &[
            (
                "v1",
                "transparency-log verification failed: log entry does not match the bundle: DSSE payload hash mismatch",
            ),
            (
                "v2",
                "transparency-log verification failed: artifact mismatch: artifact hash mismatch for hashedrekord entry",
            ),
        ],
    );
}

#[test]
fn an_entry_for_another_key_is_rejected() {
    rejected(
        "other-key",
        &[
            (
                "v1",
                "log entry does not match the bundle: DSSE managed public key does not match the Rekor verifier",
            ),
            (
                "v2",
                "log entry does not match the bundle: public key in Rekor entry does not match managed key",
            ),
        ],
    );
}

#[test]
fn an_entry_from_a_log_the_root_does_not_trust_is_rejected() {
    let unknown = "transparency-log verification failed: invalid checkpoint: No matching Rekor key found for checkpoint signature";
    rejected("untrusted-log", &[("v1", unknown), ("v2", unknown)]);
}

#[test]
fn an_entry_made_before_the_log_key_was_valid_is_rejected() {
    rejected(
        "log-key-later",
        &[
            (
                "v1",
                "transparency-log verification failed: invalid inclusion promise: No log key valid at integrated time",
            ),
            ("v2", "outside the validity of the trusted log key"),
        ],
    );
}

#[test]
fn a_bundle_without_log_entries_is_rejected_when_evidence_is_required() {
    let none = "transparency-log evidence is required (a trusted root was given for the key), but the bundle has no tlogEntries";
    rejected("no-tlog", &[("v1", none), ("v2", none)]);
}

#[test]
fn a_tampered_rfc3161_timestamp_is_rejected() {
    let l = Logged::new("v2", "");
    tamper_rfc3161_token(&l.sig());
    l.verify(Some(&l.root()), &[])
        .expect_code(1)
        .expect_stderr("transparency-log verification failed: invalid RFC 3161 timestamp");
}

#[test]
fn the_real_cosign_style_bundle_verifies_against_the_production_root_file() {
    // The conformance suite's managed-key bundle: a hashedrekord entry in the
    // public Rekor, checked offline against the production root given as a
    // file, and refused against a root that does not know that log.
    let case = repo("fixtures/sigstore-conformance/managed-key-happy-path");
    let args = |root: &Path| -> Vec<OsString> {
        vec![
            "verify-bundle".into(),
            "--bundle".into(),
            case.join("bundle.sigstore.json").into(),
            "--key".into(),
            case.join("key.pub").into(),
            "--trusted-root".into(),
            root.into(),
            repo("fixtures/sigstore-conformance/a.txt").into(),
        ]
    };
    modelgate(args(&repo(
        "src/trust/sigstore-production-trusted-root.json",
    )))
    .expect_code(0);
    let private = Logged::new("v1", "");
    modelgate(args(&private.root()))
        .expect_code(1)
        .expect_stderr("Sigstore verification failed");
}

#[test]
fn verify_bundle_with_a_root_requires_an_entry_and_without_one_checks_those_present() {
    let l = Logged::new("v1", "no-tlog");
    let plain = |root: Option<&Path>| {
        let mut args: Vec<OsString> = vec![
            "verify-bundle".into(),
            "--bundle".into(),
            l.sig().into(),
            "--key".into(),
            l.keys.public.clone().into(),
        ];
        if let Some(root) = root {
            args.extend(["--trusted-root".into(), root.into()]);
        }
        args.push(l.subject().into());
        modelgate(args)
    };
    plain(Some(&l.root()))
        .expect_code(1)
        .expect_stderr("the bundle has no tlogEntries");
    // Without --trusted-root, a bundle with a private log's entry is
    // checked against the embedded public-good root and refused.
    let logged = Logged::new("v1", "");
    let mut args: Vec<OsString> = vec![
        "verify-bundle".into(),
        "--bundle".into(),
        logged.sig().into(),
        "--key".into(),
        logged.keys.public.clone().into(),
    ];
    args.push(logged.subject().into());
    modelgate(args)
        .expect_code(1)
        .expect_stderr("No matching Rekor key found for checkpoint signature");
}

/// A policy with one key authority, `ctlog` as given (YAML, indented).
fn policy_with(l: &Logged, ctlog: &str) -> PathBuf {
    std::fs::copy(&l.keys.public, l.dir.path().join("signer.pub")).unwrap();
    let path = l.dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata:\n  name: logged\nspec:\n  models:\n    - name: all\n      match:\n        names: [\"*\"]\n      authorities:\n        - name: ci-key\n          key:\n            path: signer.pub\n{ctlog}"
        ),
    )
    .unwrap();
    path
}

fn verify_policy(l: &Logged, policy: &Path) -> Run {
    modelgate([
        OsString::from("verify"),
        l.model.path().into(),
        "--signature".into(),
        l.sig().into(),
        "--policy".into(),
        policy.into(),
    ])
}

#[test]
fn a_policy_key_authority_with_ctlog_requires_the_log_entry() {
    let l = Logged::new("v1", "");
    let with_root = policy_with(
        &l,
        "          ctlog:\n            trustedRoot:\n              path: root.json\n",
    );
    verify_policy(&l, &with_root).expect_code(0);
    let explained = modelgate([OsString::from("policy"), "check".into(), with_root.into()]);
    assert!(
        explained
            .stdout
            .contains("with transparency-log evidence required from https://rekor.test"),
        "{}",
        explained.stdout
    );
    // `ctlog: {}` is the embedded public-good root, which does not know this log.
    let production = policy_with(&l, "          ctlog: {}\n");
    verify_policy(&l, &production)
        .expect_code(1)
        .expect_stderr("No matching Rekor key found for checkpoint signature");
    // Without ctlog the key alone decides, even for a broken entry.
    let broken = Logged::new("v1", "broken-proof");
    verify_policy(&broken, &policy_with(&broken, "")).expect_code(0);
    let strict = policy_with(
        &broken,
        "          ctlog:\n            trustedRoot:\n              path: root.json\n",
    );
    verify_policy(&broken, &strict)
        .expect_code(1)
        .expect_stderr("invalid inclusion proof");
}

#[test]
fn ctlog_belongs_to_key_authorities_and_the_flags_combine_only_as_documented() {
    let l = Logged::new("v1", "");
    let path = l.dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nspec:\n  models:\n    - name: all\n      match:\n        names: [\"*\"]\n      authorities:\n        - name: ci\n          keyless:\n            identities:\n              - issuer: https://oidc.example.com\n                subject: a@example.com\n          ctlog: {}\n",
    )
    .unwrap();
    modelgate([OsString::from("policy"), "check".into(), path.into()])
        .expect_code(2)
        .expect_stderr("ctlog goes with a key authority");
    // --trusted-root with --certificate-chain or --policy is a usage error.
    let mut args = verify_args(l.model.path(), l.sig(), &l.keys.public);
    args.drain(4..6);
    args.extend([
        "--certificate-chain".into(),
        l.root().into(),
        "--trusted-root".into(),
        l.root().into(),
    ]);
    modelgate(args)
        .expect_code(2)
        .expect_stderr("cannot be used with");
    // --help lists every combination.
    let help = modelgate(["verify", "--help"]);
    assert!(
        help.stdout
            .contains("--key PUB.pem --trusted-root trusted_root.json"),
        "{}",
        help.stdout
    );
    let help = modelgate(["verify-bundle", "--help"]);
    assert!(
        help.stdout
            .contains("a managed key with at least one log entry, verified against that root"),
        "{}",
        help.stdout
    );
}
