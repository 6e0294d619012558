//! Finding a model's signatures in its registry when none is given: the OCI
//! 1.1 referrers of the model's manifest with the Sigstore bundle
//! `artifactType` (through the referrers API, or the referrers tag schema
//! `sha256-<hex>` on registries without it, as oci-client falls back), then
//! cosign's tags `sha256-<hex>.sig` and `.att`. Every bundle found is a
//! candidate only: the caller verifies each against the policy, and none
//! that verifies is a rejection.

use oci_client::manifest::OciImageIndex;
use serde::Deserialize;

use super::registry::{OciError, Registry};
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

/// The bundles attached to the model manifest `subject`.
pub async fn signatures(registry: &Registry, subject: &str) -> Result<Vec<Discovered>, OciError> {
    let mut found = Vec::new();
    let pinned = registry.reference.pinned(subject);
    let index: Option<OciImageIndex> = registry
        .client
        .pull_referrers(pinned.as_client_ref(), Some(BUNDLE_MEDIA_TYPE_V03))
        .await
        .ok();
    for entry in index.iter().flat_map(|i| i.manifests.iter()) {
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
        let at = oci_client::Reference::with_tag(
            registry.reference.registry().to_string(),
            registry.reference.repository().to_string(),
            tag,
        );
        let Ok((bytes, _)) = registry
            .client
            .pull_manifest_raw(&at, &registry.auth(), &[super::layout::IMAGE_MANIFEST])
            .await
        else {
            continue;
        };
        let digest = super::push::sha256(&bytes);
        let pinned = registry.reference.pinned(&digest);
        found.extend(bundles_in(registry, &pinned, &bytes, Via::CosignTag).await?);
    }
    found.truncate(MAX_CANDIDATES);
    Ok(found)
}

/// The bundle layers of the manifest at `at` (fetched by digest, checked).
async fn bundles_of(
    registry: &Registry,
    at: &super::reference::ModelRef,
    via: Via,
) -> Result<Vec<Discovered>, OciError> {
    let (bytes, _) = registry
        .client
        .pull_manifest_raw(
            at.as_client_ref(),
            &registry.auth(),
            &[super::layout::IMAGE_MANIFEST],
        )
        .await
        .map_err(|e| registry.registry_error("fetch a signature manifest of", &e))?;
    if let Some(wanted) = at.digest()
        && super::push::sha256(&bytes) != wanted
    {
        return Err(OciError::Content(format!(
            "the signature manifest {wanted} of {} does not match its digest",
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
        let mut bundle = Vec::new();
        registry
            .client
            .pull_blob(
                at.as_client_ref(),
                &oci_client::manifest::OciDescriptor {
                    media_type: layer.media_type.clone(),
                    digest: layer.digest.clone(),
                    size: i64::try_from(layer.size).unwrap_or(i64::MAX),
                    ..Default::default()
                },
                &mut bundle,
            )
            .await
            .map_err(|e| {
                registry.registry_error(&format!("fetch signature blob {} of", layer.digest), &e)
            })?;
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
