//! A connection to one registry for one repository: TLS roots, plain HTTP
//! only for hosts named insecure, credentials from the Docker config, and
//! the manifest resolved once (a tag to a digest) and checked against the
//! digest it was fetched by.

use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding};
use serde::Deserialize;

use super::credentials::{Credential, Credentials};
use super::http::{Http, HttpError};
use super::layout::{IMAGE_INDEX, IMAGE_MANIFEST};
use super::reference::ModelRef;
use crate::model::Digest;

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Extra CA certificates (PEM files) to trust for HTTPS.
    pub ca_files: Vec<PathBuf>,
    /// Hosts (`host:port`) reached over plain HTTP: never implied.
    pub insecure: Vec<String>,
    /// Registries that may be contacted; empty: any.
    pub allowed: Vec<String>,
    /// A Docker config file with credentials (else the usual places).
    pub registry_config: Option<PathBuf>,
    /// The platform to pick from an image index (`os/arch[/variant]`);
    /// default: the running one.
    pub platform: Option<String>,
    /// The folder of a container image that holds the model (`--subpath`).
    pub subpath: Option<String>,
    /// How long a connection may send nothing (default
    /// [`super::http::IDLE_TIMEOUT`]).
    pub read_timeout: Option<Duration>,
}

/// Why a registry operation failed. Messages name the reference, blob and
/// HTTP status, and never a credential.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Options, references or credentials that cannot be used (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The registry could not be reached or refused the request (exit 2).
    #[error("{0}")]
    Registry(String),
    /// The registry served content that does not match its digest, size or
    /// the model's layout (exit 1: the content is wrong).
    #[error("{0}")]
    Content(String),
}

impl OciError {
    /// [`Verdict::Rejected`] when the registry served wrong content;
    /// [`Verdict::Error`] when it could not be used.
    pub fn verdict(&self) -> crate::verify::Verdict {
        match self {
            Self::Content(_) => crate::verify::Verdict::Rejected,
            _ => crate::verify::Verdict::Error,
        }
    }
}

/// A registry client bound to one model reference.
pub struct Registry {
    pub(super) reference: ModelRef,
    credential: Credential,
    platform: Option<String>,
    /// The read side (manifests, referrers, blobs), bounded (see
    /// [`super::http`]).
    pub(super) http: Http,
}

/// A manifest fetched and checked against its digest.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// `sha256:<hex>` of the manifest bytes.
    pub digest: String,
    /// The manifest bytes.
    pub bytes: Vec<u8>,
}

impl Registry {
    /// Prepares a client for `reference`: checks the allow-list and reads
    /// credentials and CA files before any request.
    pub fn connect(reference: &ModelRef, opts: &RegistryOptions) -> Result<Self, OciError> {
        reference
            .check_allowed(&opts.allowed)
            .map_err(|e| OciError::Usage(e.to_string()))?;
        let config_path = Credentials::locate(opts.registry_config.as_deref());
        let credentials = Credentials::load(config_path.as_deref())
            .map_err(|e| OciError::Usage(e.to_string()))?;
        let credential = credentials
            .for_registry(reference.registry())
            .map_err(|e| OciError::Usage(e.to_string()))?;
        let roots = trusted_roots(&opts.ca_files)?;
        let http = Http::new(
            reference,
            credential.clone(),
            reqwest_roots(&roots)?,
            &opts.insecure,
            opts.read_timeout.unwrap_or(super::http::IDLE_TIMEOUT),
        )
        .map_err(|e| OciError::Usage(e.to_string()))?;
        Ok(Self {
            reference: reference.clone(),
            credential,
            platform: opts.platform.clone(),
            http,
        })
    }

    /// Authenticates the read side for pulling: the registry's challenge,
    /// and a pull token for this repository when it asks for one.
    pub async fn login_pull(&self) -> Result<(), OciError> {
        self.http
            .login()
            .await
            .map_err(|e| self.http_error("authenticate to", &self.reference, e))
    }

    /// An error of the read side, with what was being done and the
    /// reference, never a secret (the client removed them from any text the
    /// registry sent).
    pub(super) fn http_error(&self, doing: &str, reference: &ModelRef, e: HttpError) -> OciError {
        let registry = self.reference.registry();
        match e {
            HttpError::Cleartext(why) => OciError::Usage(why),
            HttpError::Auth(why) => OciError::Registry(format!(
                "cannot {doing} {reference}: authentication failed ({why}); check the credentials for {registry} in the registry config"
            )),
            HttpError::Status { status: 401, .. } => OciError::Registry(format!(
                "cannot {doing} {reference}: HTTP 401: not authorized with {}; check the credentials for {registry} in the registry config (--registry-config, or a Docker config file)",
                self.credential.describe(),
            )),
            HttpError::Status { status: 404, .. } => OciError::Registry(format!(
                "cannot {doing} {reference}: not found (HTTP 404): no such repository, tag or digest"
            )),
            HttpError::TooLarge { what, limit } => OciError::Content(format!(
                "{reference}: {what} is more than the {limit} bytes modelgate reads; the registry is not serving what it was asked for"
            )),
            other @ (HttpError::Status { .. } | HttpError::Transport(_)) => {
                OciError::Registry(format!("cannot {doing} {reference}: {other}"))
            }
        }
    }

