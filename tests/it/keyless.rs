//! Keyless signing for CI (`attest --sigstore`): modelgate signs through a
//! private Sigstore on loopback (tests/support/private_sigstore.py: Fulcio
//! v2, Rekor v1 and GitHub Actions' token endpoint over TLS under a test
//! CA, with real certificates, SCTs, inclusion proofs, checkpoints and
//! signed entry timestamps), then modelgate and the reference both verify
//! the bundle offline against the private trusted root. Each failure ends
//! with exit 2, a message naming what failed, no bundle, and no token in
//! the output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::common::{Process, Run, reference_cli, repo, run, venv, write_files};

/// The private Sigstore, owned by the test.
struct PrivateSigstore {
    _server: Process,
    dir: TempDir,
    base: String,
}

impl PrivateSigstore {
    fn start(fault: &str) -> Self {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(venv().join("bin/python"));
        cmd.arg(repo("tests/support/private_sigstore.py"))
            .arg(dir.path())
            .stdout(Stdio::piped());
        if !fault.is_empty() {
            cmd.args(["--fault", fault]);
        }
        let mut server = Process::spawn(&mut cmd);
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("private_sigstore.py did not start: {line:?}"));
        let base = format!("https://127.0.0.1:{port}");
        Self {
            _server: server,
            dir,
            base,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn token(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// `modelgate attest MODEL --sigstore` against this instance, with
    /// `extra` flags and `env`, no token variable inherited.
    fn attest(&self, model: &Path, sig: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let head = [
            "attest".as_ref(),
            model.as_os_str(),
            "--signature".as_ref(),
            sig.as_os_str(),
        ];
        self.sign(&head, extra, env)
    }

    /// `modelgate HEAD... --sigstore` against this instance.
    fn sign(&self, head: &[&std::ffi::OsStr], extra: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate"));
        cmd.args(head)
            .arg("--sigstore")
            .arg("--ca-file")
            .arg(self.path("tls-ca.pem"));
        if !extra.contains(&"--signing-config") {
            cmd.arg("--signing-config")
                .arg(self.path("signing_config.json"));
        }
        if !extra.iter().any(|a| a.starts_with("--trusted-root")) {
            cmd.arg("--trusted-root")
                .arg(self.path("trusted_root.json"));
        }
        cmd.args(extra)
            .env("MODELGATE_LOG_FORMAT", "text")
            .env_remove("MODELGATE_LOG")
            .env_remove("SIGSTORE_ID_TOKEN")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
            .envs(env.iter().copied());
        run(&mut cmd)
    }
}

fn model() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[("config.json", b"{}"), ("weights.bin", &[7u8; 4096])],
    );
    dir
}

fn verify_with_both(s: &PrivateSigstore, model: &Path, sig: &Path, identity: &str) {
    let ours = crate::common::modelgate([
        "verify".as_ref(),
        model.as_os_str(),
        "--signature".as_ref(),
        sig.as_os_str(),
        "--certificate-identity".as_ref(),
        identity.as_ref(),
        "--certificate-oidc-issuer".as_ref(),
        "https://oidc.test".as_ref(),
        "--trusted-root".as_ref(),
        s.path("trusted_root.json").as_os_str(),
    ]);
    ours.expect_code(0);
    let theirs = reference_cli([
        "verify".as_ref(),
        "sigstore".as_ref(),
        model.as_os_str(),
        "--signature".as_ref(),
        sig.as_os_str(),
        "--identity".as_ref(),
        identity.as_ref(),
        "--identity_provider".as_ref(),
        "https://oidc.test".as_ref(),
        "--trust_config".as_ref(),
        s.path("trust_config.json").as_os_str(),
    ]);
    assert!(
        theirs.code == 0 && theirs.stdout.contains("Verification succeeded"),
        "model_signing verify sigstore: {theirs:?}"
    );
}

