//! Models in a real OCI registry (Debian's docker-registry, started by the
//! tests): pushed by third-party clients (`oras`, or the distribution API as
//! ModelPack and Docker Model Runner lay artifacts out), pulled and verified
//! by modelgate in one pass. Every failure ends non-zero with a precise
//! message and nothing at the destination, and no temporary folder left.

use std::ffi::OsString;
use std::path::Path;

use crate::common::registry::*;
use crate::common::*;
use serde_json::{Value, json};

#[test]
fn a_model_pushed_by_oras_is_pulled_verified_and_put_in_place() {
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model");
    let measurement = out.path().join("m.json");
    let reference = reg.reference("models/tiny:v1");
    pull(
        &reg,
        &reference,
        &dest,
        &["--measurement", measurement.to_str().unwrap()],
    )
    .expect_code(0)
    .expect_stderr("layout=\"oras\"");
    same_files(&repo(TINY), &dest);
    let doc: Value = serde_json::from_slice(&std::fs::read(&measurement).unwrap()).unwrap();
    assert_eq!(doc["verdict"], "verified");
    assert_eq!(doc["source"]["reference"], reference.as_str());
    assert_eq!(doc["source"]["layout"], "oras");
    let digest = doc["source"]["digest"].as_str().unwrap().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(doc["model"]["path"], dest.to_str().unwrap());
    // The same model by digest, into an existing empty folder.
    let by_digest = format!("oci://{}/models/tiny@{digest}", reg.host);
    let empty = out.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    pull(&reg, &by_digest, &empty, &[]).expect_code(0);
    same_files(&repo(TINY), &empty);
    // verify oci:// checks it without keeping it.
    let tmp = tempfile::tempdir().unwrap();
    let mut args: Vec<OsString> = vec![
        "verify".into(),
        reference.clone().into(),
        "--signature".into(),
        repo("fixtures/tiny-model.sig").into(),
        "--key".into(),
        repo("fixtures/keys/test-signer.pub.pem").into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"));
    cmd.args(&args)
        .env("TMPDIR", tmp.path())
        .env("MODELGATE_LOG_FORMAT", "text");
    let run = cmd.output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "verify oci:// left files"
    );
}

#[test]
fn a_modelpack_artifact_with_raw_layers_is_pulled() {
    let reg = Registry::start(Mode::Plain);
    let layers: Vec<Value> = tiny_files()
        .iter()
        .map(|(name, path)| {
            let kind = if name.ends_with(".safetensors") {
                "weight"
            } else {
                "weight.config"
            };
            json!({
                "mediaType": format!("application/vnd.cncf.model.{kind}.v1.raw"),
                "file": path,
                "annotations": {"org.cncf.model.filepath": name},
            })
        })
        .collect();
    push_spec(
        &reg,
        "models/tiny-modelpack",
        "v1",
        &json!({
            "artifactType": "application/vnd.cncf.model.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "content": "{}"},
            "layers": layers,
        }),
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model");
    pull(&reg, &reg.reference("models/tiny-modelpack:v1"), &dest, &[])
        .expect_code(0)
        .expect_stderr("layout=\"modelpack\"");
    same_files(&repo(TINY), &dest);
}

#[test]
fn a_tag_re_pushed_with_a_changed_file_is_rejected_and_nothing_is_kept() {
    let reg = Registry::start(Mode::Plain);
    let model = tempfile::tempdir().unwrap();
    for (name, path) in tiny_files() {
        std::fs::copy(path, model.path().join(name)).unwrap();
    }
    std::fs::write(model.path().join("config.json"), b"{\"evil\": true}").unwrap();
    oras_push(&reg, model.path(), "models/tiny:v1");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model");
    // The layer's digest is the file's: the change shows in the manifest,
    // and nothing is downloaded.
    pull(&reg, &reg.reference("models/tiny:v1"), &dest, &[])
        .expect_code(1)
        .expect_stderr("config.json: the registry's manifest gives its blob digest sha256:")
        .expect_stderr("rejected from the manifest, before any download");
    nothing_left(&dest);
    assert!(
        !reg.log().contains("GET /v2/models/tiny/blobs/"),
        "a blob was downloaded"
    );
}

/// `pull REF DEST --signature SIG --key test-signer <registry flags>`.
fn pull_signed(reg: &Registry, reference: &str, dest: &Path, sig: &Path) -> Run {
    let mut args = pull_args(reference, dest);
    args[4] = sig.into();
    args.extend(reg.flags().into_iter().map(OsString::from));
    modelgate(args)
}

/// A signature by the test signer over a model of one file `name` with
/// `content`'s bytes.
fn signed_one_file(name: &str, content: &Path, dir: &Path) -> std::path::PathBuf {
    let model = dir.join(format!("signed-{name}"));
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(content, model.join(name)).unwrap();
    let sig = dir.join(format!("{name}.sig"));
    attest(&model, repo("fixtures/keys/test-signer.key.pem"), &sig);
    sig
}

#[test]
fn a_corrupted_blob_in_the_registry_is_rejected_and_nothing_is_kept() {
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let weights = std::fs::read(repo("fixtures/tiny-model/model.safetensors")).unwrap();
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&weights))
    );
    let mut corrupted = weights.clone();
    corrupted[100] ^= 1;
    std::fs::write(reg.blob_path(&digest), corrupted).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model");
    pull(&reg, &reg.reference("models/tiny:v1"), &dest, &[])
        .expect_code(1)
        .expect_stderr(&format!(
            "model.safetensors: layer {digest} arrived with digest sha256:"
        ))
        .expect_stderr("the registry served other bytes than the manifest names");
    nothing_left(&dest);
}