    /// How the client authenticates, for logs (never the secret).
    pub fn describe_credential(&self) -> String {
        self.credential.describe()
    }

    /// Authenticates for pushing: a token scoped `pull,push` when the
    /// registry's challenge asks for one.
    pub async fn login_push(&self) -> Result<(), OciError> {
        self.http
            .login_push()
            .await
            .map_err(|e| self.http_error("authenticate to", &self.reference, e))
    }

    /// Fetches the model's image manifest: the tag resolved once, an image
    /// index resolved to the platform, every manifest checked against the
    /// digest it was fetched by.
    pub async fn manifest(&self) -> Result<FetchedManifest, OciError> {
        let first = self.fetch(&self.reference).await?;
        if media_type(&first.bytes).as_deref() != Some(IMAGE_INDEX) {
            return Ok(first);
        }
        let chosen = self.pick_platform(&first.bytes)?;
        let pinned = self.reference.pinned(&chosen);
        self.fetch(&pinned).await
    }

    async fn fetch(&self, reference: &ModelRef) -> Result<FetchedManifest, OciError> {
        let accepted = [
            IMAGE_MANIFEST,
            IMAGE_INDEX,
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ];
        let mut attempt = 0;
        let at = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_string();
        let bytes = loop {
            match self
                .http
                .get_bounded(
                    &format!("manifests/{at}"),
                    &accepted,
                    MAX_MANIFEST_BYTES,
                    "the manifest",
                )
                .await
            {
                Ok(Some(answer)) => break answer,
                Ok(None) => {
                    return Err(self.http_error(
                        "fetch the manifest of",
                        reference,
                        HttpError::Status {
                            status: 404,
                            excerpt: String::new(),
                        },
                    ));
                }
                Err(HttpError::TooLarge { limit, .. }) => {
                    return Err(OciError::Content(format!(
                        "{reference}: the manifest is more than the {limit} bytes modelgate reads (the OCI distribution spec's 4 MiB); the registry is not serving a model manifest"
                    )));
                }
                Err(e) if attempt < MANIFEST_RETRIES && e.is_transient() => {
                    attempt += 1;
                    tracing::warn!(
                        reference = %reference,
                        attempt,
                        "{}; retrying",
                        self.http_error("fetch the manifest of", reference, e)
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => return Err(self.http_error("fetch the manifest of", reference, e)),
            }
        };
        // The digest is computed from the bytes, never taken from a header.
        let digest = Digest::of(&bytes).to_string();
        if let Some(wanted) = reference.digest()
            && wanted != digest
        {
            return Err(OciError::Content(format!(
                "{reference}: the registry served a manifest with digest {digest}, not the {wanted} it was asked for; the registry or the network altered it"
            )));
        }
        Ok(FetchedManifest { digest, bytes })
    }

    fn pick_platform(&self, index: &[u8]) -> Result<String, OciError> {
        let wanted = self.platform.clone().unwrap_or_else(running_platform);
        pick_platform(index, &wanted)
            .map_err(|why| OciError::Content(format!("{}: {why}", self.reference)))
    }
}

/// Retries of a manifest GET answered 429 or 5xx, or cut off: the same
/// backoff as a blob's (200 ms, 400 ms, 600 ms), all within `--timeout`.
/// `Retry-After` is not read: a registry must not hold the pod past its
/// deadline, and the backoff is already short.
const MANIFEST_RETRIES: u32 = 3;

/// Largest manifest or index read: the OCI distribution spec's 4 MiB
/// (registries should accept at least that much, and need not more). The
/// read stops one byte past it, whatever the answer's headers say.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The `realm` of a `Bearer` challenge (`Bearer realm="...",service=...`).
pub fn bearer_realm(challenge: &str) -> Option<String> {
    super::http::realm_of(challenge)
}

/// [`trusted_roots`] in reqwest's form: what HTTPS to a registry, or to a
/// Sigstore service (`attest --sigstore`), is checked against.
pub fn https_roots(ca_files: &[PathBuf]) -> Result<Vec<reqwest::Certificate>, OciError> {
    reqwest_roots(&trusted_roots(ca_files)?)
}

/// The roots in reqwest's form.
fn reqwest_roots(roots: &[Certificate]) -> Result<Vec<reqwest::Certificate>, OciError> {
    let mut certs = Vec::with_capacity(roots.len());
    for root in roots {
        let cert = match root.encoding {
            CertificateEncoding::Der => reqwest::Certificate::from_der(&root.data),
            CertificateEncoding::Pem => reqwest::Certificate::from_pem(&root.data),
        }
        .map_err(|e| OciError::Usage(format!("a CA certificate cannot be used: {e}")))?;
        certs.push(cert);
    }
    Ok(certs)
}

/// The system's CA bundle, when the machine has one: `$SSL_CERT_FILE`, else
/// Debian's and Red Hat's usual paths. A `scratch` image has none.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The roots registry HTTPS is checked against: Mozilla's roots built into
/// the binary (webpki-root-certs), the system bundle if there is one, and
/// every `--ca-file` (a file may hold several certificates).
pub fn trusted_roots(ca_files: &[PathBuf]) -> Result<Vec<Certificate>, OciError> {
    let mut roots: Vec<Certificate> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate {
            encoding: CertificateEncoding::Der,
            data: der.to_vec(),
        })
        .collect();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .or_else(|| {
            SYSTEM_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        });
    if let Some(path) = system
        && let Ok(data) = crate::io::read_bounded("CA bundle", &path, crate::io::MAX_KEY_BYTES * 4)
    {
        roots.extend(pem_certificates(&data));
    }
    for path in ca_files {
        let data = crate::io::read_bounded("CA file", path, crate::io::MAX_KEY_BYTES)
            .map_err(|e| OciError::Usage(e.to_string()))?;
        let found = pem_certificates(&data);
        if found.is_empty() {
            return Err(OciError::Usage(format!(
                "--ca-file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                path.display()
            )));
        }
        roots.extend(found);
    }
    Ok(roots)
}

/// Each `CERTIFICATE` block of a PEM file, one root each (a bundle holds
/// many; the TLS library reads one per entry).
fn pem_certificates(data: &[u8]) -> Vec<Certificate> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let block = &rest[start..start + len + END.len()];
        out.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data: format!("{block}\n").into_bytes(),
        });
        rest = &rest[start + len + END.len()..];
    }
    out
}

