//! Signing, for CI: hash a model (on disk, or from a registry's manifest
//! without downloading it), sign its manifest with a key or a certificate,
//! write the bundle, push the model with its signature attached. The same
//! layer as [`super::run`], so the command line only translates flags.

use std::path::{Path, PathBuf};

use tracing::info;

use super::Error;
pub use super::keyless::Sigstore;
use super::settings::{load_certificates, read_pem};
use crate::io::write_atomic;
use crate::model::{Digest, HashAlgorithm, Method, paths};
use crate::oci::{self, Deadline, ModelRef, RegistryOptions};
use crate::oms::manifest::Manifest;
use crate::oms::sign::{self, HashOptions};
use crate::trust::{Certificate, PrivateKey};

/// How a model is hashed.
#[derive(Clone, Debug)]
pub struct Hashing {
    /// The hash of each file or shard.
    pub hash: HashAlgorithm,
    /// The `shards` method with this shard size; `None`: by file.
    pub shard_size: Option<u64>,
    /// Hash symlinks to files inside the model as their targets.
    pub allow_symlinks: bool,
    /// Paths to leave out (as the user wrote them; made model-relative).
    pub ignore_paths: Vec<String>,
}

impl Hashing {
    /// By file, SHA-256: a layer's digest is then its file's.
    pub fn files_sha256() -> Self {
        Self {
            hash: HashAlgorithm::Sha256,
            shard_size: None,
            allow_symlinks: false,
            ignore_paths: Vec::new(),
        }
    }
}

/// Who signs: a key file, and for the certificate method the signing
/// certificate and the rest of the chain.
#[derive(Clone, Debug)]
pub struct SignerFiles {
    /// The EC private key (PEM).
    pub key: PathBuf,
    /// The signing certificate (PEM), for the certificate method.
    pub certificate: Option<PathBuf>,
    /// Intermediates and root after it.
    pub certificate_chain: Vec<PathBuf>,
}

/// Who signs: key files (the key and certificate methods), or Sigstore
/// keyless.
pub enum Signing {
    /// A key, and for the certificate method its chain.
    Files(SignerFiles),
    /// An ephemeral key certified by Fulcio, logged in Rekor.
    Sigstore(Sigstore),
}

/// Where a model is and how to reach it, with hashing threads and progress.
pub struct Model<'a> {
    /// A folder, a single file, or `oci://...`.
    pub given: &'a str,
    /// How to reach its registry, for `oci://`.
    pub registry: &'a RegistryOptions,
    /// A limit on the registry work.
    pub deadline: Option<Deadline>,
    /// Hashing threads.
    pub workers: usize,
    /// Told of bytes hashed.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// A loaded key, with its chain for the certificate method.
type Loaded = (PrivateKey, Option<Vec<Certificate>>);

/// The private key, and for the certificate method the signing certificate
/// followed by the rest of the chain.
fn load_signer(files: &SignerFiles) -> Result<Loaded, Error> {
    let pem = read_pem("private key", &files.key)?;
    let key = PrivateKey::from_pem(&pem).map_err(|source| Error::Key {
        path: files.key.clone(),
        source,
    })?;
    let chain = match &files.certificate {
        None => None,
        Some(leaf_path) => {
            let mut chain =
                load_certificates("signing certificate", std::slice::from_ref(leaf_path))?;
            chain.truncate(1);
            chain.extend(load_certificates(
                "certificate chain",
                &files.certificate_chain,
            )?);
            Some(chain)
        }
    };
    Ok((key, chain))
}

/// Signs `manifest` as `signing` says: the bundle's JSON text, and who
/// signed, for the log line. A key file that cannot be used is refused by
/// the caller before the model is hashed ([`load_signer`]).
async fn make_bundle(
    manifest: &Manifest,
    signing: &Signing,
    loaded: Option<&Loaded>,
) -> Result<(Vec<u8>, String), Error> {
    match (signing, loaded) {
        (Signing::Files(_), Some((key, chain))) => Ok((
            sign::sign(manifest, key, chain.as_deref())?,
            format!("key {}", key.public_key().fingerprint()),
        )),
        (Signing::Sigstore(sigstore), _) => {
            let made = sigstore.sign(&manifest.to_statement()).await?;
            Ok((made.bundle, made.signer))
        }
        (Signing::Files(_), None) => Err(Error::Usage("no signing key loaded".into())),
    }
}

/// The key files, loaded before any hashing; `None` for keyless.
fn load_files(signing: &Signing) -> Result<Option<Loaded>, Error> {
    match signing {
        Signing::Files(files) => load_signer(files).map(Some),
        Signing::Sigstore(_) => Ok(None),
    }
}

/// The model's manifest: hashed on disk, or for an `oci://` model built
/// from the registry's manifest (no blob downloaded), leaving `skip` out.
async fn manifest_of(
    model: &Model<'_>,
    hashing: &Hashing,
    skip: Option<&Path>,
) -> Result<Manifest, Error> {
    if let Some((manifest, digest)) = remote_model(model, hashing).await? {
        info!(model = %model.given, digest = %digest, "signing from the registry's manifest, without downloading");
        return Ok(manifest);
    }
    let path = Path::new(model.given);
    let mut opts = hash_options(path, hashing, model.workers, model.progress)?;
    if let Some(skip) = skip {
        opts.ignore_paths.extend(paths::relative_inside(path, skip));
    }
    Ok(sign::hash_model(&opts)?)
}

