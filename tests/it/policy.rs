//! ModelPolicy: every rule kind passes when satisfied and fails when not,
//! k-of-n counts distinct authorities, and nothing is trusted by default.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

/// A model signed by two keys (two signature files), with a policy folder.
struct Setup {
    model: tempfile::TempDir,
    dir: tempfile::TempDir,
    alice: Keys,
    bob: Keys,
}

impl Setup {
    fn new() -> Self {
        let s = Self {
            model: rich_model(),
            dir: tempfile::tempdir().unwrap(),
            alice: keypair("P-256"),
            bob: keypair("P-384"),
        };
        std::fs::copy(&s.alice.public, s.dir.path().join("alice.pub")).unwrap();
        std::fs::copy(&s.bob.public, s.dir.path().join("bob.pub")).unwrap();
        s.sign(&s.alice, "alice.sig");
        s.sign(&s.bob, "bob.sig");
        s
    }

    fn sign(&self, keys: &Keys, name: &str) {
        attest(self.model.path(), &keys.private, self.path(name));
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn policy(&self, yaml: &str) -> PathBuf {
        let p = self.path("policy.yaml");
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// modelgate verify MODEL --policy P --signature S... [extra]
    fn verify(&self, policy: &Path, sigs: &[&str], extra: &[&str]) -> Run {
        let mut args = vec![
            "verify".to_string(),
            self.model.path().to_string_lossy().into(),
            "--policy".into(),
            policy.to_string_lossy().into(),
        ];
        for s in sigs {
            args.extend(["--signature".into(), self.path(s).to_string_lossy().into()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        modelgate(args)
    }
}

fn rule(body: &str) -> String {
    format!(
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata:\n  name: test-policy\nspec:\n  models:\n{body}"
    )
}

const TWO_KEYS: &str = "
    - name: llm
      match:
        names: [\"model-*\"]
      authorities:
        - name: alice
          key:
            path: alice.pub
        - name: bob
          key:
            path: bob.pub
";

#[test]
fn a_key_authority_accepts_its_key_and_nothing_else() {
    let s = Setup::new();
    let p = s.policy(&rule(TWO_KEYS));
    let out = s.path("m.json");
    s.verify(
        &p,
        &["alice.sig"],
        &["--measurement", out.to_str().unwrap()],
    )
    .expect_code(0)
    .expect_stderr("rule=llm");
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        doc["policy"],
        serde_json::json!({"name": "test-policy", "rule": "llm", "mode": "enforce"})
    );
    assert_eq!(doc["signers"][0]["authority"], "alice");
    let carol = keypair("P-256");
    std::fs::copy(&carol.public, s.path("alice.pub")).unwrap();
    let p = s.policy(&rule(TWO_KEYS));
    s.verify(&p, &["alice.sig"], &[])
        .expect_code(1)
        .expect_stderr("no authority of rule llm accepts it (alice: it was made by the key");
}

#[test]
fn k_of_n_counts_distinct_authorities() {
    let s = Setup::new();
    let p = s.policy(&rule(&format!("{TWO_KEYS}      count: 2\n")));
    s.verify(&p, &["alice.sig", "bob.sig"], &[]).expect_code(0);
    s.verify(&p, &["alice.sig"], &[])
        .expect_code(1)
        .expect_stderr("rule llm needs signatures from 2 distinct authorities, 1 verified (alice)");
    // the same signer twice is still one signer
    std::fs::copy(s.path("alice.sig"), s.path("alice2.sig")).unwrap();
    s.verify(&p, &["alice.sig", "alice2.sig"], &[])
        .expect_code(1)
        .expect_stderr("1 verified (alice)");
    // a third, broken signature does not block a met threshold
    std::fs::write(s.path("junk.sig"), "{}").unwrap();
    s.verify(&p, &["alice.sig", "bob.sig", "junk.sig"], &[])
        .expect_code(0)
        .expect_stderr("signature not counted");
    // signatures over different content do not add up
    std::fs::write(s.model.path().join("config.json"), "{\"changed\":1}").unwrap();
    s.sign(&s.bob, "bob.sig");
    s.verify(&p, &["alice.sig", "bob.sig"], &[])
        .expect_code(1)
        .expect_stderr("signs other model content");
}

#[test]
fn nothing_is_trusted_for_a_model_no_rule_matches() {
    let s = Setup::new();
    let p = s.policy(&rule(&TWO_KEYS.replace("model-*", "llama-*")));
    s.verify(&p, &["alice.sig"], &[])
        .expect_code(1)
        .expect_stderr("no rule of policy test-policy matches model")
        .expect_stderr("nothing is trusted by default");
    // --model-name names the model for matching (a generic mount path in a pod)
    s.verify(&p, &["alice.sig"], &["--model-name", "llama-3-8b"])
        .expect_code(0);
}

#[test]
fn the_first_matching_rule_applies() {
    let s = Setup::new();
    let body = "
    - name: only-bob
      match:
        names: [\"model-*\"]
      authorities:
        - name: bob
          key:
            path: bob.pub
    - name: alice-fallback
      match:
        names: [\"*\"]
      authorities:
        - name: alice
          key:
            path: alice.pub
";
    let p = s.policy(&rule(body));
    s.verify(&p, &["alice.sig"], &[])
        .expect_code(1)
        .expect_stderr("signature rejected");
    s.verify(&p, &["bob.sig"], &[])
        .expect_code(0)
        .expect_stderr("rule=only-bob");
}

#[test]
fn required_coverage_and_unsigned_files() {
    let s = Setup::new();
    let p = s.policy(&rule(&format!(
        "{TWO_KEYS}      requireCovered: [\"config.json\", \"tokenizer*\", \"*.bin\"]\n"
    )));
    s.verify(&p, &["alice.sig"], &[]).expect_code(0);
    let p = s.policy(&rule(&format!(
        "{TWO_KEYS}      requireCovered: [\"*.safetensors\"]\n"
    )));
    s.verify(&p, &["alice.sig"], &[])
        .expect_code(1)
        .expect_stderr("the policy requires the signature to cover \"*.safetensors\", and no signed file matches it");
    // unsigned files: rejected by default, tolerated when the rule allows,
    // except those the rule requires signed
    let p = s.policy(&rule(&format!(
        "{TWO_KEYS}      allowUnsignedFiles: true\n      requireCovered: [\"*.bin\"]\n"
    )));
    std::fs::write(s.model.path().join("notes.txt"), "x").unwrap();
    s.verify(&p, &["alice.sig"], &[])
        .expect_code(0)
        .expect_stderr("unsigned file tolerated");
    std::fs::write(s.model.path().join("extra-weights.bin"), "x").unwrap();
    s.verify(&p, &["alice.sig"], &[])
        .expect_code(1)
        .expect_stderr("extra-weights.bin: extra");
}

#[test]
fn a_pinned_root_digest_must_match() {
    let s = Setup::new();
    let digest = modelgate(["digest".as_ref(), s.model.path().as_os_str()]);
    let root = digest.stdout.trim().to_string();
    let p = s.policy(&rule(&format!("{TWO_KEYS}      rootDigest: {root}\n")));
    s.verify(&p, &["alice.sig"], &[]).expect_code(0);
    let other = format!("sha256:{}", "ab".repeat(32));
    let p = s.policy(&rule(&format!("{TWO_KEYS}      rootDigest: {other}\n")));
    s.verify(&p, &["alice.sig"], &[])
        .expect_code(1)
        .expect_stderr(&format!(
            "but the policy pins {other}; this is not the model the policy names"
        ));
}

#[test]
fn warn_mode_lets_the_pod_start_and_says_so() {
    let s = Setup::new();
    let p = s.policy(&rule(&format!("{TWO_KEYS}      mode: warn\n")));
    std::fs::write(s.model.path().join("config.json"), "{}").unwrap();
    let out = s.path("m.json");
    s.verify(&p, &["alice.sig"], &["--measurement", out.to_str().unwrap()])
        .expect_code(0)
        .expect_stderr("config.json: modified")
        .expect_stderr("POLICY RULE llm IS IN WARN MODE: the workload is allowed to start UNVERIFIED (enforce mode would exit 1)");
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["verdict"], "unverified-allowed");
    assert_eq!(doc["policy"]["mode"], "warn");
    assert_eq!(doc["reasons"][0]["kind"], "modified");
    // enforce is the default
    let p = s.policy(&rule(TWO_KEYS));
    s.verify(&p, &["alice.sig"], &[]).expect_code(1);
}

#[test]
fn certificate_and_keyless_authorities() {
    // keyless: the reference's released keylessly signed model
    let dir = repo("fixtures/oms-released/v1.1.0-sigstore");
    let pol = tempfile::tempdir().unwrap();
    let write = |subject: &str| {
        let p = pol.path().join("p.yaml");
        std::fs::write(
            &p,
            rule(&format!(
                "
    - name: oms
      match:
        names: [\"*\"]
      authorities:
        - name: ibm
          keyless:
            identities:
              - issuer: https://sigstore.verify.ibm.com/oauth2
                {subject}
"
            )),
        )
        .unwrap();
        p
    };
    let run = |p: &Path| {
        modelgate([
            "verify".as_ref(),
            dir.as_os_str(),
            "--policy".as_ref(),
            p.as_os_str(),
            "--signature".as_ref(),
            dir.join("model.sig").as_os_str(),
        ])
    };
    run(&write("subject: stefanb@us.ibm.com")).expect_code(0);
    run(&write("subjectRegExp: \".*@us\\\\.ibm\\\\.com\"")).expect_code(0);
    run(&write("subject: eve@us.ibm.com"))
        .expect_code(1)
        .expect_stderr("the trusted identity is \"eve@us.ibm.com\"");

    // certificate: the reference's released certificate-signed model
    let cdir = repo("fixtures/oms-released/v1.1.0-certificate");
    let ca = repo("fixtures/oms-released/keys/ca-cert.pem");
    let cert_policy = |anchor: &Path| {
        let p = pol.path().join("c.yaml");
        std::fs::write(
            &p,
            rule(&format!(
                "
    - name: pki
      match:
        names: [\"*\"]
      authorities:
        - name: corp
          certificate:
            anchors:
              - path: {}
",
                anchor.display()
            )),
        )
        .unwrap();
        p
    };
    let runc = |p: &Path| {
        modelgate([
            "verify".as_ref(),
            cdir.as_os_str(),
            "--policy".as_ref(),
            p.as_os_str(),
            "--signature".as_ref(),
            cdir.join("model.sig").as_os_str(),
        ])
    };
    runc(&cert_policy(&ca)).expect_code(0);
    let wrong = repo("fixtures/oms-released/keys/signing-key-pub.pem");
    runc(&cert_policy(&wrong))
        .expect_code(2)
        .expect_stderr("certificate.anchors");
}

#[test]
fn policy_check_explains_valid_policies_and_rejects_bad_ones() {
    let s = Setup::new();
    let p = s.policy(&rule(&format!(
        "{TWO_KEYS}      count: 2\n      requireCovered: [\"*.safetensors\"]\n"
    )));
    let out = modelgate(["policy".as_ref(), "check".as_ref(), p.as_os_str()]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("needs signatures from 2 of 2 authorities"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("the signature must cover: *.safetensors"),
        "{}",
        out.stdout
    );

    let bad = |body: &str, expect: &str| {
        let p = s.policy(body);
        modelgate(["policy".as_ref(), "check".as_ref(), p.as_os_str()])
            .expect_code(2)
            .expect_stderr(expect);
    };
    bad(&rule(&TWO_KEYS.replace("names:", "nmaes:")), "nmaes");
    bad(
        &rule(&format!("{TWO_KEYS}      threshold: 2\n")),
        "threshold",
    );
    bad(
        &rule("    - name: empty\n      match:\n        names: [\"*\"]\n      authorities: []\n"),
        "authorities is empty",
    );
    bad(
        &rule(&format!("{TWO_KEYS}      count: 3\n")),
        "count is 3, but must be between 1 and the 2 authorities",
    );
    bad(
        &rule(&TWO_KEYS.replace("names: [\"model-*\"]", "names: []")),
        "match names no model",
    );
    bad(
        &rule(&TWO_KEYS.replace(
            "path: bob.pub",
            "path: bob.pub\n          keyless:\n            identities: []",
        )),
        "give exactly one of key, keyless or certificate",
    );
    bad(
        &rule(&format!("{TWO_KEYS}      rootDigest: sha256:abc\n")),
        "rootDigest",
    );
    bad(&rule(&format!("{TWO_KEYS}      mode: audit\n")), "audit");
    bad(TWO_KEYS, "expected mapping start"); // a rule list is not a policy document
    bad(
        &rule(TWO_KEYS).replace("modelgate.dev/v1alpha1", "policy.sigstore.dev/v1beta1"),
        "expected apiVersion modelgate.dev/v1alpha1",
    );
    bad(
        &rule(&format!(
            "{TWO_KEYS}{}",
            TWO_KEYS.replace("model-*", "other")
        )),
        "rule name \"llm\" is used twice",
    );

    // JSON works as well as YAML
    let json = serde_json::json!({
        "apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelPolicy",
        "spec": {"models": [{"name": "j", "match": {"names": ["*"]},
            "authorities": [{"name": "alice", "key": {"path": "alice.pub"}}]}]}
    });
    let jp = s.path("policy.json");
    std::fs::write(&jp, json.to_string()).unwrap();
    modelgate(["policy".as_ref(), "check".as_ref(), jp.as_os_str()]).expect_code(0);
    s.verify(&jp, &["alice.sig"], &[]).expect_code(0);
}

#[test]
fn policy_and_trust_flags_exclude_each_other() {
    let s = Setup::new();
    let p = s.policy(&rule(TWO_KEYS));
    s.verify(
        &p,
        &["alice.sig"],
        &["--key", s.path("alice.pub").to_str().unwrap()],
    )
    .expect_code(2)
    .expect_stderr("cannot be used with");
}
