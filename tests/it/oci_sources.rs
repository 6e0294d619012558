//! Models in a real registry made by other tools, and signatures checked
//! before the download: a KServe modelcar built by `olot` and copied in by
//! `skopeo` (`--subpath /models`), a ModelPack artifact pushed by
//! `modelpack-client`, signatures over the OCI manifest as
//! model-transparency-go writes them, a signed file whose layer disagrees
//! rejected before a byte is downloaded, and the OCI 1.1 referrers API
//! (through a small proxy: no registry installable here has the API).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::registry::*;
use crate::common::*;
use serde_json::Value;

fn python() -> PathBuf {
    venv().join("bin/python")
}

fn key() -> PathBuf {
    repo("fixtures/keys/test-signer.pub.pem")
}

fn measurement(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `modelgate ARGS... <registry flags>`.
fn with_flags(reg: &Registry, args: &[&OsString]) -> Run {
    let mut all: Vec<OsString> = args.iter().map(|a| (*a).clone()).collect();
    all.extend(reg.flags().into_iter().map(OsString::from));
    modelgate(all)
}

/// The registry's manifest for REPO:TAG, as bytes.
fn fetch_manifest(reg: &Registry, repo_tag: &str) -> Vec<u8> {
    let (repo, tag) = repo_tag.split_once(':').unwrap();
    let out = run_ok(Command::new(python()).arg("-c").arg(format!(
        "import requests,sys; r=requests.get('http://{}/v2/{repo}/manifests/{tag}', headers={{'Accept':'application/vnd.oci.image.manifest.v1+json'}}); r.raise_for_status(); sys.stdout.write(r.content.hex())",
        reg.host
    )));
    hex::decode(out.trim()).unwrap()
}

/// How many blob downloads the registry has served for `repo`.
fn blob_gets(reg: &Registry, repo: &str) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains(&format!("\"GET /v2/{repo}/blobs/")))
        .count()
}

#[test]
fn a_modelcar_built_by_olot_and_copied_by_skopeo_is_pulled_from_its_subpath() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    run_ok(
        Command::new(python())
            .arg(repo("tests/support/make_modelcar.py"))
            .arg(&layout)
            .arg(repo(TINY)),
    );
    run_ok(Command::new("skopeo").args([
        "copy".into(),
        "--dest-tls-verify=false".into(),
        format!("oci:{}:latest", layout.display()),
        format!("docker://{}/models/car:v1", reg.host),
    ]));
    let reference = reg.reference("models/car:v1");
    // A container image is not a model artifact: the folder must be named.
    let dest = work.path().join("model");
    pull(&reg, &reference, &dest, &[])
        .expect_code(1)
        .expect_stderr("is a container image (application/vnd.oci.image.config.v1+json), not a model artifact: name the folder that holds the model with --subpath");
    nothing_left(&dest);
    // With it, only /models is unpacked (the base layer's /etc and the
    // symbolic link to /bin/busybox are skipped unread), and the signature
    // the reference made over the folder verifies.
    let m = work.path().join("m.json");
    pull(
        &reg,
        &reference,
        &dest,
        &["--subpath", "/models", "--measurement", m.to_str().unwrap()],
    )
    .expect_code(0)
    .expect_stderr("layout=\"image\"");
    same_files(&repo(TINY), &dest);
    assert_eq!(measurement(&m)["source"]["layout"], "image");
    // A folder that is not the model is a drift, named file by file.
    let other = work.path().join("other");
    pull(&reg, &reference, &other, &["--subpath", "/etc"])
        .expect_code(1)
        .expect_stderr("os-release: extra: on disk but not signed");
    nothing_left(&other);
    // Signing without downloading needs raw layers.
    let sig = work.path().join("car.sig");
    with_flags(
        &reg,
        &[
            &"attest".into(),
            &reference.clone().into(),
            &"--key".into(),
            &repo("fixtures/keys/test-signer.key.pem").into(),
            &"--signature".into(),
            &sig.clone().into(),
            &"--subpath".into(),
            &"/models".into(),
        ],
    )
    .expect_code(2)
    .expect_stderr("--subpath names a folder inside a container image's tar layers");
    assert!(!sig.exists());
}

