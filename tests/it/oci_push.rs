//! `modelgate push` for CI and signature discovery on pull: a model pushed
//! as a ModelPack artifact with its signature attached as a referrer is
//! pulled back by modelgate without `--signature`, and by `oras`, whose files
//! the reference `model_signing` verifies. Candidates that do not verify are
//! reported, and no signature at all is a rejection.

use std::ffi::OsString;
use std::path::Path;

use crate::common::registry::*;
use crate::common::*;
use serde_json::Value;

/// `modelgate push MODEL REF --key KEY --insecure-registry HOST extra...`
fn push(reg: &Registry, model: &Path, reference: &str, key: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<OsString> = vec![
        "push".into(),
        model.into(),
        reference.into(),
        "--key".into(),
        key.into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    args.extend(extra.iter().map(OsString::from));
    modelgate(args)
}

/// `modelgate pull REF DEST --key KEY` with no --signature: discovery.
fn pull_discovering(
    reg: &Registry,
    reference: &str,
    dest: &Path,
    key: &Path,
    extra: &[&str],
) -> Run {
    let mut args: Vec<OsString> = vec![
        "pull".into(),
        reference.into(),
        dest.into(),
        "--key".into(),
        key.into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    args.extend(extra.iter().map(OsString::from));
    modelgate(args)
}

#[test]
fn a_pushed_model_is_found_with_its_signature_and_read_by_oras_and_the_reference() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let keys = keypair("P-256");
    let reference = reg.reference("models/tiny:v1");
    let sig = work.path().join("pushed.sig");
    let run = push(
        &reg,
        &repo(TINY),
        &reference,
        &keys.private,
        &["--signature", sig.to_str().unwrap()],
    );
    run.expect_code(0)
        .expect_stderr("blobs_sent=9 blobs_skipped=0");
    let digest = run.stdout.trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    // modelgate finds the signature in the registry.
    let dest = work.path().join("model");
    let measurement = work.path().join("m.json");
    pull_discovering(
        &reg,
        &reference,
        &dest,
        &keys.public,
        &["--measurement", measurement.to_str().unwrap()],
    )
    .expect_code(0)
    .expect_stderr("signature found in the registry")
    .expect_stderr("layout=\"modelpack\"");
    same_files(&repo(TINY), &dest);
    let doc: Value = serde_json::from_slice(&std::fs::read(&measurement).unwrap()).unwrap();
    assert_eq!(doc["source"]["digest"], digest.as_str());
    let found = &doc["source"]["signaturesFound"][0];
    assert_eq!(found["via"], "referrers", "{doc}");
    assert!(
        found["reference"]
            .as_str()
            .unwrap()
            .starts_with(&format!("oci://{}/models/tiny@sha256:", reg.host))
    );
    nothing_left(&work.path().join("none"));
    // oras pulls the files by name; the reference verifies them with the
    // bundle push wrote.
    let by_oras = work.path().join("oras");
    std::fs::create_dir(&by_oras).unwrap();
    run_ok(
        std::process::Command::new(venv().join("bin/python"))
            .args([
                "-c",
                "import oras.client,sys; oras.client.OrasClient(hostname=sys.argv[1], insecure=True).pull(target=sys.argv[2], outdir=sys.argv[3])",
            ])
            .arg(&reg.host)
            .arg(format!("{}/models/tiny:v1", reg.host))
            .arg(&by_oras),
    );
    same_files(&repo(TINY), &by_oras);
    reference_cli([
        OsString::from("verify"),
        "key".into(),
        "--signature".into(),
        sig.clone().into(),
        "--public_key".into(),
        keys.public.clone().into(),
        by_oras.clone().into(),
    ])
    .expect_code(0);
    // A second push sends no blob the registry already has.
    push(&reg, &repo(TINY), &reference, &keys.private, &[])
        .expect_code(0)
        .expect_stderr("blobs_skipped=");
}

#[test]
fn a_referrer_by_an_untrusted_key_beside_a_good_one_is_reported_not_counted() {
    let reg = Registry::start(Mode::Plain);
    let work = tempfile::tempdir().unwrap();
    let (good, evil, other) = (keypair("P-256"), keypair("P-256"), keypair("P-256"));
    let reference = reg.reference("models/tiny:v1");
    push(&reg, &repo(TINY), &reference, &good.private, &[]).expect_code(0);
    push(&reg, &repo(TINY), &reference, &evil.private, &[]).expect_code(0);
    let dest = work.path().join("model");
    pull_discovering(&reg, &reference, &dest, &good.public, &[])
        .expect_code(0)
        .expect_stderr("signature not counted");
    same_files(&repo(TINY), &dest);
    // Trusting neither: every candidate fails, and that is a rejection.
    let dest = work.path().join("untrusted");
    let run = pull_discovering(&reg, &reference, &dest, &other.public, &[]);
    run.expect_code(1);
    // Each refusal names the referrer it is about, by its digest.
    let named: std::collections::BTreeSet<&str> = run
        .stderr
        .split(&format!("oci://{}/models/tiny@sha256:", reg.host))
        .skip(1)
        .filter(|rest| {
            rest.get(64..).is_some_and(|r| {
                r.starts_with(" (referrer): it was made by the key with fingerprint")
            })
        })
        .map(|rest| &rest[..64])
        .collect();
    assert_eq!(named.len(), 2, "{}", run.stderr);
    nothing_left(&dest);
}

#[test]
fn a_model_without_a_signature_in_the_registry_is_rejected() {
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/unsigned:v1");
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("model");
    pull_discovering(
        &reg,
        &reg.reference("models/unsigned:v1"),
        &dest,
        &repo("fixtures/keys/test-signer.pub.pem"),
        &[],
    )
    .expect_code(1)
    .expect_stderr("no signature in the registry: no referrer with artifactType application/vnd.dev.sigstore.bundle.v0.3+json");
    nothing_left(&dest);
    // A model on disk still needs --signature.
    modelgate(["verify", repo(TINY).to_str().unwrap(), "--key", "k.pub"])
        .expect_code(2)
        .expect_stderr("--signature is required for a model on disk");
}

#[test]
fn a_model_in_the_registry_is_signed_without_downloading_it() {
    let reg = Registry::start(Mode::Plain);
    oras_push(&reg, &repo(TINY), "models/tiny:v1");
    let work = tempfile::tempdir().unwrap();
    let keys = keypair("P-384");
    let reference = reg.reference("models/tiny:v1");
    let sig = work.path().join("remote.sig");
    let mut args: Vec<OsString> = vec![
        "attest".into(),
        reference.clone().into(),
        "--key".into(),
        keys.private.clone().into(),
        "--signature".into(),
        sig.clone().into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    let before = reg.log().lines().filter(|l| l.contains("/blobs/")).count();
    modelgate(args)
        .expect_code(0)
        .expect_stderr("signing from the registry's manifest, without downloading");
    let after = reg.log().lines().filter(|l| l.contains("/blobs/")).count();
    assert_eq!(before, after, "attest oci:// fetched a blob");
    // The same root digest as the folder, from the manifest alone.
    let mut digest_args: Vec<OsString> = vec!["digest".into(), reference.clone().into()];
    digest_args.extend(reg.flags().into_iter().map(OsString::from));
    let remote = modelgate(digest_args);
    remote.expect_code(0);
    let local = modelgate(["digest", repo(TINY).to_str().unwrap()]);
    assert_eq!(remote.stdout, local.stdout);
    // The signature verifies the pulled folder, with modelgate and the reference.
    let dest = work.path().join("model");
    let mut pull_args: Vec<OsString> = vec![
        "pull".into(),
        reference.clone().into(),
        dest.clone().into(),
        "--signature".into(),
        sig.clone().into(),
        "--key".into(),
        keys.public.clone().into(),
    ];
    pull_args.extend(reg.flags().into_iter().map(OsString::from));
    modelgate(pull_args).expect_code(0);
    reference_cli([
        OsString::from("verify"),
        "key".into(),
        "--signature".into(),
        sig.into(),
        "--public_key".into(),
        keys.public.clone().into(),
        dest.into(),
    ])
    .expect_code(0);
    // An artifact with a tar layer cannot be signed this way.
    let blob = work.path().join("folder.tar.gz");
    std::fs::write(&blob, b"not really a tar").unwrap();
    push_spec(
        &reg,
        "models/tarred",
        "v1",
        &serde_json::json!({
            "config": {"mediaType": "application/vnd.kitops.modelkit.config.v1+json", "content": "{}"},
            "layers": [{"mediaType": "application/vnd.kitops.modelkit.model.v1.tar+gzip", "file": blob}],
        }),
    );
    let mut args: Vec<OsString> = vec![
        "attest".into(),
        reg.reference("models/tarred:v1").into(),
        "--key".into(),
        keys.private.clone().into(),
        "--signature".into(),
        work.path().join("never.sig").into(),
    ];
    args.extend(reg.flags().into_iter().map(OsString::from));
    modelgate(args)
        .expect_code(2)
        .expect_stderr("is a tar archive, so the manifest does not give its files' digests; pull the model and attest the folder");
    assert!(!work.path().join("never.sig").exists());
}