#[test]
fn a_manifest_that_does_not_match_its_digest_is_rejected() {
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let out = tempfile::tempdir().unwrap();
    let first = out.path().join("first");
    let measurement = out.path().join("m.json");
    pull(
        &reg,
        &reg.reference("models/tiny:v1"),
        &first,
        &["--measurement", measurement.to_str().unwrap()],
    )
    .expect_code(0);
    let doc: Value = serde_json::from_slice(&std::fs::read(&measurement).unwrap()).unwrap();
    let digest = doc["source"]["digest"].as_str().unwrap().to_string();
    // The registry's stored manifest is altered: served by digest, its bytes
    // no longer hash to it.
    let stored = reg.blob_path(&digest);
    let text = std::fs::read_to_string(&stored)
        .unwrap()
        .replacen("config.json", "config.jsoN", 1);
    std::fs::write(&stored, text).unwrap();
    let dest = out.path().join("second");
    pull(
        &reg,
        &format!("oci://{}/models/tiny@{digest}", reg.host),
        &dest,
        &[],
    )
    .expect_code(1)
    .expect_stderr(&format!("not the {digest} it was asked for"));
    nothing_left(&dest);
}

#[test]
fn hostile_layouts_are_refused_before_anything_is_written() {
    let reg = Registry::start(Mode::Plain);
    let weights = repo("fixtures/tiny-model/model.safetensors");
    let out = tempfile::tempdir().unwrap();
    for (tag, layers, message) in [
        (
            "escape",
            json!([{"mediaType": "application/vnd.oci.image.layer.v1.tar", "file": weights, "annotations": {"org.opencontainers.image.title": "../../escape"}}]),
            "unsafe path \"../../escape\"",
        ),
        (
            "absolute",
            json!([{"mediaType": "application/vnd.oci.image.layer.v1.tar", "file": weights, "annotations": {"org.opencontainers.image.title": "/etc/cron.d/x"}}]),
            "unsafe path \"/etc/cron.d/x\"",
        ),
        (
            "twice",
            json!([
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "file": weights, "annotations": {"org.opencontainers.image.title": "a"}},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "file": repo("fixtures/tiny-model/config.json"), "annotations": {"org.opencontainers.image.title": "a"}}
            ]),
            "two layers claim the file \"a\"",
        ),
        (
            "shorter",
            json!([{"mediaType": "application/vnd.oci.image.layer.v1.tar", "file": weights, "annotations": {"org.opencontainers.image.title": "w"}, "sizeDelta": -10}]),
            "is longer than the",
        ),
    ] {
        push_spec(
            &reg,
            "models/hostile",
            tag,
            &json!({"config": {"mediaType": "application/vnd.unknown.config.v1+json", "content": "{}"}, "layers": layers}),
        );
        let dest = out.path().join(tag);
        let reference = reg.reference(&format!("models/hostile:{tag}"));
        // A blob of the wrong size needs a signature that names it, else
        // the manifest alone rejects it before any download.
        let run = if tag == "shorter" {
            let sig = signed_one_file("w", &weights, out.path());
            pull_signed(&reg, &reference, &dest, &sig)
        } else {
            pull(&reg, &reference, &dest, &[])
        };
        assert_eq!(run.code, 1, "{tag}:\n{}", run.stderr);
        run.expect_stderr(message);
        nothing_left(&dest);
    }
}