/// Signs a model: hash every file, build the manifest, sign, write the
/// bundle to `signature` atomically.
pub async fn attest(
    model: &Model<'_>,
    hashing: &Hashing,
    signing: &Signing,
    signature: &Path,
) -> Result<(), Error> {
    let loaded = load_files(signing)?;
    let manifest = manifest_of(model, hashing, Some(signature)).await?;
    let (bundle, signer) = make_bundle(&manifest, signing, loaded.as_ref()).await?;
    write_atomic(signature, &bundle, 0o644).map_err(|source| Error::Write {
        path: signature.to_path_buf(),
        source,
    })?;
    info!(
        model = %model.given,
        signature = %signature.display(),
        root_digest = %Digest(manifest.root_digest),
        resources = manifest.resources.len(),
        signer = %signer,
        "signed"
    );
    Ok(())
}

/// The root digest a signer would put in the statement's subject.
pub async fn digest(model: &Model<'_>, hashing: &Hashing) -> Result<Digest, Error> {
    let manifest = manifest_of(model, hashing, None).await?;
    Ok(Digest(manifest.root_digest))
}

/// For an `oci://` model, its `files`/`sha256` manifest from the registry's
/// manifest (no blob downloaded) and the OCI digest; `None` for a path.
async fn remote_model(
    model: &Model<'_>,
    hashing: &Hashing,
) -> Result<Option<(Manifest, String)>, Error> {
    if !ModelRef::is_oci(model.given) {
        return Ok(None);
    }
    if model.registry.subpath.is_some() {
        return Err(Error::Usage(
            "--subpath names a folder inside a container image's tar layers, whose files' digests the manifest does not give; pull the model and attest the folder".into(),
        ));
    }
    if hashing.hash != HashAlgorithm::Sha256
        || hashing.shard_size.is_some()
        || hashing.allow_symlinks
        || !hashing.ignore_paths.is_empty()
    {
        return Err(Error::Usage(
            "an oci:// model is signed by file with sha256 (its layer digests): drop --hash, --shard-size, --allow-symlinks and --ignore-paths".into(),
        ));
    }
    let reference = ModelRef::parse(model.given).map_err(|e| Error::Usage(e.to_string()))?;
    let work = oci::remote_manifest(&reference, model.registry);
    let fetched = oci::within(&reference, "manifest fetch", model.deadline, work).await?;
    Ok(Some(fetched))
}

/// What a push sent.
pub struct Pushed {
    /// The pushed manifest's digest, to deploy by.
    pub digest: String,
}

/// Signs a model folder (files, SHA-256: a layer's digest is then its
/// file's) and pushes it to `reference` with its signature attached; also
/// writes the bundle to `signature` when given.
pub async fn push(
    model: &Model<'_>,
    reference: &str,
    signing: &Signing,
    signature: Option<&Path>,
) -> Result<Pushed, Error> {
    let reference = ModelRef::parse(reference).map_err(|e| Error::Usage(e.to_string()))?;
    if model.registry.subpath.is_some() {
        return Err(Error::Usage(
            "push writes a ModelPack artifact, not a container image: drop --subpath".into(),
        ));
    }
    let loaded = load_files(signing)?;
    let folder = Path::new(model.given);
    let mut opts = hash_options(
        folder,
        &Hashing::files_sha256(),
        model.workers,
        model.progress,
    )?;
    if let Some(sig) = signature {
        opts.ignore_paths
            .extend(paths::relative_inside(folder, sig));
    }
    let manifest = sign::hash_model(&opts)?;
    if manifest
        .resources
        .iter()
        .any(|(k, _)| k.path == crate::model::SINGLE_FILE_NAME)
    {
        return Err(Error::Usage(
            "push takes a model folder, not a single file".into(),
        ));
    }
    let (bundle, signer) = make_bundle(&manifest, signing, loaded.as_ref()).await?;
    if let Some(sig) = signature {
        write_atomic(sig, &bundle, 0o644).map_err(|source| Error::Write {
            path: sig.to_path_buf(),
            source,
        })?;
    }
    let work = oci::push_model(&reference, model.registry, folder, &manifest, &bundle);
    let pushed = oci::within(&reference, "push", model.deadline, work).await?;
    info!(
        model = %folder.display(),
        reference = %reference,
        digest = %pushed.digest,
        signature = %reference.pinned(&pushed.signature_digest).canonical(),
        blobs_sent = pushed.sent,
        blobs_skipped = pushed.skipped,
        referrers_api = pushed.referrers_api,
        root_digest = %Digest(manifest.root_digest),
        signer = %signer,
        "pushed"
    );
    Ok(Pushed {
        digest: pushed.digest,
    })
}

fn hash_options<'a>(
    model: &'a Path,
    hashing: &Hashing,
    workers: usize,
    progress: &'a (dyn Fn(u64) + Sync),
) -> Result<HashOptions<'a>, Error> {
    let method = hashing
        .shard_size
        .map_or(Method::Files, |shard_size| Method::Shards { shard_size });
    let ignore_paths = hashing
        .ignore_paths
        .iter()
        .map(|p| super::model_relative(model, p))
        .collect::<Result<_, _>>()?;
    Ok(HashOptions {
        model,
        hash: hashing.hash,
        method,
        allow_symlinks: hashing.allow_symlinks,
        ignore_paths,
        workers,
        progress,
    })
}