#[test]
fn a_modelpack_artifact_pushed_by_modelpack_client_is_pulled_and_verified() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.json");
    std::fs::write(&config, r#"{"descriptor":{"name":"tiny"},"config":{}}"#).unwrap();
    let mut cmd = Command::new(venv().join("bin/modelpack"));
    cmd.current_dir(repo(TINY))
        .args(["--insecure", "push"])
        .arg(format!("{}/models/mp:v1", reg.host))
        .arg("--config")
        .arg(&config);
    for (name, _) in tiny_files() {
        let layer = if name.ends_with(".safetensors") {
            name.clone()
        } else {
            format!("{name}:application/vnd.cncf.model.weight.config.v1.raw")
        };
        cmd.args(["--layer", &layer]);
    }
    run_ok(&mut cmd);
    let dest = work.path().join("model");
    let m = work.path().join("m.json");
    pull(
        &reg,
        &reg.reference("models/mp:v1"),
        &dest,
        &["--measurement", m.to_str().unwrap()],
    )
    .expect_code(0)
    .expect_stderr("layout=\"modelpack\"");
    same_files(&repo(TINY), &dest);
    assert_eq!(measurement(&m)["verdict"], "verified");
}

/// Signs the manifest of REPO:TAG as model-transparency-go does.
fn go_sign(reg: &Registry, repo_tag: &str, dir: &Path, sig: &Path) {
    let manifest = dir.join("oci-manifest.json");
    std::fs::write(&manifest, fetch_manifest(reg, repo_tag)).unwrap();
    go_sign_file(&manifest, sig);
}

/// Signs an OCI manifest file as model-transparency-go does.
fn go_sign_file(manifest: &Path, sig: &Path) {
    run_ok(
        Command::new(python())
            .arg(repo("tests/support/sign_oci_manifest.py"))
            .arg("--manifest")
            .arg(manifest)
            .arg("--key")
            .arg(repo("fixtures/keys/test-signer.key.pem"))
            .arg("--signature")
            .arg(sig),
    );
}

#[test]
fn signatures_over_the_oci_manifest_verify_the_registry_model_and_the_pulled_folder() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    // The tiny model has a config.json file: its layer replaces the config
    // blob in such a signature, which then lists exactly the files.
    oras_push(&reg, &repo(TINY), "models/go:v1");
    let sig = work.path().join("go.sig");
    go_sign(&reg, "models/go:v1", work.path(), &sig);
    let reference = reg.reference("models/go:v1");
    let verify_oci = |reference: &str, sig: &Path| {
        with_flags(
            &reg,
            &[
                &"verify".into(),
                &reference.into(),
                &"--signature".into(),
                &sig.into(),
                &"--key".into(),
                &key().into(),
            ],
        )
    };
    verify_oci(&reference, &sig).expect_code(0);
    let dest = work.path().join("model");
    let mut args = vec!["pull".into(), reference.clone().into(), dest.clone().into()];
    args.extend([
        "--signature".into(),
        sig.clone().into(),
        "--key".into(),
        key().into(),
    ]);
    let args: Vec<&OsString> = args.iter().collect();
    with_flags(&reg, &args).expect_code(0);
    verify(&dest, &sig, key()).expect_code(0);
    reference_cli([
        "verify".as_ref(),
        "key".as_ref(),
        "--signature".as_ref(),
        sig.as_os_str(),
        "--public_key".as_ref(),
        key().as_os_str(),
        dest.as_os_str(),
    ])
    .expect_code(0);

    // A model without a config.json file: the signature lists the config
    // blob as config.json, and it is compared with the manifest's config.
    let bare = work.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::copy(
        repo(TINY).join("model.safetensors"),
        bare.join("model.safetensors"),
    )
    .unwrap();
    oras_push(&reg, &bare, "models/bare:v1");
    let bare_sig = work.path().join("bare.sig");
    go_sign(&reg, "models/bare:v1", work.path(), &bare_sig);
    verify_oci(&reg.reference("models/bare:v1"), &bare_sig).expect_code(0);
    // The same signature against another artifact whose config differs.
    oras_push(&reg, &bare, "models/bare2:v1");
    let mut manifest: Value =
        serde_json::from_slice(&fetch_manifest(&reg, "models/bare2:v1")).unwrap();
    manifest["config"]["digest"] = Value::from(format!("sha256:{}", "0".repeat(64)));
    let forged_manifest = work.path().join("forged.json");
    std::fs::write(&forged_manifest, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let forged_sig = work.path().join("forged.sig");
    go_sign_file(&forged_manifest, &forged_sig);
    verify_oci(&reg.reference("models/bare2:v1"), &forged_sig)
        .expect_code(1)
        .expect_stderr(&format!(
            "config.json: the registry's manifest gives its blob digest sha256:{}",
            fetch_config_digest(&reg, "models/bare2:v1")
        ));
}

