//! Bearer-token auth as registries in use have it: Debian's docker-registry
//! (CNCF distribution 2.8) with `auth: token`, its tokens issued by
//! tests/support/token_server.py (ES256 JWTs with an x5c chain the registry
//! checks against the bundle it was given; per-repository access; basic
//! credentials of one user). modelgate answers the registry's challenge by
//! asking the token server, with the Docker config's credentials, for pull on
//! the one repository it reads; a refused token ends the pull with nothing
//! kept and the password never shown.

use std::ffi::OsString;

use crate::common::registry::*;
use crate::common::*;
use serde_json::{Value, json};

/// The token server's log entries from index `from` on.
fn requests_since(reg: &Registry, from: usize) -> Vec<Value> {
    reg.token_requests().split_off(from)
}

/// Every token request in `entries` was alice's, for pull on `repository`
/// only, and was granted exactly that.
#[track_caller]
fn only_pull_on(entries: &[Value], repository: &str) {
    assert!(!entries.is_empty(), "no token was asked for");
    for e in entries {
        assert_eq!(e["path"], "/token", "{e}");
        assert_eq!(e["service"], TOKEN_SERVICE, "{e}");
        assert_eq!(
            e["scopes"],
            json!([format!("repository:{repository}:pull")]),
            "{e}"
        );
        assert_eq!(e["account"], USER, "{e}");
        assert_eq!(e["status"], 200, "{e}");
        assert_eq!(
            e["granted"],
            json!([{"type": "repository", "name": repository, "actions": ["pull"]}]),
            "{e}"
        );
    }
}

/// Neither password shows in anything modelgate printed.
#[track_caller]
fn no_password(run: &Run) {
    for secret in [PASSWORD, "wrong-password"] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret:?} printed:\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// Requests by modelgate for `path` in the registry's access log.
fn registry_requests(reg: &Registry, path: &str) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("\"modelgate/") && l.contains(path))
        .count()
}

#[test]
fn a_model_behind_token_auth_is_pulled_and_verified_with_a_pull_token_for_its_repository() {
    let reg = Registry::start(Mode::Token);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let before = reg.token_requests().len();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model");
    let measurement = out.path().join("m.json");
    let reference = reg.reference("models/tiny:v1");
    let run = pull(
        &reg,
        &reference,
        &dest,
        &["--measurement", measurement.to_str().unwrap()],
    );
    run.expect_code(0)
        .expect_stderr("layout=\"oras\"")
        .expect_stderr("credential=user alice")
        .expect_stderr("INFO verified model=");
    no_password(&run);
    same_files(&repo(TINY), &dest);
    let doc: Value = serde_json::from_slice(&std::fs::read(&measurement).unwrap()).unwrap();
    assert_eq!(doc["verdict"], "verified");
    assert_eq!(doc["source"]["reference"], reference.as_str());
    // One repository, read only: the token asked for is pull on it, no push.
    only_pull_on(&requests_since(&reg, before), "models/tiny");
    // The registry served the manifest to modelgate, with that token.
    assert_eq!(
        registry_requests(&reg, "/v2/models/tiny/manifests/v1 HTTP/1.1\" 200"),
        1,
        "{}",
        reg.log()
    );
}