#[test]
fn keyless_attest_signs_through_fulcio_and_rekor_and_both_verifiers_accept_it() {
    let s = PrivateSigstore::start("");
    let m = model();
    let out = tempfile::tempdir().unwrap();
    let sig = out.path().join("model.sig");
    let token = s.token("token.jwt");
    let run = s.attest(m.path(), &sig, &[], &[("SIGSTORE_ID_TOKEN", &token)]);
    run.expect_code(0)
        .expect_stderr("signer=sigstore ci@example.com from https://oidc.test (rekor log index 1)");
    assert!(!run.stderr.contains(token.trim()));
    let bundle = std::fs::read_to_string(&sig).unwrap();
    assert!(!bundle.contains(token.trim()), "the token is in the bundle");
    let json: serde_json::Value = serde_json::from_str(&bundle).unwrap();
    assert_eq!(
        json["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let entry = &json["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["kind"], "dsse");
    assert!(entry["inclusionProof"]["checkpoint"]["envelope"].is_string());
    verify_with_both(&s, m.path(), &sig, "ci@example.com");
}

#[test]
fn keyless_with_a_timestamp_authority_and_with_rekor_v2_verifies_with_both() {
    let s = PrivateSigstore::start("");
    let m = model();
    let out = tempfile::tempdir().unwrap();
    let token = s.token("token.jwt");
    // Rekor v1 with an RFC 3161 timestamp (what the public-good config
    // asks for), and Rekor v2 (hashedrekord 0.0.2, timed by the TSA only).
    for (config, kind, log_path) in [
        ("signing_config-tsa.json", "dsse", "/api/v1/log/entries"),
        (
            "signing_config-rekor-v2.json",
            "hashedrekord",
            "/api/v2/log/entries",
        ),
    ] {
        let sig = out.path().join(format!("{kind}.sig"));
        let config = s.path(config);
        let run = s.attest(
            m.path(),
            &sig,
            &["--signing-config", config.to_str().unwrap()],
            &[("SIGSTORE_ID_TOKEN", token.trim())],
        );
        run.expect_code(0);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&sig).unwrap()).unwrap();
        let material = &json["verificationMaterial"];
        let stamps = &material["timestampVerificationData"]["rfc3161Timestamps"];
        assert_eq!(stamps.as_array().map(Vec::len), Some(1), "{json}");
        assert_eq!(material["tlogEntries"][0]["kindVersion"]["kind"], kind);
        verify_with_both(&s, m.path(), &sig, "ci@example.com");
        let log = std::fs::read_to_string(s.path("requests.jsonl")).unwrap();
        assert!(
            log.contains(&format!(r#""path": "{log_path}", "status": 201"#)),
            "{log}"
        );
        assert!(
            log.contains(r#""path": "/api/v1/timestamp", "status": 200"#),
            "{log}"
        );
    }
}

#[test]
fn keyless_tokens_come_from_a_flag_a_file_or_github_actions() {
    let s = PrivateSigstore::start("");
    let m = model();
    let out = tempfile::tempdir().unwrap();
    let token = s.token("token.jwt");
    let file = s.path("token.jwt");
    let file = file.to_str().unwrap();
    let request_url = format!("{}/github/token?api-version=2.0", s.base);
    let github = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", request_url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token-for-tests"),
    ];
    let workflow = "https://github.com/org/repo/.github/workflows/sign.yml@refs/heads/main";
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Vec<&str>, Env, &str); 4] = [
        (
            "value",
            vec!["--identity-token", token.trim()],
            &[],
            "ci@example.com",
        ),
        (
            "file",
            vec!["--identity-token", file],
            &[],
            "ci@example.com",
        ),
        (
            "token file",
            vec!["--identity-token-file", file],
            &[],
            "ci@example.com",
        ),
        ("github", vec![], &github, workflow),
    ];
    for (case, flags, env, identity) in cases {
        let sig = out.path().join(format!("{}.sig", case.replace(' ', "-")));
        let run = s.attest(m.path(), &sig, &flags, env);
        run.expect_code(0).expect_stderr(&format!(
            "signer=sigstore {identity} from https://oidc.test"
        ));
        assert!(!run.stderr.contains(token.trim()), "{case}");
        verify_with_both(&s, m.path(), &sig, identity);
    }
}

