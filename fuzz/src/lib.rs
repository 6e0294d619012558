//! The fuzz targets' bodies: one function per parser of untrusted bytes,
//! each feeding the bytes to modelgate's own entry point and checking the
//! invariants a user relies on (no path escapes its root, what parses
//! re-serialises to itself). A panic, a hang or an allocation over
//! libFuzzer's `-rss_limit_mb` is a finding.
//!
//! `fuzz_targets/<name>.rs` calls `<name>` here; `scripts/fuzz.sh` builds
//! and runs them, seeded by `scripts/fuzz.sh seeds` from `fixtures/`.

use std::path::{Component, Path};
use std::sync::OnceLock;

use modelgate::oci::layout::{self, Compression, Unpack};
use modelgate::oci::untar::{self, Target};
use modelgate::oms::bundle::Bundle;
use modelgate::oms::manifest::Manifest;
use modelgate::trust::{Certificate, PublicKey};

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A relative path with no `..`, no root and no empty component.
fn stays_inside(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The OMS bundle and its DSSE envelope, as modelgate reads them, and the
/// same bytes through the Sigstore bundle parser used for transparency
/// evidence.
pub fn bundle(data: &[u8]) {
    if let Ok(bundle) = Bundle::from_json(data) {
        let _ = bundle.signed_payload();
        let _ = bundle.certificate_chain();
        let _ = bundle.leaf_certificate();
    }
    if let Some(text) = text(data) {
        let _ = sigstore_types::Bundle::from_json(text);
    }
}

/// The in-toto statement with the OMS predicate (and the pre-1.0 one): what
/// parses must serialise to a statement that parses to the same statement.
pub fn statement(data: &[u8]) {
    if let Ok(manifest) = Manifest::from_statement(data) {
        let again = manifest.to_statement();
        let reparsed = Manifest::from_statement(&again)
            .unwrap_or_else(|e| panic!("a statement modelgate wrote does not parse: {e}"));
        assert_eq!(reparsed.root_digest, manifest.root_digest);
        assert_eq!(
            reparsed.to_statement(),
            again,
            "serialisation is not stable"
        );
    }
    let _ = modelgate::oms::legacy::manifest_from_legacy_statement(data);
}

/// Public keys in PEM and DER (SubjectPublicKeyInfo): what parses
/// round-trips through PEM to the same key.
pub fn keys(data: &[u8]) {
    let round_trips = |key: &PublicKey| {
        let again = PublicKey::from_pem(&key.to_pem()).expect("a key modelgate wrote parses");
        assert_eq!(again.fingerprint(), key.fingerprint());
    };
    if let Ok(key) = PublicKey::from_spki_der(data) {
        round_trips(&key);
        let _ = key.verify(b"message", data);
    }
    if let Some(pem) = text(data) {
        if let Ok(key) = PublicKey::from_pem(pem) {
            round_trips(&key);
        }
        let _ = modelgate::trust::PrivateKey::from_pem(pem);
    }
}

/// X.509 certificates, DER and PEM bundles, and everything modelgate reads
/// from one.
pub fn certificates(data: &[u8]) {
    let look = |cert: &Certificate| {
        let _ = (cert.subject(), cert.issuer(), cert.serial());
        let _ = (
            cert.fingerprint(),
            cert.subject_alt_names(),
            cert.validity(),
        );
        let _ = cert.signing_key();
    };
    if let Ok(cert) = Certificate::from_der(data) {
        look(&cert);
    }
    if let Ok(certs) = Certificate::from_pem_bundle(data) {
        certs.iter().for_each(look);
    }
}

/// A Sigstore trusted root (`trusted_root.json`).
pub fn trusted_root(data: &[u8]) {
    if let Some(json) = text(data) {
        let _ = modelgate::trust::sigstore::trusted_root(Some(json));
    }
}

/// An empty folder that policy paths are relative to.
fn empty_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"))
        .path()
}

