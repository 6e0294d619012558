//! Validly signed but hostile or odd manifests: the signature verifies, so
//! only the manifest checks stand between them and a started pod.

use crate::common::*;
use base64::Engine as _;
use modelgate::oms::bundle::{self, Bundle};
use modelgate::trust::PrivateKey;
use serde_json::{Value, json};

struct Fixture {
    model: tempfile::TempDir,
    dir: tempfile::TempDir,
    keys: Keys,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data))
}

impl Fixture {
    fn new() -> Self {
        let model = tempfile::tempdir().unwrap();
        write_files(
            model.path(),
            &[("a.bin", b"alpha"), ("b/c.bin", b"charlie")],
        );
        Self {
            model,
            dir: tempfile::tempdir().unwrap(),
            keys: keypair("P-256"),
        }
    }

    /// Resources for the model as it is, in the given order.
    fn resources(&self, names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|n| {
                let data = std::fs::read(self.model.path().join(n)).unwrap_or_default();
                json!({"name": n, "algorithm": "sha256", "digest": sha256_hex(&data)})
            })
            .collect()
    }

    /// A statement over `resources` whose subject digest is consistent.
    fn statement(&self, resources: Vec<Value>) -> Value {
        let mut all = Vec::new();
        for r in &resources {
            all.extend(hex::decode(r["digest"].as_str().unwrap()).unwrap());
        }
        json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "m", "digest": {"sha256": sha256_hex(&all)}}],
            "predicateType": "https://model_signing/signature/v1.0",
            "predicate": {
                "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": []},
                "resources": resources,
            }
        })
    }

    /// Signs `payload` as `payload_type` with the test key; returns the bundle JSON value.
    fn sign(&self, payload: &[u8], payload_type: &str) -> Value {
        let pem = std::fs::read_to_string(&self.keys.private).unwrap();
        let key = PrivateKey::from_pem(&pem).unwrap();
        let sig = key.sign(&bundle::pae(payload_type, payload));
        let mut b = Bundle::for_key(key.public_key().fingerprint(), payload, &sig);
        if let Some(env) = b.dsse_envelope.as_mut() {
            env.payload_type = payload_type.into();
        }
        serde_json::to_value(&b).unwrap()
    }

    fn verify_bundle(&self, bundle: &Value) -> Run {
        let sig = self.dir.path().join("m.sig");
        std::fs::write(&sig, serde_json::to_vec(bundle).unwrap()).unwrap();
        verify(self.model.path(), sig, &self.keys.public)
    }

    fn verify_statement(&self, statement: &Value) -> Run {
        let payload = serde_json::to_vec(statement).unwrap();
        self.verify_bundle(&self.sign(&payload, "application/vnd.in-toto+json"))
    }
}

#[test]
fn a_hand_made_consistent_manifest_verifies() {
    let f = Fixture::new();
    f.verify_statement(&f.statement(f.resources(&["a.bin", "b/c.bin"])))
        .expect_code(0);
}

#[test]
fn code_point_order_of_the_oms_spec_is_accepted_too() {
    let f = Fixture::new();
    write_files(f.model.path(), &[("b-x", b"dash")]);
    // reference order: "b/c.bin" before "b-x" (components); code-point order: "b-x" first
    f.verify_statement(&f.statement(f.resources(&["a.bin", "b-x", "b/c.bin"])))
        .expect_code(0);
    f.verify_statement(&f.statement(f.resources(&["a.bin", "b/c.bin", "b-x"])))
        .expect_code(0);
}

#[test]
fn paths_escaping_the_root_are_rejected() {
    let f = Fixture::new();
    for bad in [
        "../outside",
        "/etc/passwd",
        "b/../../x",
        "b//c.bin",
        "./a.bin",
    ] {
        let mut resources = f.resources(&["a.bin"]);
        resources.push(json!({"name": bad, "algorithm": "sha256", "digest": "00".repeat(32)}));
        f.verify_statement(&f.statement(resources))
            .expect_code(1)
            .expect_stderr("the signed manifest names an unsafe path")
            .expect_stderr("a manifest may only name files inside the model");
    }
}

#[test]
fn duplicate_resources_are_rejected() {
    let f = Fixture::new();
    f.verify_statement(&f.statement(f.resources(&["a.bin", "a.bin", "b/c.bin"])))
        .expect_code(1)
        .expect_stderr("resource \"a.bin\" is listed twice");
}

#[test]
fn subject_digest_must_match_the_resources() {
    let f = Fixture::new();
    let mut st = f.statement(f.resources(&["a.bin", "b/c.bin"]));
    st["subject"][0]["digest"]["sha256"] = "11".repeat(32).into();
    f.verify_statement(&st)
        .expect_code(1)
        .expect_stderr(&format!(
            "the signed manifest is inconsistent: the subject digest is {}",
            "11".repeat(32)
        ));
}

