//! Keyless signing through a Sigstore instance, for CI: an ephemeral P-256
//! key, a certificate from Fulcio for the machine's OIDC identity, the DSSE
//! signature over the statement, its entry in Rekor (and an RFC 3161
//! timestamp when the instance has a timestamp authority), assembled as a
//! bundle v0.3.
//!
//! The protocol work is sigstore-rust's `sigstore-sign` (the same family and
//! version as the `sigstore-verify` that checks signatures): its
//! `Signer::sign_raw_statement` makes exactly the DSSE bundle with a Rekor
//! v1 `dsse` entry that model_signing makes. What is modelgate's own: where
//! the token comes from ([`token`]), which services are used (a SigningConfig
//! v0.2, [`Services`]), the HTTP client every request goes through (HTTPS
//! only, modelgate's CA roots, no redirects, the `--timeout`), and the
//! errors, which name the service and never the token. Whether the bundle
//! is trusted is decided a layer up, by the same check `verify` makes,
//! before anything is written.

pub mod token;

use std::time::Duration;

use sigstore_sign::rekor::RekorApiVersion;
use sigstore_sign::{SigningContext, SigningServices};
use sigstore_trust_root::SigningConfig;

pub use token::TokenSource;

/// Sigstore's public-good production SigningConfig v0.2, embedded: the one
/// shipped in sigstore-trust-root 0.15.1 (crates.io), the release whose
/// trusted root `trust::sigstore` embeds; copied on 2026-12-02. It names
/// Fulcio, Rekor v1 and the timestamp authority at sigstore.dev.
pub const PRODUCTION_SIGNING_CONFIG: &str = include_str!("sigstore-production-signing-config.json");

/// Longest service error quoted in a message.
const MAX_ERROR_BODY: usize = 512;

/// Why a keyless signature could not be made. Nothing is written then.
#[derive(Debug, thiserror::Error)]
pub enum KeylessError {
    /// No identity token anywhere modelgate looks.
    #[error(
        "--sigstore needs an OIDC identity token and none was found: pass --identity-token or --identity-token-file, set SIGSTORE_ID_TOKEN, or on GitHub Actions give the job `permissions: id-token: write`"
    )]
    NoToken,
    /// The token is unusable.
    #[error("the identity token from {origin} cannot be used: {reason}")]
    Token {
        /// Where it came from.
        origin: &'static str,
        /// Why (never its text).
        reason: String,
    },
    /// The token's `exp` is past.
    #[error(
        "the identity token from {origin} expired at {expired} (now {now}); CI tokens live minutes: request a fresh one right before signing"
    )]
    TokenExpired {
        /// Where it came from.
        origin: &'static str,
        /// Its `exp`.
        expired: String,
        /// The time now.
        now: String,
    },
    /// GitHub Actions did not hand out a token.
    #[error("requesting an identity token from {url} failed: {reason}")]
    TokenRequest {
        /// The request URL, without its query.
        url: String,
        /// Why.
        reason: String,
    },
    /// The SigningConfig cannot be used.
    #[error("signing config {origin}: {reason}")]
    SigningConfig {
        /// Its file, or "embedded".
        origin: String,
        /// Why.
        reason: String,
    },
    /// Fulcio did not issue a certificate.
    #[error("Fulcio at {url} did not issue a signing certificate: {reason}")]
    Fulcio {
        /// Its base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Rekor did not log the entry.
    #[error("Rekor at {url} did not log the signature: {reason}")]
    Rekor {
        /// Its base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The timestamp authority did not answer with a timestamp.
    #[error("the timestamp authority at {url} did not timestamp the signature: {reason}")]
    Tsa {
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Anything else sigstore-sign refused (a key, a statement).
    #[error("keyless signing failed: {0}")]
    Signing(String),
    /// The HTTP client could not be set up.
    #[error("cannot set up HTTPS for the Sigstore services: {0}")]
    Client(String),
    /// The whole keyless signing took longer than `--timeout`.
    #[error(
        "keyless signing (token, Fulcio, Rekor{tsa}) did not finish within {secs}s (--timeout); nothing was written"
    )]
    Timeout {
        /// The limit.
        secs: u64,
        /// ", timestamp authority" when one is used.
        tsa: &'static str,
    },
}

