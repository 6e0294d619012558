//! Sigstore keyless trust: the trusted root (Fulcio CAs, Rekor and CT log
//! keys, timestamp authorities) and the identity a signer must have.
//!
//! The embedded root is Sigstore's public-good production trusted root
//! (`sigstore-production-trusted-root.json`, beside this file), as Sigstore's
//! TUF repository distributes it. The copy was taken on 2026-11-23 and is
//! byte-for-byte the JSON shipped in sigstore-python 4.5.1 (PyPI) and
//! sigstore-trust-root 0.15.1 (crates.io); its newest key is the Rekor v2 log
//! valid from 2025-09-23. `--trusted-root` replaces it (a mounted ConfigMap,
//! or a private Sigstore). Nothing is fetched: verification is offline.

use regex::Regex;
use sigstore_trust_root::TrustedRoot;

/// Sigstore's public-good production trusted root, embedded.
pub const PRODUCTION_TRUSTED_ROOT: &str = include_str!("sigstore-production-trusted-root.json");

/// Why keyless trust material could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SigstoreTrustError {
    /// The trusted root JSON is not usable.
    #[error("invalid trusted root: {0}")]
    Root(String),
    /// A regular expression does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    Regex {
        /// The pattern given.
        pattern: String,
        /// Why it does not compile.
        reason: String,
    },
}

/// Matches one certificate field (identity or issuer): exactly, or by a
/// regular expression that must match the **whole** value. (cosign matches
/// a substring; anchoring means `.*@example.com` cannot be satisfied by
/// `evil@example.com.attacker.net`.)
#[derive(Clone, Debug)]
pub enum Matcher {
    /// The value must equal this string.
    Exact(String),
    /// The whole value must match this expression.
    Regex(Regex),
}

impl Matcher {
    /// An anchored regular-expression matcher.
    pub fn regex(pattern: &str) -> Result<Self, SigstoreTrustError> {
        Regex::new(&format!("^(?:{pattern})$"))
            .map(Self::Regex)
            .map_err(|e| SigstoreTrustError::Regex {
                pattern: pattern.to_string(),
                reason: e.to_string(),
            })
    }

    /// Whether `value` satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(expected) => value == expected,
            Self::Regex(re) => re.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(s) => write!(f, "{s:?}"),
            // Show the pattern as given, without the anchors we added.
            Self::Regex(re) => {
                let s = re.as_str();
                let inner = s
                    .strip_prefix("^(?:")
                    .and_then(|r| r.strip_suffix(")$"))
                    .unwrap_or(s);
                write!(f, "/{inner}/")
            }
        }
    }
}

/// One accepted keyless signer: an identity from an issuer.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The certificate's identity (its subject alternative name).
    pub subject: Matcher,
    /// The OIDC issuer in the certificate's Fulcio extension.
    pub issuer: Matcher,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} from {}", self.subject, self.issuer)
    }
}

/// What a keyless signature must satisfy.
#[derive(Clone, Debug)]
pub struct Keyless {
    /// Fulcio CAs, logs and timestamp authorities trusted.
    pub root: TrustedRoot,
    /// The signer must be one of these (never empty).
    pub identities: Vec<Identity>,
}

/// Parses a trusted root, or takes the embedded production one.
pub fn trusted_root(json: Option<&str>) -> Result<TrustedRoot, SigstoreTrustError> {
    TrustedRoot::from_json(json.unwrap_or(PRODUCTION_TRUSTED_ROOT))
        .map_err(|e| SigstoreTrustError::Root(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_matchers_are_anchored() {
        let m = Matcher::regex(".*@example\\.com").unwrap();
        assert!(m.matches("alice@example.com"));
        assert!(!m.matches("alice@example.com.attacker.net"));
        assert!(!m.matches("x-alice@example.com\n"));
        assert_eq!(m.to_string(), "/.*@example\\.com/");
        assert!(Matcher::regex("(").is_err());
    }

    #[test]
    fn the_embedded_root_parses() {
        let root = trusted_root(None).unwrap();
        assert!(!root.certificate_authorities.is_empty());
        assert!(!root.tlogs.is_empty());
    }
}