/// A `ModelPolicy` document, YAML or JSON; key paths in it are relative to
/// an empty folder (an absolute one is read with the usual size bound).
pub fn policy(data: &[u8]) {
    if let Ok(policy) = modelgate::policy::Policy::parse(data, empty_dir()) {
        let _ = policy.explain();
        let _ = policy.select("model", Some("registry.example/models/model"));
    }
}

/// OCI image manifests (every layout modelgate reads) and image indexes:
/// no layer may name a path outside the model.
pub fn oci_manifest(data: &[u8]) {
    for subpath in [None, Some("/models")] {
        let Ok(artifact) = layout::read_manifest(data, subpath) else {
            continue;
        };
        for layer in &artifact.layers {
            match &layer.unpack {
                Unpack::Raw(path) => assert!(
                    stays_inside(path),
                    "raw layer {} names {path:?}",
                    layer.digest
                ),
                Unpack::Tar { under, .. } => assert!(
                    under.is_empty() || stays_inside(under),
                    "tar layer {} unpacks under {under:?}",
                    layer.digest
                ),
            }
        }
    }
    let _ = modelgate::oci::registry::media_type(data);
    let _ = modelgate::oci::registry::pick_platform(data, "linux/amd64");
}

/// A tar layer, plain or compressed (the first byte picks), unpacked into
/// a temporary folder: whatever happens, nothing may be created beside
/// the model folder.
pub fn tar_layer(data: &[u8]) {
    let Some((&pick, tar)) = data.split_first() else {
        return;
    };
    let compression = match pick % 3 {
        0 => Compression::None,
        1 => Compression::Gzip,
        _ => Compression::Zstd,
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let blob = dir.path().join("blob");
    std::fs::write(&blob, tar).expect("the blob is written");
    let root = dir.path().join("model");
    std::fs::create_dir(&root).expect("the model folder is made");
    let target = Target {
        root: root.clone(),
        under: String::new(),
        within: None,
        select: (pick & 4 != 0).then(|| "models".to_string()),
        stop: None,
    };
    let _ = untar::unpack(&blob, tar.len() as u64, compression, &target, "sha256:fuzz");
    let mut beside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the folder is listed")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["blob", "model"],
        "the layer wrote beside the model"
    );
}

/// Registry auth: a `WWW-Authenticate` challenge, and a Docker config file
/// (`config.json`, `.dockerconfigjson`) looked up for a few registries.
pub fn auth(data: &[u8]) {
    if let Some(challenge) = text(data) {
        let _ = modelgate::oci::registry::bearer_realm(challenge);
    }
    if let Ok(creds) = modelgate::oci::credentials::Credentials::parse(data) {
        for registry in ["registry.example", "docker.io", "127.0.0.1:5000", ""] {
            if let Ok(credential) = creds.for_registry(registry) {
                let _ = credential.describe();
            }
        }
    }
}

/// The hash-chained measurement log: checking it is deterministic.
pub fn measurement_log(data: &[u8]) {
    if let Some(log) = text(data) {
        let first = modelgate::measure::log::check(log);
        let second = modelgate::measure::log::check(log);
        assert_eq!(
            first.as_ref().map(|s| (s.entries, s.chain.clone())).ok(),
            second.as_ref().map(|s| (s.entries, s.chain.clone())).ok()
        );
    }
}

/// An `oci://` reference: its canonical form parses to itself.
pub fn reference(data: &[u8]) {
    if let Some(arg) = text(data)
        && let Ok(r) = modelgate::oci::ModelRef::parse(arg)
    {
        let canonical = r.canonical();
        let again = modelgate::oci::ModelRef::parse(&canonical)
            .unwrap_or_else(|e| panic!("{arg:?}: canonical {canonical:?} does not parse: {e}"));
        assert_eq!(again.canonical(), r.canonical());
    }
}

/// What the GPU pathway measurement reads from the node's `/proc` files.
pub fn gpu_facts(data: &[u8]) {
    if let Some(text) = text(data) {
        let _ = modelgate::node::gpu::parse_banner(text);
        let _ = modelgate::node::gpu::parse_information(text);
        let _ = modelgate::node::DriverVersion::parse(text);
    }
}