#[test]
fn registries_as_users_have_them_tls_and_basic_auth() {
    // TLS with a CA made in the test: trusted only with --ca-file.
    let tls = Registry::start(Mode::Tls);
    oras_push(&tls, &repo(TINY), "models/tiny:v1");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("tls");
    pull(&tls, &tls.reference("models/tiny:v1"), &dest, &[]).expect_code(0);
    same_files(&repo(TINY), &dest);
    let untrusted = out.path().join("tls-untrusted");
    let mut args = pull_args(tls.reference("models/tiny:v1"), &untrusted);
    modelgate(args.clone())
        .expect_code(2)
        .expect_stderr("certificate");
    nothing_left(&untrusted);
    // Plain HTTP is never implied: without --insecure-registry a plain
    // registry is spoken to over TLS, and that fails.
    let plain = Registry::start(Mode::Plain);
    oras_push(&plain, &repo(TINY), "models/tiny:v1");
    args[1] = plain.reference("models/tiny:v1").into();
    args[2] = out.path().join("plain").into();
    modelgate(args)
        .expect_code(2)
        .expect_stderr("cannot authenticate to");
    nothing_left(&out.path().join("plain"));

    // htpasswd basic auth, credentials from a Docker config file.
    let auth = Registry::start(Mode::Htpasswd);
    oras_push(&auth, &repo(TINY), "models/tiny:v1");
    let dest = out.path().join("auth");
    pull(&auth, &auth.reference("models/tiny:v1"), &dest, &[])
        .expect_code(0)
        .expect_stderr("credential=user alice");
    // Wrong password, and none at all: refused, and the password never shows.
    for config in [Some(auth.docker_config("wrong-password")), None] {
        let dest = out.path().join("auth-refused");
        let mut args = pull_args(auth.reference("models/tiny:v1"), &dest);
        args.extend(["--insecure-registry".into(), auth.host.clone().into()]);
        if let Some(c) = &config {
            args.extend(["--registry-config".into(), c.into()]);
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"));
        cmd.args(&args)
            .env("MODELGATE_LOG_FORMAT", "text")
            .env("HOME", out.path())
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE");
        let run = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("401") || stderr.contains("uthenticat"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("wrong-password") && !stderr.contains(PASSWORD),
            "{stderr}"
        );
        nothing_left(&dest);
    }
}

#[test]
fn unreachable_registries_deadlines_and_the_allow_list_fail_closed() {
    let out = tempfile::tempdir().unwrap();
    let base = |reference: &str, dest: &Path, extra: &[&str]| {
        let mut args = pull_args(reference, dest);
        args.extend(extra.iter().map(OsString::from));
        modelgate(args)
    };
    // Nothing listens on the port.
    let port = crate::common::registry::free_port();
    let host = format!("127.0.0.1:{port}");
    let dest = out.path().join("unreachable");
    base(
        &format!("oci://{host}/m:v1"),
        &dest,
        &["--insecure-registry", &host],
    )
    .expect_code(2)
    .expect_stderr(&format!("cannot authenticate to oci://{host}/m:v1"));
    nothing_left(&dest);
    // A server that accepts and never answers: the deadline ends the pull.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled = listener.local_addr().unwrap().to_string();
    let dest = out.path().join("stalled");
    let start = std::time::Instant::now();
    base(
        &format!("oci://{stalled}/m:v1"),
        &dest,
        &["--insecure-registry", &stalled, "--timeout", "2"],
    )
    .expect_code(2)
    .expect_stderr("the pull did not finish within 2s (--timeout); nothing was kept");
    assert!(start.elapsed() < std::time::Duration::from_secs(8));
    drop(listener);
    nothing_left(&dest);
    // A registry off the allow-list is refused before any request.
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let before = reg
        .log()
        .lines()
        .filter(|l| l.contains("/v2/models/tiny"))
        .count();
    let dest = out.path().join("not-allowed");
    base(
        &reg.reference("models/tiny:v1"),
        &dest,
        &[
            "--insecure-registry",
            &reg.host,
            "--allowed-registry",
            "registry.example.com",
        ],
    )
    .expect_code(2)
    .expect_stderr(&format!(
        "registry {} is not allowed (allowed: registry.example.com)",
        reg.host
    ));
    let after = reg
        .log()
        .lines()
        .filter(|l| l.contains("/v2/models/tiny"))
        .count();
    assert_eq!(before, after, "the registry saw a request");
    nothing_left(&dest);
    // A reference that names no registry, and a destination in use.
    base("oci://models/tiny:v1", &out.path().join("x"), &[])
        .expect_code(2)
        .expect_stderr("it names no registry");
    let busy = out.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), b"mine").unwrap();
    base(
        &reg.reference("models/tiny:v1"),
        &busy,
        &["--insecure-registry", &reg.host],
    )
    .expect_code(2)
    .expect_stderr("exists and is not empty");
    assert_eq!(std::fs::read(busy.join("keep.txt")).unwrap(), b"mine");
}