/// The media type a manifest declares; a document with `manifests` and no
/// media type is an image index.
pub fn media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let head: Head = serde_json::from_slice(bytes).ok()?;
    match head.media_type {
        Some(mt) if mt == "application/vnd.docker.distribution.manifest.list.v2+json" => {
            Some(IMAGE_INDEX.into())
        }
        Some(mt) => Some(mt),
        None if head.manifests.is_some() => Some(IMAGE_INDEX.into()),
        None => None,
    }
}

/// Why an image index gives no manifest to pull for a platform.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The index is not JSON of an image index's shape.
    #[error("the image index is malformed: {0}")]
    Malformed(serde_json::Error),
    /// No manifest is for the platform.
    #[error("the image index has no manifest for platform {wanted}; pick one with --platform")]
    Missing {
        /// The platform (`os/arch[/variant]`).
        wanted: String,
    },
    /// The platform's manifest is named by another digest than SHA-256.
    #[error("the image index names digest {digest:?}, not sha256:<64 hex digits>")]
    Digest {
        /// The digest as written.
        digest: String,
    },
}

/// The digest of the manifest for platform `wanted` (`os/arch[/variant]`)
/// in an image index, or why there is none.
pub fn pick_platform(index: &[u8], wanted: &str) -> Result<String, PlatformError> {
    #[derive(Deserialize)]
    struct Index {
        manifests: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        digest: String,
        #[serde(default)]
        platform: Option<Platform>,
    }
    #[derive(Deserialize)]
    struct Platform {
        os: String,
        architecture: String,
        #[serde(default)]
        variant: Option<String>,
    }
    let doc: Index = serde_json::from_slice(index).map_err(PlatformError::Malformed)?;
    let found = doc.manifests.iter().find(|m| {
        m.platform.as_ref().is_some_and(|p| {
            let name = match &p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            };
            name == wanted || format!("{}/{}", p.os, p.architecture) == wanted
        })
    });
    let entry = found.ok_or_else(|| PlatformError::Missing {
        wanted: wanted.to_string(),
    })?;
    if !super::layout::is_sha256_digest(&entry.digest) {
        return Err(PlatformError::Digest {
            digest: entry.digest.clone(),
        });
    }
    Ok(entry.digest.clone())
}

/// `linux/amd64`, `linux/arm64`, ... for the running binary.
pub fn running_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_roots_are_there_without_any_ca_file_on_the_machine() {
        let roots = trusted_roots(&[]).unwrap();
        assert!(roots.len() > 100, "{} roots", roots.len());
        // ISRG Root X1 (Let's Encrypt) is among the bundled ones.
        let isrg = b"ISRG Root X1";
        assert!(roots.iter().any(|c| {
            matches!(c.encoding, CertificateEncoding::Der)
                && c.data.windows(isrg.len()).any(|w| w == isrg)
        }));
    }

    #[test]
    fn the_realm_of_a_bearer_challenge_is_read() {
        assert_eq!(
            bearer_realm(r#"Bearer realm="http://t/token",service="s",scope="repository:a:pull""#)
                .as_deref(),
            Some("http://t/token")
        );
        assert_eq!(bearer_realm(r#"Basic realm="x""#), None);
        assert_eq!(bearer_realm(""), None);
    }

    #[test]
    fn a_pem_bundle_gives_one_root_per_certificate() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bundle = format!("# comment\n{one}junk\n{one}");
        assert_eq!(pem_certificates(bundle.as_bytes()).len(), 2);
        assert!(pem_certificates(b"not a certificate").is_empty());
    }
}
