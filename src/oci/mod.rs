//! Models in OCI registries: references (`oci://...`), registries as users
//! have them (TLS, plain HTTP only when named, credentials from a Docker
//! config, an allow-list), the layouts model artifacts use, and a one-pass
//! pull that checks every byte against its digest on the way in.
//!
//! A pull is two steps, both async (the caller owns the runtime): [`resolve`]
//! reads the reference once to a digest, its layout and its signatures;
//! [`fetch`] fills a folder the caller made. Between them the caller decides
//! whether to download at all. Verification against a signature is the
//! caller's; nothing here trusts the content beyond its digests.

pub mod credentials;
pub mod discover;
pub mod http;
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

/// A model reference resolved, before any blob is fetched: the registry
/// (logged in), the manifest's digest and layout, and the signatures found
/// attached to it. What to do next (fetch, or stop here) is the caller's
/// decision, taken from these values.
pub struct Resolved {
    /// The registry, logged in for pulling.
    pub registry: Registry,
    /// The manifest's digest (`sha256:<hex>`): what a tag resolved to.
    pub digest: String,
    /// The manifest's layers.
    pub artifact: ModelArtifact,
    /// Signatures attached to the manifest (only when asked to discover).
    pub discovered: Vec<discover::Discovered>,
}

/// What a pull fetched.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The credential used, described without its secret.
    pub credential: String,
    /// The SHA-256 of every raw file, proven on the way in.
    pub known: crate::verify::KnownDigests,
}

/// Resolves `reference` once to a digest, reads its layout (the folder
/// `opts.subpath` of an image, when given), and with `discover` finds the
/// signatures attached to it. No blob is fetched.
pub async fn resolve(
    reference: &ModelRef,
    opts: &RegistryOptions,
    discover: bool,
) -> Result<Resolved, OciError> {
    let subpath = match &opts.subpath {
        Some(given) => Some(layout::subpath(given).map_err(|e| OciError::Usage(e.to_string()))?),
        None => None,
    };
    let registry = Registry::connect(reference, opts)?;
    registry.login_pull().await?;
    let manifest = registry.manifest().await?;
    let artifact = layout::read_manifest(&manifest.bytes, subpath.as_deref())
        .map_err(|e| OciError::Content(format!("{reference} ({}): {e}", manifest.digest)))?;
    let discovered = if discover {
        discover::signatures(&registry, &manifest.digest).await?
    } else {
        Vec::new()
    };
    Ok(Resolved {
        registry,
        digest: manifest.digest,
        artifact,
        discovered,
    })
}

/// Downloads the resolved model into `dir` (an empty folder the caller
/// made and removes on failure).
pub async fn fetch(
    resolved: &Resolved,
    dir: &Path,
    pull: &PullOptions<'_>,
) -> Result<Pulled, OciError> {
    let known = pull::download(&resolved.registry, &resolved.artifact, dir, pull).await?;
    Ok(Pulled {
        credential: resolved.registry.describe_credential(),
        known,
    })
}

/// Pushes the model in `dir`, signed as `manifest` and `bundle` say, to
/// `reference` (see [`push::push`]).
pub async fn push_model(
    reference: &ModelRef,
    opts: &RegistryOptions,
    dir: &Path,
    manifest: &crate::oms::manifest::Manifest,
    bundle: &[u8],
) -> Result<push::Pushed, OciError> {
    let registry = Registry::connect(reference, opts)?;
    push::push(&registry, dir, manifest, bundle).await
}

/// The `files`/`sha256` manifest of the model at `reference`, built from its
/// OCI manifest without downloading a blob (see [`remote`]), and the OCI
/// manifest's digest.
pub async fn remote_manifest(
    reference: &ModelRef,
    opts: &RegistryOptions,
) -> Result<(crate::oms::manifest::Manifest, String), OciError> {
    let registry = Registry::connect(reference, opts)?;
    remote::model_manifest(&registry).await
}

/// A limit on registry work (`--timeout`), shared by the steps of one
/// operation.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: tokio::time::Instant,
    limit: Duration,
}

impl Deadline {
    /// `limit` from now.
    pub fn after(limit: Duration) -> Self {
        Self {
            at: tokio::time::Instant::now() + limit,
            limit,
        }
    }
}

/// Runs `work` (the `what` of `reference`) until `deadline` when one is
/// given; past it, the work is dropped mid-flight and the error says so.
pub async fn within<T>(
    reference: &ModelRef,
    what: &str,
    deadline: Option<Deadline>,
    work: impl std::future::Future<Output = Result<T, OciError>>,
) -> Result<T, OciError> {
    match deadline {
        None => work.await,
        Some(d) => tokio::time::timeout_at(d.at, work).await.unwrap_or_else(|_| {
            Err(OciError::Registry(format!(
                "{reference}: the {what} did not finish within {}s (--timeout); nothing was kept",
                d.limit.as_secs()
            )))
        }),
    }
}
