//! Hashing a model and signing it: the `attest` and `digest` commands.
//!
//! The output is what the reference (`model_signing sign key`) writes: a
//! Sigstore v0.3 bundle holding a DSSE envelope over an in-toto statement,
//! resources in the reference's order (path components, then offsets), so
//! that either tool verifies what the other signs.

use std::path::Path;

use crate::model::resources::{self, HashTask};
use crate::model::{
    EntryKind, FsError, HashAlgorithm, HashError, IgnoreRules, Method, ModelRoot, ResourceKey,
    Serialization,
};
use crate::oms::bundle::{self, Bundle};
use crate::oms::manifest::{DEFAULT_IGNORES, Manifest};
use crate::trust::{Certificate, PrivateKey};

/// Why a model could not be hashed or signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The model or the request cannot be signed as asked (a symlink, an
    /// empty model, a certificate for another key...).
    #[error("{0}")]
    Refused(String),
    /// The model could not be listed or opened.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A model file could not be hashed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// How to hash a model.
pub struct HashOptions<'a> {
    /// The model folder or file.
    pub model: &'a Path,
    /// Hash function.
    pub hash: HashAlgorithm,
    /// Files, or shards of this many bytes.
    pub method: Method,
    /// Hash symlinks (to files inside the model) as their targets.
    pub allow_symlinks: bool,
    /// Root-relative paths to leave out, besides the default git paths.
    pub ignore_paths: Vec<String>,
    /// Hashing threads.
    pub workers: usize,
    /// Called with the number of bytes hashed.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// Hashes the model as a signer would and returns its manifest.
pub fn hash_model(opts: &HashOptions<'_>) -> Result<Manifest, SignError> {
    if opts.hash == HashAlgorithm::Blake3 && matches!(opts.method, Method::Shards { .. }) {
        return Err(SignError::Refused(
            "blake3 models are hashed by file (the reference does the same): drop --shard-size"
                .into(),
        ));
    }
    let root = ModelRoot::open(opts.model)?;
    let mut ignores: Vec<String> = DEFAULT_IGNORES.iter().map(|s| s.to_string()).collect();
    ignores.extend(opts.ignore_paths.iter().cloned());
    let rules = IgnoreRules::new(&ignores);
    let serialization = Serialization {
        method: opts.method,
        hash: opts.hash,
        allow_symlinks: opts.allow_symlinks,
        ignore_paths: rules.to_sorted_vec(),
    };
    let mut tasks = Vec::new();
    for entry in root.walk(&rules)? {
        match &entry.kind {
            EntryKind::Symlink if !opts.allow_symlinks => {
                return Err(SignError::Refused(format!(
                    "{} is a symbolic link; replace it with the file, or pass --allow-symlinks to sign its target",
                    entry.name
                )));
            }
            EntryKind::Special(what) => {
                return Err(SignError::Refused(format!(
                    "{} is {what}; only regular files can be signed",
                    entry.name
                )));
            }
            _ => {}
        }
        let size = resources::entry_size(&root, &entry.name, &entry.kind, &serialization)?;
        tasks.extend(
            ResourceKey::for_file(&entry.name, size, opts.method)
                .into_iter()
                .map(|k| HashTask::new(k, size)),
        );
    }
    if tasks.is_empty() {
        return Err(SignError::Refused(format!(
            "{} has no files to sign",
            opts.model.display()
        )));
    }
    let digests = resources::hash_all(&root, &tasks, &serialization, opts.workers, opts.progress);
    let mut signed = Vec::with_capacity(tasks.len());
    for (task, digest) in tasks.into_iter().zip(digests) {
        signed.push((task.key, digest?));
    }
    Ok(Manifest::new(root.name(), serialization, signed))
}

/// Signs a manifest with `key` and returns the bundle's JSON text. With a
/// certificate chain (signing certificate first) the bundle carries the
/// chain (the certificate method); otherwise the key's hint (the key method).
pub fn sign(
    manifest: &Manifest,
    key: &PrivateKey,
    chain: Option<&[Certificate]>,
) -> Result<Vec<u8>, SignError> {
    let payload = manifest.to_statement();
    let signature = key.sign(&bundle::pae(bundle::IN_TOTO_PAYLOAD_TYPE, &payload));
    let bundle = match chain {
        None => Bundle::for_key(key.public_key().fingerprint(), &payload, &signature),
        Some(chain) => {
            let leaf = chain
                .first()
                .ok_or_else(|| SignError::Refused("no signing certificate given".into()))?;
            let leaf_key = leaf
                .signing_key()
                .map_err(|e| SignError::Refused(e.to_string()))?;
            if leaf_key.fingerprint() != key.public_key().fingerprint() {
                return Err(SignError::Refused(format!(
                    "the signing certificate {} is not for this private key; pass the certificate issued for --key",
                    leaf.subject()
                )));
            }
            let ders: Vec<Vec<u8>> = chain.iter().map(|c| c.der().to_vec()).collect();
            Bundle::for_certificates(&ders, &payload, &signature)
        }
    };
    let mut json = serde_json::to_vec_pretty(&bundle).unwrap_or_default();
    json.push(b'\n');
    Ok(json)
}