#[test]
fn keyless_failures_are_named_and_write_no_bundle() {
    let ok = PrivateSigstore::start("");
    let m = model();
    let out = tempfile::tempdir().unwrap();
    let sig = out.path().join("model.sig");
    let check =
        |s: &PrivateSigstore, case: &str, flags: &[&str], env: &[(&str, &str)], want: &str| {
            let run = s.attest(m.path(), &sig, flags, env);
            run.expect_code(2).expect_stderr(want);
            assert!(!sig.exists(), "{case}: a bundle was written");
            for t in ["token.jwt", "expired.jwt", "foreign.jwt"] {
                let token = s.token(t);
                assert!(
                    !run.stderr.contains(token.trim()),
                    "{case}: {t} is in the output"
                );
                let claims = token.split('.').nth(1).unwrap();
                assert!(
                    !run.stderr.contains(claims),
                    "{case}: {t}'s claims are in the output"
                );
            }
        };
    let token = ok.token("token.jwt");
    let env = [("SIGSTORE_ID_TOKEN", token.trim())];
    check(
        &ok,
        "no token",
        &[],
        &[],
        "ERROR --sigstore needs an OIDC identity token and none was found: pass --identity-token or --identity-token-file, set SIGSTORE_ID_TOKEN, or on GitHub Actions give the job `permissions: id-token: write` exit_code=2",
    );
    let expired = ok.token("expired.jwt");
    check(
        &ok,
        "expired",
        &[],
        &[("SIGSTORE_ID_TOKEN", expired.trim())],
        "ERROR the identity token from SIGSTORE_ID_TOKEN expired at ",
    );
    check(
        &ok,
        "malformed",
        &["--identity-token", "not-a-jwt"],
        &[],
        "ERROR the identity token from --identity-token cannot be used: it is not an OIDC identity token (a JWT: header.payload.signature): it has 1 dot-separated parts, expected 3; pass the token your CI issued for the audience sigstore exit_code=2",
    );
    let foreign = ok.token("foreign.jwt");
    check(
        &ok,
        "foreign token",
        &[],
        &[("SIGSTORE_ID_TOKEN", foreign.trim())],
        &format!(
            "ERROR Fulcio at {} did not issue a signing certificate: Fulcio returned HTTP 401: failed to create signing certificate: {{\"code\": 16, \"message\": \"error processing the identity token: InvalidSignatureError\"}}",
            ok.base
        ),
    );
    let dead = ok.path("signing_config-dead-rekor.json");
    check(
        &ok,
        "rekor unreachable",
        &["--signing-config", dead.to_str().unwrap()],
        &env,
        "ERROR Rekor at https://127.0.0.1:1 did not log the signature: HTTP error: error sending request for url (https://127.0.0.1:1/api/v1/log/entries); the service cannot be reached (refused, unresolvable, too slow, or an HTTPS certificate no root vouches for: add its CA with --ca-file) exit_code=2",
    );
    let dead_tsa = ok.path("signing_config-dead-tsa.json");
    check(
        &ok,
        "tsa unreachable",
        &["--signing-config", dead_tsa.to_str().unwrap()],
        &env,
        "ERROR the timestamp authority at https://127.0.0.1:1/api/v1/timestamp did not timestamp the signature: HTTP error: error sending request for url (https://127.0.0.1:1/api/v1/timestamp); the service cannot be reached",
    );
    // A TSA whose key the root does not name: the timestamp does not verify.
    let bad_tsa = PrivateSigstore::start("bad-tsa");
    let config = bad_tsa.path("signing_config-tsa.json");
    let token = bad_tsa.token("token.jwt");
    check(
        &bad_tsa,
        "bad-tsa",
        &["--signing-config", config.to_str().unwrap()],
        &[("SIGSTORE_ID_TOKEN", token.trim())],
        "trusted_root.json: Sigstore verification failed: invalid RFC 3161 timestamp: TSA timestamp verification failed",
    );
    // Rekor v2 answering with a broken inclusion proof.
    let broken = PrivateSigstore::start("broken-proof");
    let config = broken.path("signing_config-rekor-v2.json");
    let token = broken.token("token.jwt");
    check(
        &broken,
        "rekor v2 broken-proof",
        &["--signing-config", config.to_str().unwrap()],
        &[("SIGSTORE_ID_TOKEN", token.trim())],
        "trusted_root.json: Sigstore verification failed: invalid inclusion proof",
    );
    // The root of another instance: the answer does not verify against it.
    let other = PrivateSigstore::start("");
    let other_root = format!(
        "--trusted-root={}",
        other.path("trusted_root.json").display()
    );
    check(
        &ok,
        "another trusted root",
        &[&other_root],
        &env,
        &format!(
            "ERROR the bundle made through Sigstore does not verify against {}: ",
            other_root.replace('=', " ")
        ),
    );
    for (fault, flags, want) in [
        (
            "fulcio-refuses",
            &[][..],
            "did not issue a signing certificate: Fulcio returned HTTP 401: failed to create signing certificate: {\"code\": 16, \"message\": \"the test Fulcio refuses every token\"}",
        ),
        (
            "rekor-500",
            &[][..],
            "did not log the signature: Rekor returned HTTP 500",
        ),
        (
            "bad-sct",
            &[][..],
            "trusted_root.json: Sigstore verification failed: invalid signed certificate timestamp: SCT signature verification failed",
        ),
        (
            "broken-proof",
            &[][..],
            "trusted_root.json: Sigstore verification failed: invalid inclusion proof: inclusion proof verification failed: root hash mismatch",
        ),
        (
            "slow",
            &["--timeout", "2"][..],
            "ERROR keyless signing (token, Fulcio, Rekor) did not finish within 2s (--timeout); nothing was written exit_code=2",
        ),
    ] {
        let s = PrivateSigstore::start(fault);
        let token = s.token("token.jwt");
        check(
            &s,
            fault,
            flags,
            &[("SIGSTORE_ID_TOKEN", token.trim())],
            want,
        );
    }
}

