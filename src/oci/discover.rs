//! Finding a model's signatures in its registry when none is given: the OCI
//! 1.1 referrers of the model's manifest with the Sigstore bundle
//! `artifactType` (through the referrers API, or the referrers tag schema
//! `sha256-<hex>` on registries without it, as oci-client falls back), then
//! cosign's tags `sha256-<hex>.sig` and `.att`. Every bundle found is a
//! candidate only: the caller verifies each against the policy, and none
//! that verifies is a rejection.

use oci_client::manifest::OciImageIndex;
use serde::Deserialize;

use super::http::HttpError;
use super::registry::{MAX_MANIFEST_BYTES, OciError, Registry};
use crate::io::MAX_SIGNATURE_BYTES;
use crate::oms::bundle::BUNDLE_MEDIA_TYPE_V03;
use crate::verify::Via;

/// Bundle media types a signature layer may carry.
const BUNDLE_TYPES: [&str; 2] = [
    BUNDLE_MEDIA_TYPE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
];

/// Signature candidates taken at most: a registry that lists thousands
/// cannot make the pull fetch and verify thousands (the rest are left; a
/// model needs only its signers' few).
pub const MAX_CANDIDATES: usize = 16;

/// A signature found in the registry.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// Where: `oci://registry/repository@sha256:<manifest of the signature>`.
    pub origin: String,
    /// How it was found.
    pub via: Via,
    /// The bundle's bytes (digest-checked).
    pub bundle: Vec<u8>,
}

impl Discovered {
    /// The candidate as verification takes it: its bytes (moved, not
    /// copied: a bundle may be large) and where it was found.
    pub fn into_signature(self) -> crate::verify::Signature {
        crate::verify::Signature::new(
            crate::verify::Origin::Registry {
                reference: self.origin,
                via: self.via,
            },
            self.bundle,
        )
    }
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    media_type: String,
    digest: String,
    size: u64,
}

/// The bundles attached to the model manifest `subject`. A registry that
/// answers nothing useful (no referrers API, no tag) is a registry without
/// signatures; one that answers more than a manifest may be is refused.
pub async fn signatures(registry: &Registry, subject: &str) -> Result<Vec<Discovered>, OciError> {
    let mut found = Vec::new();
    for entry in referrers(registry, subject).await?.manifests {
        let is_bundle = entry
            .artifact_type
            .as_deref()
            .is_some_and(|t| BUNDLE_TYPES.contains(&t));
        if !is_bundle || !super::layout::is_sha256_digest(&entry.digest) {
            continue;
        }
        if found.len() >= MAX_CANDIDATES {
            break;
        }
        let at = registry.reference.pinned(&entry.digest);
        found.extend(bundles_of(registry, &at, Via::Referrers).await?);
    }
    for suffix in ["sig", "att"] {
        let tag = format!("{}.{suffix}", subject.replace(':', "-"));
        let Some(bytes) = manifest_at(registry, &tag, "a cosign signature manifest").await? else {
            continue;
        };
        let digest = super::push::sha256(&bytes);
        let pinned = registry.reference.pinned(&digest);
        found.extend(bundles_in(registry, &pinned, &bytes, Via::CosignTag).await?);
    }
    found.truncate(MAX_CANDIDATES);
    Ok(found)
}

/// The referrers index of `subject`: the referrers API, or on a registry
/// without it (404) the tag schema's `sha256-<hex>` index. Read bounded; a
/// registry error is read as "no referrers".
async fn referrers(registry: &Registry, subject: &str) -> Result<OciImageIndex, OciError> {
    let query = url_encode(BUNDLE_MEDIA_TYPE_V03);
    let listed = registry
        .http
        .get_bounded(
            &format!("referrers/{subject}?artifactType={query}"),
            &[super::layout::IMAGE_INDEX],
            MAX_MANIFEST_BYTES,
            "the referrers index",
        )
        .await;
    let bytes = match listed {
        Ok(Some(bytes)) => Some(bytes),
        Ok(None) => {
            let tag = subject.replace(':', "-");
            manifest_at(registry, &tag, "the referrers tag-schema index").await?
        }
        Err(e @ HttpError::TooLarge { .. }) => {
            return Err(registry.http_error("list the referrers of", &registry.reference, e));
        }
        Err(_) => None,
    };
    Ok(bytes
        .and_then(|b| serde_json::from_slice::<OciImageIndex>(&b).ok())
        .unwrap_or(OciImageIndex {
            schema_version: 2,
            media_type: None,
            manifests: Vec::new(),
            artifact_type: None,
            annotations: None,
        }))
}

