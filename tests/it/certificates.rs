//! The certificate (PKI) method, both ways with the reference: a signing
//! certificate in the bundle that must chain to the anchors the verifier was
//! given, be usable for signing, and be valid now.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use serde_json::Value;

/// A PKI made by tests/support/make_pki.py: RSA root, P-384 intermediate,
/// EC leaf with digitalSignature and codeSigning, and an unrelated root.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new(options: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = repo("tests/support/make_pki.py");
        let out = Command::new(venv().join("bin/python"))
            .arg(script)
            .arg(dir.path())
            .args(options)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make_pki.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Signs `model` with the reference's CLI: leaf, plus the intermediate.
fn reference_signs(pki: &Pki, model: &Path, sig: &Path) {
    reference_cli([
        "sign",
        "certificate",
        "--private_key",
        &pki.s("leaf.key"),
        "--signing_certificate",
        &pki.s("leaf.pem"),
        "--certificate_chain",
        &pki.s("intermediate.pem"),
        "--signature",
        &p(sig),
        &p(model),
    ])
    .expect_code(0);
}

fn verify_cert(model: &Path, sig: &Path, anchors: &[String], extra: &[&str]) -> Run {
    let mut args = vec!["verify".to_string(), p(model), "--signature".into(), p(sig)];
    for a in anchors {
        args.extend(["--certificate-chain".into(), a.clone()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    modelgate(args)
}

#[test]
fn modelgate_verifies_what_the_reference_signs_with_a_certificate() {
    for curve in ["P-256", "P-384", "P-521"] {
        let pki = Pki::new(&["--leaf-curve", curve]);
        let model = rich_model();
        let out = tempfile::tempdir().unwrap();
        let sig = out.path().join("m.sig");
        reference_signs(&pki, model.path(), &sig);
        // anchored at the root, or at the intermediate the operator trusts
        verify_cert(model.path(), &sig, &[pki.s("root.pem")], &[])
            .expect_code(0)
            .expect_stderr("signer=certificate CN=model-signer");
        verify_cert(model.path(), &sig, &[pki.s("intermediate.pem")], &[]).expect_code(0);
        verify_cert(model.path(), &sig, &[pki.s("chain.pem")], &[]).expect_code(0);
        // an unrelated CA, or a bare key method, must not stand in for it
        verify_cert(model.path(), &sig, &[pki.s("other-root.pem")], &[])
            .expect_code(1)
            .expect_stderr(
                "does not chain to a trusted anchor; verify with the CA certificate that issued it",
            );
        std::fs::write(model.path().join("config.json"), "{}").unwrap();
        verify_cert(model.path(), &sig, &[pki.s("root.pem")], &[])
            .expect_code(1)
            .expect_stderr("config.json: modified");
    }
}

#[test]
fn the_reference_verifies_what_modelgate_signs_with_a_certificate() {
    let pki = Pki::new(&["--leaf-curve", "P-384"]);
    let model = rich_model();
    let out = tempfile::tempdir().unwrap();
    let sig = p(&out.path().join("m.sig"));
    let m = p(model.path());
    modelgate([
        "attest",
        &m,
        "--key",
        &pki.s("leaf.key"),
        "--certificate",
        &pki.s("leaf.pem"),
        "--certificate-chain",
        &pki.s("intermediate.pem"),
        "--signature",
        &sig,
    ])
    .expect_code(0);
    reference_cli([
        "verify",
        "certificate",
        "--certificate_chain",
        &pki.s("root.pem"),
        "--signature",
        &sig,
        &m,
    ])
    .expect_code(0);
    reference_cli([
        "verify",
        "certificate",
        "--certificate_chain",
        &pki.s("other-root.pem"),
        "--signature",
        &sig,
        &m,
    ])
    .expect_code(1);
    verify_cert(model.path(), Path::new(&sig), &[pki.s("root.pem")], &[]).expect_code(0);
    // the bundle holds the chain, leaf first, as the reference writes it
    let bundle: Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    let chain = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
        .as_array()
        .unwrap();
    assert_eq!(chain.len(), 2);
    assert!(bundle["verificationMaterial"].get("publicKey").is_none());
}

#[test]
fn an_expired_leaf_is_rejected_unless_explicitly_allowed() {
    let pki = Pki::new(&["--expired-leaf"]);
    let model = rich_model();
    let out = tempfile::tempdir().unwrap();
    let sig = out.path().join("m.sig");
    reference_signs(&pki, model.path(), &sig);
    verify_cert(model.path(), &sig, &[pki.s("root.pem")], &[])
        .expect_code(1)
        .expect_stderr("certificate CN=model-signer is not valid at")
        .expect_stderr("--allow-expired-certificate accepts a leaf that was valid when issued");
    verify_cert(
        model.path(),
        &sig,
        &[pki.s("root.pem")],
        &["--allow-expired-certificate"],
    )
    .expect_code(0);
    // the reference accepts it without asking: the documented difference
    reference_cli([
        "verify",
        "certificate",
        "--certificate_chain",
        &pki.s("root.pem"),
        "--signature",
        &p(&sig),
        &p(model.path()),
    ])
    .expect_code(0);
}

#[test]
fn a_leaf_that_may_not_sign_is_rejected() {
    let pki = Pki::new(&["--no-signing-usage"]);
    let model = rich_model();
    let out = tempfile::tempdir().unwrap();
    let sig = out.path().join("m.sig");
    modelgate([
        "attest".to_string(),
        p(model.path()),
        "--key".into(),
        pki.s("leaf.key"),
        "--certificate".into(),
        pki.s("leaf.pem"),
        "--certificate-chain".into(),
        pki.s("intermediate.pem"),
        "--signature".into(),
        p(&sig),
    ])
    .expect_code(0);
    verify_cert(model.path(), &sig, &[pki.s("root.pem")], &[])
        .expect_code(1)
        .expect_stderr("may not sign: it has neither keyUsage digitalSignature nor extendedKeyUsage codeSigning");
}

#[test]
fn an_intermediate_that_is_not_a_ca_breaks_the_chain() {
    let pki = Pki::new(&["--intermediate-not-ca"]);
    let model = rich_model();
    let out = tempfile::tempdir().unwrap();
    let sig = out.path().join("m.sig");
    reference_signs(&pki, model.path(), &sig);
    verify_cert(model.path(), &sig, &[pki.s("root.pem")], &[])
        .expect_code(1)
        .expect_stderr(
            "certificate CN=test-intermediate-ca issued another certificate but is not a CA",
        );
}

#[test]
fn attest_refuses_a_certificate_for_another_key() {
    let pki = Pki::new(&[]);
    let other = keypair("P-256");
    let model = rich_model();
    let out = tempfile::tempdir().unwrap();
    modelgate([
        "attest".to_string(),
        p(model.path()),
        "--key".into(),
        p(&other.private),
        "--certificate".into(),
        pki.s("leaf.pem"),
        "--signature".into(),
        p(&out.path().join("m.sig")),
    ])
    .expect_code(2)
    .expect_stderr("the signing certificate CN=model-signer is not for this private key");
}

#[test]
fn the_reference_released_certificate_signature_verifies_offline() {
    let dir = repo("fixtures/oms-released/v1.1.0-certificate");
    let keys = repo("fixtures/oms-released/keys");
    let sig = dir.join("model.sig");
    let meas = tempfile::tempdir().unwrap();
    let out = meas.path().join("m.json");
    verify_cert(
        &dir,
        &sig,
        &[p(&keys.join("ca-cert.pem"))],
        &["--measurement", &p(&out)],
    )
    .expect_code(0);
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let signer = &doc["signers"][0];
    assert_eq!(signer["method"], "certificate");
    assert_eq!(signer["curve"], "P-384");
    assert_eq!(signer["certificate"]["subject"], "CN=intermediate-ca");
    assert_eq!(signer["certificate"]["anchor"]["subject"], "CN=root-ca");
    assert!(
        signer["certificate"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let pki = Pki::new(&[]);
    verify_cert(&dir, &sig, &[pki.s("root.pem")], &[])
        .expect_code(1)
        .expect_stderr("does not chain to a trusted anchor");
}

#[test]
fn trust_flags_are_exclusive_and_anchor_files_must_hold_certificates() {
    let model = rich_model();
    let m = p(model.path());
    modelgate([
        "verify",
        &m,
        "--signature",
        "s",
        "--key",
        "k",
        "--certificate-chain",
        "c",
    ])
    .expect_code(2)
    .expect_stderr("cannot be used with");
    modelgate([
        "verify",
        &m,
        "--signature",
        "s",
        "--allow-expired-certificate",
        "--key",
        "k",
    ])
    .expect_code(2);
    // anchors and a keyless identity together: one would be silently unused
    modelgate([
        "verify",
        &m,
        "--signature",
        "s",
        "--certificate-chain",
        "c.pem",
        "--certificate-identity",
        "a@example.com",
        "--certificate-oidc-issuer",
        "https://issuer.example.com",
    ])
    .expect_code(2)
    .expect_stderr("cannot be used with");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    verify_cert(model.path(), &dir.path().join("s"), &[p(&junk)], &[])
        .expect_code(2)
        .expect_stderr(&format!(
            "certificate {}: not a valid X.509 certificate",
            p(&junk)
        ));
}

/// Signs the rich model with the reference by a PKI made with `options` and
/// verifies it anchored at the root.
fn chain_verdict(options: &[&str]) -> Run {
    let pki = Pki::new(options);
    let model = rich_model();
    let out = tempfile::tempdir().unwrap();
    let sig = out.path().join("m.sig");
    reference_signs(&pki, model.path(), &sig);
    verify_cert(model.path(), &sig, &[pki.s("root.pem")], &[])
}

#[test]
fn path_length_key_usage_and_critical_extensions_are_enforced() {
    chain_verdict(&["--root-path-len-zero"])
        .expect_code(1)
        .expect_stderr("CA CN=test-root-ca allows 0 intermediate(s) below it, the chain has 1");
    chain_verdict(&["--intermediate-no-cert-sign"])
        .expect_code(1)
        .expect_stderr("CA CN=test-intermediate-ca is not allowed to sign certificates (keyUsage lacks keyCertSign)");
    chain_verdict(&["--leaf-unknown-critical"])
        .expect_code(1)
        .expect_stderr(
            "has a critical extension 1.3.6.1.4.1.99999.1 that modelgate does not process",
        );
}
