//! Pushing a signed model for CI: a CNCF ModelPack artifact with one raw
//! layer per file (so a layer's digest is its file's SHA-256, and `oras pull`
//! names files by their title), and the signature attached as a referrer in
//! cosign's convention for Sigstore bundles: a manifest with the bundle's
//! `artifactType`, the empty config, one layer holding the bundle, and
//! `subject` pointing at the model. A registry without the OCI 1.1 referrers
//! API finds it through the referrers tag schema (`sha256-<hex>`), which is
//! updated too. Blobs the registry already has are not sent again.

use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream;
use serde_json::{Value, json};

use super::http::HttpError;
use super::layout::{IMAGE_INDEX, IMAGE_MANIFEST};
use super::registry::{OciError, Registry};
use crate::model::Digest;
use crate::oms::bundle::BUNDLE_MEDIA_TYPE_V03;
use crate::oms::manifest::{Manifest, PREDICATE_TYPE};

/// ModelPack's artifact type.
pub const MODELPACK_ARTIFACT: &str = "application/vnd.cncf.model.manifest.v1+json";
/// ModelPack's config media type.
pub const MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// The OCI empty descriptor's media type and content.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY: &[u8] = b"{}";

/// What a push produced.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The model manifest's digest.
    pub digest: String,
    /// The signature referrer's manifest digest.
    pub signature_digest: String,
    /// Blobs sent, and blobs the registry already had.
    pub sent: usize,
    /// Blobs skipped because the registry had them.
    pub skipped: usize,
    /// The registry has the referrers API and lists the signature there, so
    /// the referrers tag schema was not written.
    pub referrers_api: bool,
}

/// The ModelPack layer type for a file, by its name.
fn layer_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match ext {
        "safetensors" | "bin" | "gguf" | "pt" | "pth" | "onnx" | "h5" | "msgpack" | "ckpt"
        | "pb" | "tflite" => "application/vnd.cncf.model.weight.v1.raw",
        "py" | "sh" | "ipynb" => "application/vnd.cncf.model.code.v1.raw",
        "md" | "txt" | "rst" if name != "merges.txt" && name != "vocab.txt" => {
            "application/vnd.cncf.model.doc.v1.raw"
        }
        _ if name.starts_with("license") || name.starts_with("readme") => {
            "application/vnd.cncf.model.doc.v1.raw"
        }
        _ => "application/vnd.cncf.model.weight.config.v1.raw",
    }
}

/// Blobs uploaded at once.
const PUSH_CONCURRENCY: usize = 4;

