//! Signing a model in a registry without downloading it. When every layer
//! is one raw file with a path annotation, the layer digests *are* the
//! files' SHA-256 digests, so the `files`/`sha256` manifest of the model
//! can be built from the registry's manifest alone: `attest oci://` signs
//! it, and the signature verifies the pulled folder, with modelgate and with
//! the reference `model_signing`. An artifact with tar layers is refused:
//! its files' digests are not in the manifest.

use super::layout::{self, Unpack};
use super::registry::{OciError, Registry};
use crate::model::{Digest, HashAlgorithm, IgnoreRules, Method, ResourceKey, Serialization};
use crate::oms::manifest::{DEFAULT_IGNORES, Manifest};

/// The model manifest of the artifact at `registry`'s reference, and the
/// OCI manifest digest it was built from.
pub async fn model_manifest(registry: &Registry) -> Result<(Manifest, String), OciError> {
    registry.login_pull().await?;
    let fetched = registry.manifest().await?;
    let reference = &registry.reference;
    let artifact = layout::read_manifest(&fetched.bytes, None)
        .map_err(|e| OciError::Content(format!("{reference} ({}): {e}", fetched.digest)))?;
    let ignores = IgnoreRules::new(DEFAULT_IGNORES);
    let mut resources = Vec::with_capacity(artifact.layers.len());
    for layer in &artifact.layers {
        let Unpack::Raw(path) = &layer.unpack else {
            return Err(OciError::Usage(format!(
                "{reference}: layer {} ({}) is a tar archive, so the manifest does not give its files' digests; pull the model and attest the folder",
                layer.digest, layer.media_type
            )));
        };
        if ignores.is_ignored(path) {
            continue;
        }
        let digest = Digest::parse(&layer.digest)
            .map(|d| d.0.to_vec())
            .ok_or_else(|| {
                OciError::Content(format!(
                    "{reference}: layer digest {} is not sha256",
                    layer.digest
                ))
            })?;
        resources.push((
            ResourceKey {
                path: path.clone(),
                range: None,
            },
            digest,
        ));
    }
    if resources.is_empty() {
        return Err(OciError::Usage(format!("{reference}: no files to sign")));
    }
    let serialization = Serialization {
        method: Method::Files,
        hash: HashAlgorithm::Sha256,
        allow_symlinks: false,
        ignore_paths: ignores.to_sorted_vec(),
    };
    Ok((
        Manifest::new(reference.model_name().to_string(), serialization, resources),
        fetched.digest,
    ))
}