#[test]
fn a_model_signed_here_and_pushed_as_modelpack_behind_token_auth_is_pulled() {
    // A fresh key signs a copy of the tiny model, pushed as a ModelPack
    // artifact through the distribution API with a pull+push token.
    let reg = Registry::start(Mode::Token);
    let keys = keypair("P-256");
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("tiny");
    std::fs::create_dir(&model).unwrap();
    for (name, path) in tiny_files() {
        std::fs::copy(path, model.join(name)).unwrap();
    }
    let sig = work.path().join("tiny.sig");
    attest(&model, &keys.private, &sig);
    let layers: Vec<Value> = tiny_files()
        .iter()
        .map(|(name, _)| {
            json!({
                "mediaType": "application/vnd.cncf.model.weight.v1.raw",
                "file": model.join(name),
                "annotations": {"org.cncf.model.filepath": name},
            })
        })
        .collect();
    let before = reg.token_requests().len();
    push_spec(
        &reg,
        "team/signed",
        "v2",
        &json!({
            "artifactType": "application/vnd.cncf.model.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "content": "{}"},
            "layers": layers,
        }),
    );
    let pushed = requests_since(&reg, before);
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(
        pushed[0]["granted"],
        json!([{"type": "repository", "name": "team/signed", "actions": ["pull", "push"]}])
    );
    let before = reg.token_requests().len();
    let dest = work.path().join("pulled");
    let mut args: Vec<OsString> = vec![
        "pull".into(),
        reg.reference("team/signed:v2").into(),
        dest.clone().into(),
        "--signature".into(),
        sig.into(),
        "--key".into(),
        keys.public.clone().into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    let run = modelgate(args);
    run.expect_code(0)
        .expect_stderr("layout=\"modelpack\"")
        .expect_stderr("credential=user alice");
    no_password(&run);
    same_files(&repo(TINY), &dest);
    only_pull_on(&requests_since(&reg, before), "team/signed");
}

#[test]
fn a_refused_token_fails_the_pull_with_nothing_kept_and_no_password_shown() {
    let reg = Registry::start(Mode::Token);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let out = tempfile::tempdir().unwrap();
    let reference = reg.reference("models/tiny:v1");
    // A wrong password, and no credentials at all (a HOME with no Docker
    // config): the token server answers 401 and the registry is never asked
    // for the manifest.
    for (case, config) in [
        ("wrong", Some(reg.docker_config("wrong-password"))),
        ("none", None),
    ] {
        let before = reg.token_requests().len();
        let manifests = registry_requests(&reg, "/manifests/");
        let dest = out.path().join(case);
        let mut args = pull_args(&reference, &dest);
        args.extend(["--insecure-registry".into(), reg.host.clone().into()]);
        if let Some(c) = &config {
            args.extend(["--registry-config".into(), c.into()]);
        }
        let home = out.path().join(format!("home-{case}"));
        std::fs::create_dir(&home).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .args(&args)
            .env("MODELGATE_LOG_FORMAT", "text")
            .env_remove("MODELGATE_LOG")
            .env("HOME", &home)
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .output()
            .unwrap();
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        run.expect_code(2)
            .expect_stderr(&format!(
                "ERROR cannot authenticate to {reference}: authentication failed ("
            ))
            .expect_stderr("\"code\": \"UNAUTHORIZED\"")
            .expect_stderr(&format!(
                "check the credentials for {} in the registry config; do not start the workload exit_code=2",
                reg.host
            ));
        assert!(
            !run.stderr.contains("INFO pulled"),
            "{case}: {}",
            run.stderr
        );
        no_password(&run);
        nothing_left(&dest);
        // The token server refused exactly one request, for pull on the
        // repository, sent with basic credentials only when there were some.
        let asked = requests_since(&reg, before);
        assert_eq!(asked.len(), 1, "{case}: {asked:?}");
        assert_eq!(
            asked[0]["scopes"],
            json!(["repository:models/tiny:pull"]),
            "{case}"
        );
        assert_eq!(asked[0]["status"], 401, "{case}");
        assert_eq!(asked[0]["account"], Value::Null, "{case}");
        let sent = if config.is_some() { "basic" } else { "none" };
        assert_eq!(asked[0]["credentials"], sent, "{case}");
        assert_eq!(
            registry_requests(&reg, "/manifests/"),
            manifests,
            "{case}: the registry served a manifest"
        );
    }
    // The token server never logs credentials either.
    let log = std::fs::read_to_string(reg.dir.path().join("token.jsonl")).unwrap();
    assert!(!log.contains(PASSWORD) && !log.contains("wrong-password"));
}

#[test]
fn each_pull_asks_for_pull_on_its_own_repository_and_tokens_do_not_cross_repositories() {
    let reg = Registry::start(Mode::Token);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    oras_push(&reg, &repo(TINY), "other/model:v1");
    let out = tempfile::tempdir().unwrap();
    for (repository, dest) in [("models/tiny", "a"), ("other/model", "b")] {
        let before = reg.token_requests().len();
        let dest = out.path().join(dest);
        pull(
            &reg,
            &reg.reference(&format!("{repository}:v1")),
            &dest,
            &[],
        )
        .expect_code(0);
        same_files(&repo(TINY), &dest);
        only_pull_on(&requests_since(&reg, before), repository);
    }
    // The registry holds tokens to their repository: a pull token for one
    // opens its manifest and not the other's (so the scope asked for is the
    // scope that matters).
    let token = reg.bearer_token("repository:models/tiny:pull");
    let status = |repository: &str| -> String {
        run_ok(
            std::process::Command::new(venv().join("bin/python"))
                .args([
                    "-c",
                    "import requests, sys\nprint(requests.get(f'http://{sys.argv[1]}/v2/{sys.argv[2]}/manifests/v1', headers={'Authorization': 'Bearer ' + sys.argv[3], 'Accept': 'application/vnd.oci.image.manifest.v1+json'}).status_code)",
                ])
                .arg(&reg.host)
                .arg(repository)
                .arg(&token),
        )
        .trim()
        .to_string()
    };
    assert_eq!(status("models/tiny"), "200");
    assert_eq!(status("other/model"), "401");
    // And the token server grants no push to a pull request, nor anything
    // on a scope type it does not know.
    let before = reg.token_requests().len();
    reg.bearer_token("repository:other/model:pull");
    reg.bearer_token("registry:catalog:*");
    let granted = requests_since(&reg, before);
    assert_eq!(
        granted[0]["granted"],
        json!([{"type": "repository", "name": "other/model", "actions": ["pull"]}])
    );
    assert_eq!(granted[1]["granted"], json!([]));
}

#[test]
fn credentials_are_never_sent_to_a_plain_http_token_service_of_an_https_registry() {
    let reg = Registry::start(Mode::TlsToken);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model");
    let run = pull(&reg, &reg.reference("models/tiny:v1"), &dest, &[]);
    run.expect_code(2).expect_stderr(&format!(
        "{} sends clients to the token service {}, which is not HTTPS: the credentials for {} would travel in cleartext, so none were sent",
        reg.host,
        reg.token_realm(),
        reg.host
    ));
    nothing_left(&dest);
    assert!(
        reg.token_requests().is_empty(),
        "the token service was asked: {:?}",
        reg.token_requests()
    );
    assert!(!run.stderr.contains(PASSWORD) && !run.stdout.contains(PASSWORD));
}