/// Pushes the model in `dir`, signed as `manifest` says (a `files`/`sha256`
/// manifest of exactly those files) with `bundle`, to `registry`'s reference.
pub async fn push(
    registry: &Registry,
    dir: &Path,
    manifest: &Manifest,
    bundle: &[u8],
) -> Result<Pushed, OciError> {
    registry.login_push().await?;
    let mut layers = Vec::with_capacity(manifest.resources.len());
    let mut blobs: Vec<(String, Blob)> = Vec::new();
    for (key, digest) in &manifest.resources {
        let path = dir.join(&key.path);
        let size = std::fs::metadata(&path)
            .map_err(|e| OciError::Usage(format!("cannot read {}: {e}", path.display())))?
            .len();
        // The layer's digest is the file's, so only a SHA-256 one will do.
        let digest = <[u8; 32]>::try_from(digest.as_slice())
            .map(Digest)
            .map_err(|_| {
                OciError::Usage(format!(
                    "{}: the signature gives no SHA-256 digest for it; a model is pushed signed by file with sha256",
                    key.path
                ))
            })?
            .to_string();
        layers.push(json!({
            "mediaType": layer_type(&key.path),
            "digest": digest,
            "size": size,
            "annotations": {
                "org.cncf.model.filepath": key.path,
                "org.opencontainers.image.title": key.path,
            },
        }));
        blobs.push((digest, Blob::File(path, size)));
    }
    let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let config = serde_json::to_vec(&json!({
        "descriptor": {"name": manifest.model_name},
        "modelfs": {"type": "layers", "diffIds": diff_ids},
        "config": {},
    }))
    .unwrap_or_default();
    let config_digest = sha256(&config);
    blobs.push((config_digest.clone(), Blob::Bytes(config.clone())));
    let model_manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": IMAGE_MANIFEST,
        "artifactType": MODELPACK_ARTIFACT,
        "config": {"mediaType": MODELPACK_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))
    .unwrap_or_default();
    // Blobs go up at once (each one streamed PUT), as a pull fetches them;
    // files with the same bytes are one blob, sent once (two uploads of one
    // digest at once make distribution answer 500).
    let mut unique = std::collections::HashSet::new();
    blobs.retain(|(digest, _)| unique.insert(digest.clone()));
    let pushed: Vec<Result<bool, OciError>> = stream::iter(
        blobs
            .iter()
            .map(|(digest, blob)| registry.push_blob(digest, blob)),
    )
    .buffer_unordered(PUSH_CONCURRENCY)
    .collect()
    .await;
    let (mut sent, mut skipped) = (0, 0);
    for result in pushed {
        if result? {
            sent += 1;
        } else {
            skipped += 1;
        }
    }
    let digest = sha256(&model_manifest);
    let at = registry
        .reference
        .digest()
        .or(registry.reference.tag())
        .unwrap_or("latest")
        .to_string();
    registry
        .push_manifest(&at, &model_manifest, IMAGE_MANIFEST)
        .await?;
    // The signature, as a referrer of the model manifest.
    let empty_digest = sha256(EMPTY);
    let bundle_digest = sha256(bundle);
    for (d, b) in [
        (&empty_digest, Blob::Bytes(EMPTY.to_vec())),
        (&bundle_digest, Blob::Bytes(bundle.to_vec())),
    ] {
        if registry.push_blob(d, &b).await? {
            sent += 1;
        } else {
            skipped += 1;
        }
    }
    let annotations = json!({
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": PREDICATE_TYPE,
    });
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": IMAGE_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE_V03,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": empty_digest, "size": EMPTY.len()},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE_V03, "digest": bundle_digest, "size": bundle.len()}],
        "subject": {"mediaType": IMAGE_MANIFEST, "digest": digest, "size": model_manifest.len()},
        "annotations": annotations,
    }))
    .unwrap_or_default();
    let signature_digest = sha256(&referrer);
    registry
        .push_manifest(&signature_digest, &referrer, IMAGE_MANIFEST)
        .await?;
    // A registry with the referrers API lists the referrer by itself; the
    // tag schema is for those without it.
    let listed = registry.lists_referrer(&digest, &signature_digest).await;
    if !listed {
        registry
            .add_to_referrers_tag(&digest, &signature_digest, referrer.len(), &annotations)
            .await?;
    }
    Ok(Pushed {
        digest,
        signature_digest,
        sent,
        skipped,
        referrers_api: listed,
    })
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Digest::of(bytes).to_string()
}

/// A blob to send: a file of the model (streamed), or bytes in memory.
pub enum Blob {
    /// A file and its size.
    File(std::path::PathBuf, u64),
    /// Small content (a config, a manifest, a bundle).
    Bytes(Vec<u8>),
}

/// Bytes per read of a file being uploaded.
const UPLOAD_CHUNK: usize = 256 << 10;

/// A file's first `size` bytes as a request body, read on a blocking
/// thread of its own into at most three chunks in flight (768 KiB), so an
/// upload holds the same memory whatever the file's size or the
/// registry's pace. A file that ends early fails the body (the registry
/// would refuse it anyway); bytes past `size` are not sent (they were not
/// signed).
fn file_body(path: &Path, size: u64) -> Result<reqwest::Body, std::io::Error> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)?;
    let shown = path.display().to_string();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(UPLOAD_CHUNK as u64)).unwrap_or(UPLOAD_CHUNK);
            let mut buf = vec![0u8; want];
            let piece = match file.read(&mut buf) {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "{shown} ended {left} bytes before the size it was signed with; it changed after signing"
                    ),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = piece.is_err();
            // The request was given up: stop reading.
            if tx.blocking_send(piece).is_err() || failed {
                return;
            }
        }
    });
    let chunks = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok(reqwest::Body::wrap_stream(chunks))
}

