//! `oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]`: where a model lives in
//! a registry. Parsed strictly, before any request: the registry must be
//! named (no implicit Docker Hub), the digest must be SHA-256, and an
//! allow-list of registries is checked here, so a refused reference never
//! reaches the network.

use std::fmt;

use oci_client::Reference;

use crate::model::Digest;

/// The scheme that marks a model argument as a registry reference.
pub const SCHEME: &str = "oci://";

/// A parsed model reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    inner: Reference,
    /// The reference as the user wrote it (without the scheme).
    written: String,
}

/// Why a reference cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Not an `oci://` reference, or not a valid one.
    #[error(
        "{reference}: not a valid OCI reference ({why}); write oci://REGISTRY/REPOSITORY:TAG or oci://REGISTRY/REPOSITORY@sha256:DIGEST"
    )]
    Invalid {
        /// The argument.
        reference: String,
        /// What is wrong.
        why: String,
    },
    /// The registry is not on the allow-list.
    #[error(
        "{reference}: registry {registry} is not allowed (allowed: {allowed}); add it with --allowed-registry, or pull from an allowed registry"
    )]
    NotAllowed {
        /// The argument.
        reference: String,
        /// The registry it names.
        registry: String,
        /// The allow-list.
        allowed: String,
    },
    /// The policy requires a digest and the reference has only a tag.
    #[error(
        "{reference}: the policy rule {rule} requires a digest reference (oci://...@sha256:...), and a tag can be moved to other content; pin the digest"
    )]
    TagNotAllowed {
        /// The argument.
        reference: String,
        /// The rule that requires digests.
        rule: String,
    },
}

impl ModelRef {
    /// Whether a model argument is a registry reference.
    pub fn is_oci(arg: &str) -> bool {
        arg.starts_with(SCHEME)
    }

    /// Parses `oci://...`.
    pub fn parse(arg: &str) -> Result<Self, RefError> {
        let invalid = |why: &str| RefError::Invalid {
            reference: arg.to_string(),
            why: why.to_string(),
        };
        let rest = arg
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid("it does not start with oci://"))?;
        let first = rest.split('/').next().unwrap_or_default();
        let names_registry = rest.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        if !names_registry {
            return Err(invalid(
                "it names no registry; the registry must be explicit (for Docker Hub, oci://docker.io/...)",
            ));
        }
        let inner = Reference::try_from(rest).map_err(|e| invalid(&e.to_string()))?;
        if let Some(digest) = inner.digest() {
            if !digest.starts_with("sha256:") {
                return Err(invalid("only sha256 digests are supported"));
            }
            if Digest::parse(digest).is_none() {
                return Err(invalid("the digest is not sha256:<64 hex digits>"));
            }
        }
        // A reference without a tag or digest means `latest`, as every
        // client reads it; say so by writing it.
        Ok(Self {
            inner,
            written: rest.to_string(),
        })
    }

    /// The registry host (and port).
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The repository path.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// `registry/repository`, what a policy's `match.repositories` globs see.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry(), self.repository())
    }

    /// The model's name, as a folder pulled from it would be named: the
    /// repository's last component (for policy `match.names` and signing).
    pub fn model_name(&self) -> &str {
        self.repository().rsplit('/').next().unwrap_or_default()
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The same repository at `digest`: every request after the first
    /// manifest uses this, so a tag moved meanwhile changes nothing.
    pub fn pinned(&self, digest: &str) -> Self {
        Self {
            inner: Reference::with_digest(
                self.registry().to_string(),
                self.repository().to_string(),
                digest.to_string(),
            ),
            written: self.written.clone(),
        }
    }

    /// The reference as the registry knows it: `oci://registry/repository`
    /// with its digest, else its tag.
    pub fn canonical(&self) -> String {
        match (self.digest(), self.tag()) {
            (Some(d), _) => format!("{SCHEME}{}/{}@{d}", self.registry(), self.repository()),
            (None, Some(t)) => format!("{SCHEME}{}/{}:{t}", self.registry(), self.repository()),
            (None, None) => format!("{SCHEME}{}/{}", self.registry(), self.repository()),
        }
    }

    /// The reference for the oci-client library.
    pub fn as_client_ref(&self) -> &Reference {
        &self.inner
    }

    /// Refuses a registry that is not on `allowed` (when the list is not
    /// empty). Names compare exactly, port included: no wildcards.
    pub fn check_allowed(&self, allowed: &[String]) -> Result<(), RefError> {
        if allowed.is_empty() || allowed.iter().any(|a| a == self.registry()) {
            return Ok(());
        }
        Err(RefError::NotAllowed {
            reference: self.to_string(),
            registry: self.registry().to_string(),
            allowed: allowed.join(", "),
        })
    }

    /// Refuses a reference without a digest when `rule` requires one.
    pub fn check_digest_required(&self, rule: &str) -> Result<(), RefError> {
        if self.digest().is_some() {
            return Ok(());
        }
        Err(RefError::TagNotAllowed {
            reference: self.to_string(),
            rule: rule.to_string(),
        })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_strictly() {
        let r = ModelRef::parse("oci://registry.example.com:5000/models/llama:v1").unwrap();
        assert_eq!(r.registry(), "registry.example.com:5000");
        assert_eq!(r.repository(), "models/llama");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.name(), "registry.example.com:5000/models/llama");
        let digest = format!("sha256:{}", "ab".repeat(32));
        let d = ModelRef::parse(&format!("oci://127.0.0.1:5000/m@{digest}")).unwrap();
        assert_eq!(d.digest(), Some(digest.as_str()));
        let both = ModelRef::parse(&format!("oci://localhost/m:v1@{digest}")).unwrap();
        assert_eq!(
            (both.tag(), both.digest()),
            (Some("v1"), Some(digest.as_str()))
        );
        for bad in [
            "registry.example.com/m:v1",
            "oci://llama:v1",
            "oci://models/llama:v1",
            "oci://registry.example.com/Upper:v1",
            "oci://registry.example.com/m@sha512:abcd",
            "oci://registry.example.com/m@sha256:abcd",
            "oci://registry.example.com/m:bad tag",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn the_allow_list_and_digest_requirement_refuse_before_any_request() {
        let r = ModelRef::parse("oci://evil.example.com/m:v1").unwrap();
        assert!(r.check_allowed(&[]).is_ok());
        let err = r
            .check_allowed(&["registry.example.com".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("registry evil.example.com is not allowed"),
            "{err}"
        );
        // No wildcards, no suffix matching, the port counts.
        assert!(r.check_allowed(&["example.com".into()]).is_err());
        let p = ModelRef::parse("oci://registry.example.com:443/m:v1").unwrap();
        assert!(p.check_allowed(&["registry.example.com".into()]).is_err());
        let err = r.check_digest_required("prod").unwrap_err().to_string();
        assert!(err.contains("requires a digest reference"), "{err}");
    }
}