/// The manifest at `tag_or_digest`, read bounded; `None` when the registry
/// has none there (or refuses): only an oversized answer is an error.
async fn manifest_at(
    registry: &Registry,
    tag_or_digest: &str,
    what: &str,
) -> Result<Option<Vec<u8>>, OciError> {
    let answer = registry
        .http
        .get_bounded(
            &format!("manifests/{tag_or_digest}"),
            &[super::layout::IMAGE_MANIFEST, super::layout::IMAGE_INDEX],
            MAX_MANIFEST_BYTES,
            what,
        )
        .await;
    match answer {
        Ok(found) => Ok(found),
        Err(e @ HttpError::TooLarge { .. }) => {
            Err(registry.http_error("fetch a signature manifest of", &registry.reference, e))
        }
        Err(_) => Ok(None),
    }
}

/// `text` with everything but unreserved characters percent-encoded.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The bundle layers of the manifest at `at` (fetched by digest, checked).
async fn bundles_of(
    registry: &Registry,
    at: &super::reference::ModelRef,
    via: Via,
) -> Result<Vec<Discovered>, OciError> {
    let digest = at.digest().unwrap_or_default().to_string();
    let bytes = registry
        .http
        .get_bounded(
            &format!("manifests/{digest}"),
            &[super::layout::IMAGE_MANIFEST],
            MAX_MANIFEST_BYTES,
            "a signature manifest",
        )
        .await
        .map_err(|e| registry.http_error("fetch a signature manifest of", &registry.reference, e))?
        .ok_or_else(|| {
            OciError::Registry(format!(
                "cannot fetch the signature manifest {digest} of {}: not found (HTTP 404)",
                registry.reference
            ))
        })?;
    if super::push::sha256(&bytes) != digest {
        return Err(OciError::Content(format!(
            "the signature manifest {digest} of {} does not match its digest",
            registry.reference
        )));
    }
    bundles_in(registry, at, &bytes, via).await
}

async fn bundles_in(
    registry: &Registry,
    at: &super::reference::ModelRef,
    manifest: &[u8],
    via: Via,
) -> Result<Vec<Discovered>, OciError> {
    let Ok(doc) = serde_json::from_slice::<Manifest>(manifest) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for layer in doc.layers {
        if !BUNDLE_TYPES.contains(&layer.media_type.as_str())
            || !super::layout::is_sha256_digest(&layer.digest)
        {
            continue;
        }
        if layer.size > MAX_SIGNATURE_BYTES {
            return Err(OciError::Content(format!(
                "{}: signature blob {} is {} bytes, more than the {MAX_SIGNATURE_BYTES} a signature may be",
                registry.reference, layer.digest, layer.size
            )));
        }
        let bundle = signature_blob(registry, &layer.digest, layer.size).await?;
        if super::push::sha256(&bundle) != layer.digest {
            return Err(OciError::Content(format!(
                "{}: signature blob {} does not match its digest",
                registry.reference, layer.digest
            )));
        }
        out.push(Discovered {
            origin: at.canonical(),
            via,
            bundle,
        });
    }
    Ok(out)
}

/// A signature blob, read up to the size its descriptor gives and not a
/// byte more, whatever the registry sends.
async fn signature_blob(registry: &Registry, digest: &str, size: u64) -> Result<Vec<u8>, OciError> {
    let limit = usize::try_from(size).unwrap_or(usize::MAX);
    let doing = format!("fetch signature blob {digest} of");
    let response = registry
        .http
        .blob(digest, None)
        .await
        .map_err(|e| registry.http_error(&doing, &registry.reference, e))?;
    match registry
        .http
        .read(response, limit, "a signature blob")
        .await
    {
        Ok(bytes) => Ok(bytes),
        Err(HttpError::TooLarge { .. }) => Err(OciError::Content(format!(
            "{}: signature blob {digest} is longer than the {size} bytes its descriptor says",
            registry.reference
        ))),
        Err(e) => Err(registry.http_error(&doing, &registry.reference, e)),
    }
}