impl Registry {
    /// Sends `blob` as `digest` unless the registry already has it; whether
    /// it was sent. The registry checks the digest of what it receives, so a
    /// file changed since it was hashed fails the push.
    pub async fn push_blob(&self, digest: &str, blob: &Blob) -> Result<bool, OciError> {
        let doing = format!("push blob {digest} to");
        let exists =
            self.http.blob_exists(digest).await.map_err(|e| {
                self.http_error(&format!("check blob {digest} of"), &self.reference, e)
            })?;
        if exists {
            return Ok(false);
        }
        let uploaded = match blob {
            Blob::Bytes(bytes) => {
                let bytes = Bytes::from(bytes.clone());
                self.http
                    .upload_blob(digest, bytes.len() as u64, || Ok(bytes.clone().into()))
                    .await
            }
            Blob::File(path, size) => {
                self.http
                    .upload_blob(digest, *size, || {
                        file_body(path, *size).map_err(|e| {
                            HttpError::Transport(format!("cannot read {}: {e}", path.display()))
                        })
                    })
                    .await
            }
        };
        uploaded
            .map(|()| true)
            .map_err(|e| self.http_error(&doing, &self.reference, e))
    }

    /// Puts a manifest at `at` (a tag or its digest) of this repository.
    pub async fn push_manifest(
        &self,
        at: &str,
        body: &[u8],
        media_type: &'static str,
    ) -> Result<(), OciError> {
        self.http
            .put_manifest(at, body, media_type)
            .await
            .map_err(|e| self.http_error("push a manifest to", &self.reference, e))
    }

    /// Whether the registry's referrers API lists `referrer` for `subject`.
    /// Asked of the API path only (the tag schema does not list it yet), so
    /// a registry without the API answers false.
    async fn lists_referrer(&self, subject: &str, referrer: &str) -> bool {
        let listed = self
            .http
            .get_bounded(
                &format!("referrers/{subject}"),
                &[IMAGE_INDEX],
                super::registry::MAX_MANIFEST_BYTES,
                "the referrers index",
            )
            .await;
        match listed {
            Ok(Some(bytes)) => serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|index| {
                    index["manifests"]
                        .as_array()
                        .map(|m| m.iter().any(|m| m["digest"] == referrer))
                })
                .unwrap_or(false),
            _ => false,
        }
    }

    /// Adds a referrer to the referrers tag schema's index for `subject`
    /// (`sha256-<hex>`), creating it when the registry has none.
    async fn add_to_referrers_tag(
        &self,
        subject: &str,
        referrer: &str,
        size: usize,
        annotations: &Value,
    ) -> Result<(), OciError> {
        let tag = subject.replace(':', "-");
        let existing = self
            .http
            .get_bounded(
                &format!("manifests/{tag}"),
                &[IMAGE_INDEX],
                super::registry::MAX_MANIFEST_BYTES,
                "the referrers tag-schema index",
            )
            .await
            .map_err(|e| {
                self.http_error("read the referrers tag-schema index of", &self.reference, e)
            })?;
        let index = existing
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .unwrap_or_else(|| json!({}));
        let entry = json!({
            "mediaType": IMAGE_MANIFEST,
            "digest": referrer,
            "size": size,
            "artifactType": BUNDLE_MEDIA_TYPE_V03,
            "annotations": annotations,
        });
        let mut manifests: Vec<Value> = index["manifests"].as_array().cloned().unwrap_or_default();
        manifests.retain(|m| m["digest"] != referrer);
        manifests.push(entry);
        let index = json!({"schemaVersion": 2, "mediaType": IMAGE_INDEX, "manifests": manifests});
        let body = serde_json::to_vec(&index).unwrap_or_default();
        self.push_manifest(&tag, &body, IMAGE_INDEX).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn a_file_sent_whole_stops_at_its_signed_size_and_one_that_shrank_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.bin");
        let bytes: Vec<u8> = (0..3 * UPLOAD_CHUNK + 17).map(|i| i as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        // Exactly the signed size, in chunks; bytes past it are not sent.
        let sent = file_body(&path, bytes.len() as u64 - 5)
            .unwrap()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(sent, &bytes[..bytes.len() - 5]);
        // Shorter than it was signed with: the body fails, naming the file.
        let err = file_body(&path, bytes.len() as u64 + 10)
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        let chain = format!("{err:?}");
        assert!(
            chain.contains(
                "ended 10 bytes before the size it was signed with; it changed after signing"
            ),
            "{chain}"
        );
        // A link in its place is not followed.
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(file_body(&link, 1).is_err());
    }
}