fn fetch_config_digest(reg: &Registry, repo_tag: &str) -> String {
    let manifest: Value = serde_json::from_slice(&fetch_manifest(reg, repo_tag)).unwrap();
    manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

#[test]
fn a_signed_file_whose_layer_disagrees_is_rejected_before_any_download() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    // The signature is over a model in which one file differs.
    let signed = work.path().join("signed");
    std::fs::create_dir(&signed).unwrap();
    for (name, path) in tiny_files() {
        std::fs::copy(path, signed.join(name)).unwrap();
    }
    std::fs::write(signed.join("config.json"), b"{\"signed\": \"other\"}").unwrap();
    let sig = work.path().join("other.sig");
    attest(&signed, repo("fixtures/keys/test-signer.key.pem"), &sig);
    let dest = work.path().join("model");
    let m = work.path().join("m.json");
    let mut args = vec![
        OsString::from("pull"),
        reg.reference("models/tiny:v1").into(),
        dest.clone().into(),
        "--signature".into(),
        sig.clone().into(),
        "--key".into(),
        key().into(),
        "--measurement".into(),
        m.clone().into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    let run = modelgate(args);
    run.expect_code(1)
        .expect_stderr("config.json: the registry's manifest gives its blob digest sha256:");
    run.expect_stderr(
        "rejected from the manifest, before any download: the artifact is not the signed model",
    );
    nothing_left(&dest);
    assert_eq!(blob_gets(&reg, "models/tiny"), 0, "a blob was downloaded");
    let doc = measurement(&m);
    assert_eq!(doc["verdict"], "rejected");
    assert_eq!(doc["reasons"][0]["kind"], "layer-differs");
    assert_eq!(doc["source"]["layout"], "oras");

    // A signature by a key the policy does not trust: no download either.
    let stranger = keypair("P-256");
    let theirs = work.path().join("theirs.sig");
    attest(repo(TINY), &stranger.private, &theirs);
    let mut args = vec![
        OsString::from("pull"),
        reg.reference("models/tiny:v1").into(),
        dest.clone().into(),
        "--signature".into(),
        theirs.into(),
        "--key".into(),
        key().into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    modelgate(args)
        .expect_code(1)
        .expect_stderr("signature rejected");
    nothing_left(&dest);
    assert_eq!(blob_gets(&reg, "models/tiny"), 0, "a blob was downloaded");
}

#[test]
fn the_referrers_api_is_used_when_the_registry_has_it() {
    let reg = Registry::start(Mode::Plain);
    let proxy = Proxy::start("referrers_proxy.py", &reg, &[], &[]);
    let work = tempfile::tempdir().unwrap();
    let keys = keypair("P-256");
    let reference = format!("oci://{}/models/tiny:v1", proxy.host);
    let flags = ["--insecure-registry", proxy.host.as_str()];
    let mut args: Vec<OsString> = vec![
        "push".into(),
        repo(TINY).into(),
        reference.clone().into(),
        "--key".into(),
        keys.private.clone().into(),
    ];
    args.extend(flags.iter().map(OsString::from));
    let pushed = modelgate(args);
    pushed.expect_code(0).expect_stderr("referrers_api=true");
    // No referrers tag was written: only the API can find the signature.
    let tags = run_ok(Command::new(python()).arg("-c").arg(format!(
        "import requests; print(requests.get('http://{}/v2/models/tiny/tags/list').json()['tags'])",
        reg.host
    )));
    assert!(!tags.contains("sha256-"), "tags: {tags}");
    let dest = work.path().join("model");
    let m = work.path().join("m.json");
    let mut args: Vec<OsString> = vec![
        "pull".into(),
        reference.into(),
        dest.clone().into(),
        "--key".into(),
        keys.public.clone().into(),
        "--measurement".into(),
        m.clone().into(),
    ];
    args.extend(flags.iter().map(OsString::from));
    modelgate(args).expect_code(0);
    same_files(&repo(TINY), &dest);
    let doc = measurement(&m);
    assert_eq!(doc["source"]["signaturesFound"][0]["via"], "referrers");
    let log = std::fs::read_to_string(&proxy.log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with("GET /v2/models/tiny/referrers/sha256:") && l.ends_with(" 200")),
        "the referrers API was not asked:\n{log}"
    );
    // Without the API (straight to the registry) the same push writes the
    // tag schema instead.
    let mut args: Vec<OsString> = vec![
        "push".into(),
        repo(TINY).into(),
        reg.reference("models/plain:v1").into(),
        "--key".into(),
        keys.private.clone().into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    modelgate(args)
        .expect_code(0)
        .expect_stderr("referrers_api=false");
}

#[test]
fn an_image_that_repeats_a_layer_is_pulled_from_its_subpath() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    // Two identical empty layers (images repeat their empty layer) and one
    // holding /models/model.safetensors.
    let empty = work.path().join("empty.tar");
    let model = work.path().join("model.tar");
    run_ok(Command::new(python()).arg("-c").arg(format!(
        "import tarfile\ntarfile.open({empty:?}, 'w').close()\nt = tarfile.open({model:?}, 'w')\nt.add({weights:?}, 'models/model.safetensors')\nt.close()",
        empty = empty.display().to_string(),
        model = model.display().to_string(),
        weights = repo(TINY).join("model.safetensors").display().to_string(),
    )));
    let layer = |file: &Path| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "file": file});
    push_spec(
        &reg,
        "models/repeated",
        "v1",
        &serde_json::json!({
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "content": "{}"},
            "layers": [layer(&empty), layer(&model), layer(&empty)],
        }),
    );
    let signed = work.path().join("signed");
    fs::create_dir(&signed).unwrap();
    fs::copy(
        repo(TINY).join("model.safetensors"),
        signed.join("model.safetensors"),
    )
    .unwrap();
    let sig = work.path().join("one.sig");
    attest(&signed, repo("fixtures/keys/test-signer.key.pem"), &sig);
    let dest = work.path().join("model");
    let mut args = vec![
        OsString::from("pull"),
        reg.reference("models/repeated:v1").into(),
        dest.clone().into(),
        "--signature".into(),
        sig.into(),
        "--key".into(),
        key().into(),
        "--subpath".into(),
        "/models".into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    modelgate(args).expect_code(0);
    let placed: Vec<_> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(placed, ["model.safetensors"]);
    assert_eq!(
        fs::read(dest.join("model.safetensors")).unwrap(),
        fs::read(signed.join("model.safetensors")).unwrap()
    );
}