#[test]
fn the_registry_going_away_mid_pull_leaves_nothing() {
    // The registry is killed once the blob has started to arrive, before it
    // has all arrived; the pull retries, resumes nothing, and gives up.
    let mut reg = Registry::start(Mode::Plain);
    let model = tempfile::tempdir().unwrap();
    let size: u64 = 192 << 20;
    let big = model.path().join("big.bin");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(size).unwrap();
    drop(file);
    oras_push(&reg, model.path(), "models/big:v1");
    let out = tempfile::tempdir().unwrap();
    let signatures = tempfile::tempdir().unwrap();
    let sig = signed_one_file("big.bin", &big, signatures.path());
    let dest = out.path().join("model");
    let mut args = pull_args(reg.reference("models/big:v1"), &dest);
    args[4] = sig.into();
    let child = Process::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .args(args)
            .args(["--insecure-registry", &reg.host])
            .env("MODELGATE_LOG_FORMAT", "text")
            .stderr(std::process::Stdio::piped()),
    );
    let partial = wait_for_staged_bytes(out.path(), "big.bin");
    reg.stop();
    let output = child.wait_with_output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        partial < size,
        "the blob had fully arrived before the registry was stopped"
    );
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("broke off after") || stderr.contains("cannot resume blob"),
        "{stderr}"
    );
    nothing_left(&dest);
}

#[test]
fn the_policy_selects_by_repository_requires_digests_and_limits_registries() {
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo("fixtures/keys/test-signer.pub.pem"),
        work.path().join("k.pub"),
    )
    .unwrap();
    let policy = |body: &str| {
        let path = work.path().join("policy.yaml");
        std::fs::write(
            &path,
            format!("apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nmetadata:\n  name: registry\nspec:\n{body}"),
        )
        .unwrap();
        path
    };
    let rule = |matcher: &str, extra: &str| {
        format!(
            "  models:\n    - name: from-registry\n      match:\n        {matcher}\n      authorities:\n        - name: k\n          key:\n            path: k.pub\n{extra}"
        )
    };
    let run = |policy: &Path, reference: &str, dest: &str| {
        let mut args: Vec<OsString> = vec![
            "pull".into(),
            reference.into(),
            work.path().join(dest).into(),
            "--signature".into(),
            repo("fixtures/tiny-model.sig").into(),
            "--policy".into(),
            policy.into(),
        ];
        args.extend(reg.flags().into_iter().map(OsString::from));
        modelgate(args)
    };
    let tag = reg.reference("models/tiny:v1");
    // match.repositories selects the rule for a registry model.
    let by_repo = policy(&rule(
        &format!("repositories: [\"{}/models/*\"]", reg.host),
        "",
    ));
    run(&by_repo, &tag, "a")
        .expect_code(0)
        .expect_stderr("rule=from-registry");
    let elsewhere = policy(&rule("repositories: [\"registry.example.com/*\"]", ""));
    run(&elsewhere, &tag, "b")
        .expect_code(1)
        .expect_stderr("no rule of policy registry matches model \"tiny\"");
    nothing_left(&work.path().join("b"));
    // requireDigest: a tag is refused before any request.
    let pinned = policy(&rule(
        &format!("repositories: [\"{}/models/*\"]", reg.host),
        "      requireDigest: true\n",
    ));
    let requests = || {
        reg.log()
            .lines()
            .filter(|l| l.contains("/v2/models/tiny"))
            .count()
    };
    let before = requests();
    run(&pinned, &tag, "c")
        .expect_code(1)
        .expect_stderr("the policy rule from-registry requires a digest reference");
    assert_eq!(before, requests(), "the registry saw a request");
    nothing_left(&work.path().join("c"));
    let measurement = work.path().join("m.json");
    modelgate([
        OsString::from("pull"),
        tag.clone().into(),
        work.path().join("d").into(),
        "--signature".into(),
        repo("fixtures/tiny-model.sig").into(),
        "--key".into(),
        repo("fixtures/keys/test-signer.pub.pem").into(),
        "--insecure-registry".into(),
        reg.host.clone().into(),
        "--measurement".into(),
        measurement.clone().into(),
    ])
    .expect_code(0);
    let doc: Value = serde_json::from_slice(&std::fs::read(&measurement).unwrap()).unwrap();
    let digest = doc["source"]["digest"].as_str().unwrap().to_string();
    run(
        &pinned,
        &format!("oci://{}/models/tiny@{digest}", reg.host),
        "e",
    )
    .expect_code(0);
    // spec.allowedRegistries: another registry is refused before any request.
    let limited = policy(&format!(
        "  allowedRegistries: [\"registry.example.com\"]\n{}",
        rule("names: [\"*\"]", "")
    ));
    let before = requests();
    run(&limited, &tag, "f")
        .expect_code(1)
        .expect_stderr("is not allowed (allowed: registry.example.com)")
        .expect_stderr("spec.allowedRegistries");
    assert_eq!(before, requests(), "the registry saw a request");
    nothing_left(&work.path().join("f"));
}