#[test]
fn an_empty_manifest_is_never_accepted() {
    let f = Fixture::new();
    f.verify_statement(&f.statement(vec![]))
        .expect_code(1)
        .expect_stderr("the signature lists no files; an empty model is never accepted");
}

#[test]
fn wrong_types_and_algorithms_are_rejected() {
    let f = Fixture::new();
    let good = f.statement(f.resources(&["a.bin", "b/c.bin"]));
    let mut st = good.clone();
    st["predicateType"] = "https://example.com/other".into();
    f.verify_statement(&st)
        .expect_code(1)
        .expect_stderr("predicateType is \"https://example.com/other\"");
    let mut st = good.clone();
    st["_type"] = "https://in-toto.io/Statement/v0.1".into();
    f.verify_statement(&st)
        .expect_code(1)
        .expect_stderr("expected https://in-toto.io/Statement/v1");
    let mut st = good.clone();
    st["predicate"]["resources"][0]["algorithm"] = "md5".into();
    f.verify_statement(&st)
        .expect_code(1)
        .expect_stderr("uses algorithm md5, but the serialization says sha256");
    let mut st = good.clone();
    st["predicate"]["serialization"]["hash_type"] = "md5".into();
    f.verify_statement(&st)
        .expect_code(1)
        .expect_stderr("unsupported hash_type \"md5\"");
    let mut st = good.clone();
    st["predicate"]["resources"][0]["digest"] = "abcd".into();
    f.verify_statement(&st)
        .expect_code(1)
        .expect_stderr("has a malformed sha256 digest");
    let mut st = good;
    st["subject"] = json!([]);
    f.verify_statement(&st)
        .expect_code(1)
        .expect_stderr("expected exactly one subject, found 0");
}

#[test]
fn a_signed_non_in_toto_payload_is_rejected() {
    let f = Fixture::new();
    let payload = serde_json::to_vec(&f.statement(f.resources(&["a.bin", "b/c.bin"]))).unwrap();
    f.verify_bundle(&f.sign(&payload, "text/plain"))
        .expect_code(1)
        .expect_stderr("the payload type is \"text/plain\", expected application/vnd.in-toto+json");
}

#[test]
fn envelopes_with_other_than_one_signature_are_rejected() {
    let f = Fixture::new();
    let payload = serde_json::to_vec(&f.statement(f.resources(&["a.bin", "b/c.bin"]))).unwrap();
    let mut b = f.sign(&payload, "application/vnd.in-toto+json");
    let first = b["dsseEnvelope"]["signatures"][0].clone();
    b["dsseEnvelope"]["signatures"] = json!([first.clone(), first]);
    f.verify_bundle(&b)
        .expect_code(1)
        .expect_stderr("holds 2 signatures, expected exactly one");
    b["dsseEnvelope"]["signatures"] = json!([]);
    f.verify_bundle(&b)
        .expect_code(1)
        .expect_stderr("holds 0 signatures");
}

#[test]
fn legacy_key_material_and_absent_keyid_are_accepted() {
    let f = Fixture::new();
    let payload = serde_json::to_vec(&f.statement(f.resources(&["a.bin", "b/c.bin"]))).unwrap();
    let mut b = f.sign(&payload, "application/vnd.in-toto+json");
    // pre-1.0 signers wrote rawBytes and keyDetails instead of a hint, and no keyid
    let pem = std::fs::read(&f.keys.public).unwrap();
    b["verificationMaterial"]["publicKey"] = json!({"rawBytes": base64::engine::general_purpose::STANDARD.encode(pem), "keyDetails": "PKIX_ECDSA_P256_SHA_256"});
    b["dsseEnvelope"]["signatures"][0]
        .as_object_mut()
        .unwrap()
        .remove("keyid");
    f.verify_bundle(&b).expect_code(0);
    // the trust still comes from --key alone: another key fails
    let other = keypair("P-256");
    let sig = f.dir.path().join("m.sig");
    verify(f.model.path(), sig, &other.public)
        .expect_code(1)
        .expect_stderr("the DSSE signature does not verify");
}

#[test]
fn a_tampered_signature_byte_is_rejected() {
    let f = Fixture::new();
    let payload = serde_json::to_vec(&f.statement(f.resources(&["a.bin", "b/c.bin"]))).unwrap();
    let mut b = f.sign(&payload, "application/vnd.in-toto+json");
    let engine = base64::engine::general_purpose::STANDARD;
    let mut sig = engine
        .decode(b["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    b["dsseEnvelope"]["signatures"][0]["sig"] = engine.encode(sig).into();
    f.verify_bundle(&b)
        .expect_code(1)
        .expect_stderr("does not verify with the trusted key");
}