/// The Sigstore services a signature is made with, from a SigningConfig.
#[derive(Clone, Debug)]
pub struct Services {
    /// Fulcio's base URL.
    pub fulcio: String,
    /// Rekor's base URL.
    pub rekor: String,
    /// Rekor's major API version (1 or 2).
    pub rekor_version: u32,
    /// The RFC 3161 timestamp authority, if the config names one.
    pub tsa: Option<String>,
}

impl Services {
    /// The public-good instance ([`PRODUCTION_SIGNING_CONFIG`]).
    pub fn production() -> Result<Self, KeylessError> {
        Self::from_signing_config(PRODUCTION_SIGNING_CONFIG, "embedded (sigstore.dev)")
    }

    /// The services a SigningConfig v0.2 names, valid now: its Fulcio, its
    /// newest Rekor, its timestamp authority if any. A config that asks for
    /// more than one log or TSA (`selector` ALL or EXACT > 1) is refused by
    /// name, as sigstore-sign refuses it, rather than half honoured.
    pub fn from_signing_config(json: &str, origin: &str) -> Result<Self, KeylessError> {
        let fail = |reason: String| KeylessError::SigningConfig {
            origin: origin.to_string(),
            reason,
        };
        let config = SigningConfig::from_json(json)
            .map_err(|e| fail(format!("not a Sigstore SigningConfig v0.2: {e}")))?;
        let fulcio = config
            .fulcio_url()
            .ok_or_else(|| fail("it names no Fulcio (caUrls) valid now".into()))?
            .url
            .clone();
        let rekor = config
            .rekor_url(None)
            .ok_or_else(|| fail("it names no Rekor (rekorTlogUrls) valid now".into()))?;
        let tsa = config.tsa_url().map(|t| t.url.clone());
        let services = Self {
            fulcio,
            rekor: rekor.url.clone(),
            rekor_version: rekor.major_api_version,
            tsa,
        };
        services
            .signing_services()
            .validate()
            .map_err(|e| fail(e.to_string()))?;
        // The same single-service check sigstore-sign makes from a config.
        SigningServices::from_signing_config(&config)
            .map(|_| ())
            .or_else(|e| match e {
                // A config without a TSA is fine for Rekor v1 (validated above).
                sigstore_sign::Error::Config(sigstore_sign::ConfigError::MissingService(
                    sigstore_sign::Service::Tsa,
                )) => Ok(()),
                other => Err(fail(other.to_string())),
            })?;
        Ok(services)
    }

    fn signing_services(&self) -> SigningServices {
        let version =
            RekorApiVersion::from_major(self.rekor_version).unwrap_or(RekorApiVersion::V1);
        let services =
            SigningServices::new(&self.fulcio, &self.rekor).with_rekor(&self.rekor, version);
        match &self.tsa {
            Some(tsa) => services.with_tsa_url(tsa),
            None => services,
        }
    }
}

/// How the services are reached.
pub struct Reach {
    /// Roots HTTPS answers are checked against (modelgate's, plus `--ca-file`).
    pub roots: Vec<reqwest::Certificate>,
    /// The limit on the whole signing (token, Fulcio, Rekor, TSA).
    pub timeout: Duration,
    /// A connection that does not open within this is given up.
    pub connect_timeout: Duration,
}

