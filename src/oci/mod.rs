//! Models in OCI registries: references (`oci://...`), registries as users
//! have them (TLS, plain HTTP only when named, credentials from a Docker
//! config, an allow-list), the layouts model artifacts use, and a one-pass
//! pull that checks every byte against its digest on the way in.
//!
//! The entry point is [`pull_into`]: it resolves the reference once to a
//! digest, reads the layout, and fills a folder the caller made. Verification
//! against a signature is the caller's next step; nothing here trusts the
//! content beyond its digests.

pub mod credentials;
pub mod discover;
pub mod layout;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod remote;
pub mod untar;

use std::path::Path;
use std::time::Duration;

pub use layout::{Layout, ModelArtifact};
pub use pull::PullOptions;
pub use reference::{ModelRef, RefError};
pub use registry::{OciError, Registry, RegistryOptions};

/// What a pull fetched.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The manifest's digest (`sha256:<hex>`): what a tag resolved to.
    pub digest: String,
    /// The manifest's layers.
    pub artifact: ModelArtifact,
    /// The credential used, described without its secret.
    pub credential: String,
    /// The SHA-256 of every raw file, proven on the way in.
    pub known: crate::verify::KnownDigests,
}

/// Called with the manifest's digest, the artifact's layers and the
/// signatures found once the manifest is read, before any blob is fetched:
/// an error stops the pull there.
pub type BeforeDownload<'a> =
    dyn FnMut(&str, &ModelArtifact, &[discover::Discovered]) -> Result<(), OciError> + 'a;

/// Pulls the model at `reference` into `dir` (an empty folder), within
/// `timeout` when one is given. `before_download` may stop it once the
/// manifest and the signatures are known.
pub fn pull_into(
    reference: &ModelRef,
    opts: &RegistryOptions,
    dir: &Path,
    pull: &PullOptions<'_>,
    timeout: Option<Duration>,
    discover: bool,
    before_download: &mut BeforeDownload<'_>,
) -> Result<Pulled, OciError> {
    let subpath = match &opts.subpath {
        Some(given) => Some(layout::subpath(given).map_err(|e| OciError::Usage(e.to_string()))?),
        None => None,
    };
    let work = async {
        let registry = Registry::connect(reference, opts)?;
        registry.login().await?;
        let manifest = registry.manifest().await?;
        let artifact = layout::read_manifest(&manifest.bytes, subpath.as_deref())
            .map_err(|e| OciError::Content(format!("{reference} ({}): {e}", manifest.digest)))?;
        let discovered = if discover {
            discover::signatures(&registry, &manifest.digest).await?
        } else {
            Vec::new()
        };
        before_download(&manifest.digest, &artifact, &discovered)?;
        let known = pull::download(&registry, &artifact, dir, pull).await?;
        Ok(Pulled {
            digest: manifest.digest,
            artifact,
            credential: registry.describe_credential(),
            known,
        })
    };
    run(reference, "pull", timeout, work)
}

/// Pushes the model in `dir`, signed as `manifest` and `bundle` say, to
/// `reference` (see [`push::push`]).
pub fn push_model(
    reference: &ModelRef,
    opts: &RegistryOptions,
    dir: &Path,
    manifest: &crate::oms::manifest::Manifest,
    bundle: &[u8],
    timeout: Option<Duration>,
) -> Result<push::Pushed, OciError> {
    let work = async {
        let registry = Registry::connect(reference, opts)?;
        push::push(&registry, dir, manifest, bundle).await
    };
    run(reference, "push", timeout, work)
}

/// The `files`/`sha256` manifest of the model at `reference`, built from its
/// OCI manifest without downloading a blob (see [`remote`]), and the OCI
/// manifest's digest.
pub fn remote_manifest(
    reference: &ModelRef,
    opts: &RegistryOptions,
    timeout: Option<Duration>,
) -> Result<(crate::oms::manifest::Manifest, String), OciError> {
    let work = async {
        let registry = Registry::connect(reference, opts)?;
        remote::model_manifest(&registry).await
    };
    run(reference, "manifest fetch", timeout, work)
}

/// Runs `work` on a small runtime, within `timeout` when one is given.
fn run<T>(
    reference: &ModelRef,
    what: &str,
    timeout: Option<Duration>,
    work: impl std::future::Future<Output = Result<T, OciError>>,
) -> Result<T, OciError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| OciError::Registry(format!("cannot start the network runtime: {e}")))?;
    runtime.block_on(async {
        match timeout {
            None => work.await,
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(OciError::Registry(format!(
                    "{reference}: the {what} did not finish within {}s (--timeout); nothing was kept",
                    limit.as_secs()
                )))
            }),
        }
    })
}