#[test]
fn an_image_index_resolves_to_the_platform() {
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    // An index at tag "multi" naming that manifest for linux/amd64 and
    // linux/arm64.
    run_ok(
        std::process::Command::new(venv().join("bin/python"))
            .args([
                "-c",
                r#"
import hashlib, json, requests, sys
base = f"http://{sys.argv[1]}/v2/models/tiny/manifests/"
mt = "application/vnd.oci.image.manifest.v1+json"
body = requests.get(base + "v1", headers={"Accept": mt}).content
entry = lambda arch: {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
                      "size": len(body), "platform": {"os": "linux", "architecture": arch}}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [entry("amd64"), entry("arm64")]}
r = requests.put(base + "multi", data=json.dumps(index),
                 headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
assert r.status_code == 201, r.text
"#,
            ])
            .arg(&reg.host),
    );
    let work = tempfile::tempdir().unwrap();
    let multi = reg.reference("models/tiny:multi");
    for platform in ["linux/amd64", "linux/arm64"] {
        let dest = work.path().join(platform.replace('/', "-"));
        pull(&reg, &multi, &dest, &["--platform", platform]).expect_code(0);
        same_files(&repo(TINY), &dest);
    }
    let dest = work.path().join("s390x");
    pull(&reg, &multi, &dest, &["--platform", "linux/s390x"])
        .expect_code(1)
        .expect_stderr(
            "the image index has no manifest for platform linux/s390x; pick one with --platform",
        );
    nothing_left(&dest);
}

#[test]
fn https_trusts_the_bundled_and_system_roots_and_the_ca_file_only() {
    let reg = Registry::start(Mode::Tls);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let out = tempfile::tempdir().unwrap();
    let reference = reg.reference("models/tiny:v1");
    let pull_with = |dest: &Path, env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"));
        cmd.args(pull_args(reference.clone(), dest))
            .env("MODELGATE_LOG_FORMAT", "text")
            .env_remove("SSL_CERT_FILE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let output = cmd.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // The test CA is in no bundle: refused, and nothing kept.
    let dest = out.path().join("untrusted");
    let (code, stderr) = pull_with(&dest, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    nothing_left(&dest);
    // A system bundle named by SSL_CERT_FILE (as a mounted CA bundle is).
    let dest = out.path().join("system");
    let ca = reg.ca();
    let (code, stderr) = pull_with(&dest, &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    assert_eq!(code, Some(0), "{stderr}");
    same_files(&repo(TINY), &dest);
    // No CA bundle on the machine at all (a `scratch` image): the bundled
    // roots still apply (the test CA is not among them, so refused, and no
    // panic), and a --ca-file is all the trust a private registry needs.
    let dest = out.path().join("no-bundle");
    let no_bundle = [
        ("SSL_CERT_FILE", "/nonexistent"),
        ("SSL_CERT_DIR", "/nonexistent"),
    ];
    let (code, stderr) = pull_with(&dest, &no_bundle);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("UnknownIssuer") && !stderr.contains("panicked"),
        "{stderr}"
    );
    nothing_left(&dest);
    let dest = out.path().join("no-bundle-ca-file");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"));
    let mut args = pull_args(reference.clone(), &dest);
    args.extend(["--ca-file".into(), ca.clone().into()]);
    let output = cmd.args(args).envs(no_bundle).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    same_files(&repo(TINY), &dest);
    // A file that holds no certificate is an error, not an empty trust list.
    let dest = out.path().join("bad-ca");
    let not_pem = out.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let mut args = pull_args(reference.clone(), &dest);
    args.extend(["--ca-file".into(), not_pem.clone().into()]);
    modelgate(args).expect_code(2).expect_stderr(&format!(
        "--ca-file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
        not_pem.display()
    ));
    nothing_left(&dest);
}