/// The HTTP client every keyless request goes through: HTTPS only (the
/// identity token never crosses a network in clear), these roots only, no
/// redirects (a service that moves is a configuration to fix), and each
/// request bounded by the whole signing's limit.
fn client(reach: &Reach) -> Result<reqwest::Client, KeylessError> {
    reqwest::Client::builder()
        .tls_certs_only(reach.roots.iter().cloned())
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(reach.timeout)
        .connect_timeout(reach.connect_timeout)
        .user_agent(concat!("modelgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| KeylessError::Client(describe_http(&e)))
}

/// Signs `statement` (an in-toto statement's exact bytes) keylessly and
/// returns the bundle's JSON text. `now` is the time since the Unix epoch,
/// for the token's expiry check. The bundle is not yet checked: the caller
/// verifies it against the trusted root before writing it anywhere.
pub async fn sign_statement(
    services: &Services,
    source: Option<&TokenSource>,
    reach: &Reach,
    statement: &[u8],
    now: Duration,
) -> Result<String, KeylessError> {
    let source = source.ok_or(KeylessError::NoToken)?;
    let http = client(reach)?;
    let work = async {
        let token = source.obtain(&http, now).await?;
        let secret = token.expose_secret().to_string();
        let signer = SigningContext::new(services.signing_services())
            .with_http_client(http.clone())
            .signer(token);
        let bundle = signer
            .sign_raw_statement(statement)
            .await
            .map_err(|e| service_error(services, e, &secret))?;
        bundle
            .to_json_pretty()
            .map_err(|e| KeylessError::Signing(e.to_string()))
    };
    tokio::time::timeout(reach.timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(KeylessError::Timeout {
                secs: reach.timeout.as_secs(),
                tsa: if services.tsa.is_some() {
                    ", timestamp authority"
                } else {
                    ""
                },
            })
        })
}

/// sigstore-sign's error as the service it is about, the token scrubbed
/// from it (a service that echoes its request must not leak it into a CI
/// log) and its length bounded.
fn service_error(services: &Services, e: sigstore_sign::Error, token: &str) -> KeylessError {
    use sigstore_sign::Error as E;
    let reason = |text: String| bounded(&scrub(&text, token));
    // sigstore-rust keeps only the top line of a transport error; say what
    // it usually is.
    let unreachable = |text: String| {
        format!(
            "{}; the service cannot be reached (refused, unresolvable, too slow, or an HTTPS certificate no root vouches for: add its CA with --ca-file)",
            reason(text)
        )
    };
    match e {
        E::Fulcio(e @ sigstore_sign::fulcio::Error::Http(_)) => KeylessError::Fulcio {
            url: services.fulcio.clone(),
            reason: unreachable(e.to_string()),
        },
        E::Fulcio(e) => KeylessError::Fulcio {
            url: services.fulcio.clone(),
            reason: reason(e.to_string()),
        },
        E::Rekor(e @ sigstore_sign::rekor::Error::Http(_)) => KeylessError::Rekor {
            url: services.rekor.clone(),
            reason: unreachable(e.to_string()),
        },
        E::Rekor(e) => KeylessError::Rekor {
            url: services.rekor.clone(),
            reason: reason(e.to_string()),
        },
        E::Tsa(e @ sigstore_sign::tsa::Error::Http(_)) => KeylessError::Tsa {
            url: services.tsa.clone().unwrap_or_default(),
            reason: unreachable(e.to_string()),
        },
        E::Tsa(e) => KeylessError::Tsa {
            url: services.tsa.clone().unwrap_or_default(),
            reason: reason(e.to_string()),
        },
        other => KeylessError::Signing(reason(other.to_string())),
    }
}

/// `text` without the token or any longer part of it (a service may quote
/// the JWT's header or claims).
fn scrub(text: &str, token: &str) -> String {
    let mut secrets = vec![token.to_string()];
    secrets.extend(
        token
            .split('.')
            .filter(|p| p.len() >= 8)
            .map(str::to_string),
    );
    crate::oci::http::redact(text, &secrets)
}

fn bounded(text: &str) -> String {
    crate::oci::http::cut(text.trim(), MAX_ERROR_BODY)
}

/// A reqwest error with its causes (a TLS failure says why).
pub(crate) fn describe_http(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        text.push_str(" (timed out)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_signing_config_names_the_public_good_services() {
        let s = Services::production().unwrap();
        assert_eq!(s.fulcio, "https://fulcio.sigstore.dev");
        assert_eq!(s.rekor, "https://rekor.sigstore.dev");
        assert_eq!(s.rekor_version, 1);
        assert_eq!(
            s.tsa.as_deref(),
            Some("https://timestamp.sigstore.dev/api/v1/timestamp")
        );
    }

    #[test]
    fn service_errors_never_quote_the_token() {
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL3gifQ.c2lnbmF0dXJlc2ln";
        let text = format!("HTTP 401: bad token {token} (claims eyJpc3MiOiJodHRwczovL3gifQ)");
        let s = scrub(&text, token);
        assert!(!s.contains("eyJ"), "{s}");
        assert!(bounded(&"x".repeat(2000)).ends_with("(2000 bytes, cut)"));
    }
}