#[test]
fn keyless_push_signs_through_sigstore_and_pull_finds_and_verifies_the_signature() {
    use crate::common::registry::{Mode, Registry, TINY};
    let s = PrivateSigstore::start("");
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let reference = reg.reference("models/tiny:keyless");
    let token = s.token("token.jwt");
    let model = repo(TINY);
    let mut head: Vec<std::ffi::OsString> =
        vec!["push".into(), model.into(), reference.clone().into()];
    head.extend(reg.flags().into_iter().map(Into::into));
    let head: Vec<&std::ffi::OsStr> = head.iter().map(|a| a.as_os_str()).collect();
    let run = s.sign(&head, &[], &[("SIGSTORE_ID_TOKEN", token.trim())]);
    run.expect_code(0)
        .expect_stderr("signer=sigstore ci@example.com from https://oidc.test");
    // Pulled back without --signature: the keyless signature is discovered
    // and verified against the private root.
    let dest = work.path().join("model");
    let mut pull: Vec<std::ffi::OsString> = vec![
        "pull".into(),
        reference.into(),
        dest.clone().into(),
        "--certificate-identity".into(),
        "ci@example.com".into(),
        "--certificate-oidc-issuer".into(),
        "https://oidc.test".into(),
        "--trusted-root".into(),
        s.path("trusted_root.json").into(),
    ];
    pull.extend(reg.flags().into_iter().map(Into::into));
    crate::common::modelgate(pull).expect_code(0);
    assert!(
        dest.join("config.json").exists() || std::fs::read_dir(&dest).unwrap().next().is_some()
    );
}
