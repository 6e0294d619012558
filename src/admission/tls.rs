//! The serving certificate: read from PEM files (a chain, and a PKCS#8,
//! SEC1 or PKCS#1 key, as cert-manager writes them), served through a
//! resolver whose `Arc<CertifiedKey>` is swapped when the files change, so
//! a rotated Secret takes effect without dropping a connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The chain could not be read.
    #[error("--tls-cert-file {path}: {why}; give the PEM certificate chain (tls.crt)")]
    Chain {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The key could not be read or used.
    #[error(
        "--tls-private-key-file {path}: {why}; give the PEM private key (tls.key: PKCS#8, SEC1 or PKCS#1)"
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Reads the chain and key into a [`CertifiedKey`].
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain_err = |why: String| TlsError::Chain {
        path: cert.to_path_buf(),
        why,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| chain_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| chain_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(chain_err("no CERTIFICATE in it".into()));
    }
    let key_err = |why: String| TlsError::Key {
        path: key.to_path_buf(),
        why,
    };
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| key_err(e.to_string()))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|e| key_err(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| key_err(format!("does not match the certificate: {e}")))?;
    Ok(certified)
}

/// The certificate served now.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Resolver {
    /// Serves `first` until a swap.
    pub fn new(first: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(first)),
        }
    }

    fn swap(&self, next: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// What identifies a file's content on disk (through the links a mounted
/// Secret's `..data` swap changes).
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Polls the files every `every` and swaps in a new certificate when they
/// change and load; a pair that does not load keeps the last good one.
pub async fn watch(resolver: Arc<Resolver>, cert: PathBuf, key: PathBuf, every: Duration) {
    let mut seen = (stamp(&cert), stamp(&key));
    loop {
        tokio::time::sleep(every).await;
        let now = (stamp(&cert), stamp(&key));
        if now == seen {
            continue;
        }
        match load(&cert, &key) {
            Ok(next) => {
                resolver.swap(next);
                seen = now;
                info!(cert = %cert.display(), "serving certificate reloaded");
            }
            // Half-written (the key before the chain): tried again next poll.
            Err(e) => warn!("serving certificate not reloaded, the last good one stays: {e}"),
        }
    }
}