#[test]
fn no_more_than_16_signatures_are_taken_from_the_registry() {
    // A registry (or whoever can push to it) lists 17 signatures: the pull
    // fetches 16 at most (oci::discover::MAX_CANDIDATES), so a signer
    // listed after them is never reached, and the bound holds.
    let reg = Registry::start(Mode::Plain);
    let proxy = Proxy::start("referrers_proxy.py", &reg, &[], &[]);
    let work = tempfile::tempdir().unwrap();
    let reference = format!("oci://{}/models/tiny:v1", proxy.host);
    let flags = ["--insecure-registry", proxy.host.as_str()];
    let signers: Vec<Keys> = (0..17).map(|_| keypair("P-256")).collect();
    for keys in &signers {
        let mut args: Vec<OsString> = vec![
            "push".into(),
            repo(TINY).into(),
            reference.clone().into(),
            "--key".into(),
            keys.private.clone().into(),
        ];
        args.extend(flags.iter().map(OsString::from));
        modelgate(args).expect_code(0);
    }
    let pull = |keys: &Keys, dest: &str| {
        let mut args: Vec<OsString> = vec![
            "pull".into(),
            reference.clone().into(),
            work.path().join(dest).into(),
            "--key".into(),
            keys.public.clone().into(),
        ];
        args.extend(flags.iter().map(OsString::from));
        modelgate(args)
    };
    let before = std::fs::read_to_string(&proxy.log).unwrap().lines().count();
    pull(&signers[0], "first").expect_code(0);
    let log = std::fs::read_to_string(&proxy.log).unwrap();
    let signature_manifests = log
        .lines()
        .skip(before)
        .filter(|l| l.starts_with("GET /v2/models/tiny/manifests/sha256:"))
        .count();
    assert_eq!(
        signature_manifests, 16,
        "signature manifests fetched:\n{log}"
    );
    let last = pull(&signers[16], "last");
    last.expect_code(1).expect_stderr("signature rejected");
    assert_eq!(
        last.stderr
            .matches("signature found in the registry")
            .count(),
        16,
        "{}",
        last.stderr
    );
    nothing_left(&work.path().join("last"));
}
