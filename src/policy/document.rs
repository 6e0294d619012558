//! The `ModelPolicy` document as written (YAML or JSON), parsed strictly
//! (unknown fields are errors) and compiled into a checked [`Policy`].

use std::path::{Path, PathBuf};

use glob::Pattern;
use serde::Deserialize;

use super::error::{AuthorityError, DocumentError, GpuError, RuleError, SourceError};
use super::{
    API_VERSION, Authority, GpuRequirement, KIND, LibraryPin, Mode, Policy, Rule, VersionRange,
};
use crate::model::Digest;
use crate::node::DriverVersion;
use crate::node::gpu::is_driver_library;
use crate::trust::sigstore::{self, Identity, Keyless, Matcher};
use crate::trust::{Certificate, PublicKey, TrustedMaterial};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Doc {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: Spec,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    allowed_registries: Vec<String>,
    models: Vec<RuleDoc>,
    gpu: Option<GpuDoc>,
}

/// `spec.gpu`: what the GPU pathway under every model must be.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GpuDoc {
    #[serde(default)]
    required: bool,
    driver_version: Option<RangeDoc>,
    #[serde(default)]
    libraries: Vec<LibraryDoc>,
}

/// `min` inclusive, `max` exclusive, as strings (`"535.104.05"`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeDoc {
    min: Option<String>,
    max: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LibraryDoc {
    name: String,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleDoc {
    name: String,
    #[serde(rename = "match")]
    matches: MatchDoc,
    authorities: Vec<AuthorityDoc>,
    count: Option<usize>,
    #[serde(default)]
    require_covered: Vec<String>,
    root_digest: Option<String>,
    #[serde(default)]
    allow_unsigned_files: bool,
    mode: Option<Mode>,
    #[serde(default)]
    allow_legacy_format: bool,
    #[serde(default)]
    require_digest: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchDoc {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    repositories: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorityDoc {
    name: String,
    key: Option<Source>,
    keyless: Option<KeylessDoc>,
    certificate: Option<CertificateDoc>,
    /// policy-controller's name for "verify against a Rekor instance": with
    /// a key, transparency-log evidence is then required.
    ctlog: Option<CtlogDoc>,
}

/// `ctlog`: the trusted root whose transparency logs must have logged a
/// key signature (offline: the root, not a URL). Empty: the embedded
/// Sigstore public-good root.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CtlogDoc {
    trusted_root: Option<Source>,
}

/// Inline PEM/JSON (`data`) or a file (`path`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    data: Option<String>,
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeylessDoc {
    identities: Vec<IdentityDoc>,
    trusted_root: Option<Source>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IdentityDoc {
    issuer: Option<String>,
    subject: Option<String>,
    issuer_reg_exp: Option<String>,
    subject_reg_exp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CertificateDoc {
    anchors: Vec<Source>,
    #[serde(default)]
    allow_expired: bool,
}

impl Doc {
    pub(super) fn compile(self, base: &Path) -> Result<Policy, DocumentError> {
        if self.api_version != API_VERSION || self.kind != KIND {
            return Err(DocumentError::Kind {
                api_version: self.api_version,
                kind: self.kind,
            });
        }
        if self.spec.models.is_empty() {
            return Err(DocumentError::NoModels);
        }
        let mut rules: Vec<Rule> = Vec::new();
        for (index, doc) in self.spec.models.into_iter().enumerate() {
            let name = doc.name.clone();
            if rules.iter().any(|r| r.name == name) {
                return Err(DocumentError::DuplicateRule { index, name });
            }
            rules.push(doc.compile(base, self.spec.mode).map_err(|source| {
                DocumentError::Rule {
                    index,
                    name,
                    source: Box::new(source),
                }
            })?);
        }
        let name = if self.metadata.name.is_empty() {
            "unnamed".into()
        } else {
            self.metadata.name
        };
        let gpu = self
            .spec
            .gpu
            .map(GpuDoc::compile)
            .transpose()
            .map_err(DocumentError::Gpu)?;
        Ok(Policy {
            name,
            rules,
            allowed_registries: self.spec.allowed_registries,
            gpu,
        })
    }
}

impl GpuDoc {
    fn compile(self) -> Result<GpuRequirement, GpuError> {
        let driver_version = self.driver_version.map(RangeDoc::compile).transpose()?;
        let mut libraries: Vec<LibraryPin> = Vec::new();
        for (index, lib) in self.libraries.into_iter().enumerate() {
            if !is_driver_library(&lib.name) {
                return Err(GpuError::NotDriverLibrary {
                    index,
                    name: lib.name,
                });
            }
            if libraries.iter().any(|l| l.name == lib.name) {
                return Err(GpuError::DuplicateLibrary {
                    index,
                    name: lib.name,
                });
            }
            let sha256 = lib.sha256.to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(GpuError::NotHex {
                    index,
                    value: lib.sha256,
                });
            }
            libraries.push(LibraryPin {
                name: lib.name,
                sha256,
            });
        }
        Ok(GpuRequirement {
            required: self.required,
            driver_version,
            libraries,
        })
    }
}

impl RangeDoc {
    fn compile(self) -> Result<VersionRange, GpuError> {
        let version = |bound: &'static str, v: Option<String>| {
            v.map(|text| DriverVersion::parse(&text).ok_or(GpuError::NotVersion { bound, text }))
                .transpose()
        };
        let range = VersionRange {
            min: version("min", self.min)?,
            max: version("max", self.max)?,
        };
        match (&range.min, &range.max) {
            (None, None) => Err(GpuError::NoBound),
            (Some(min), Some(max)) if min >= max => Err(GpuError::EmptyRange {
                min: min.clone(),
                max: max.clone(),
            }),
            _ => Ok(range),
        }
    }
}

impl RuleDoc {
    fn compile(self, base: &Path, default_mode: Mode) -> Result<Rule, RuleError> {
        let patterns = |field: &'static str, list: &[String]| {
            list.iter()
                .map(|p| {
                    Pattern::new(p).map_err(|source| RuleError::Glob {
                        field,
                        pattern: p.clone(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let names = patterns("match.names", &self.matches.names)?;
        let repositories = patterns("match.repositories", &self.matches.repositories)?;
        if names.is_empty() && repositories.is_empty() {
            return Err(RuleError::NoMatch);
        }
        if self.authorities.is_empty() {
            return Err(RuleError::NoAuthorities);
        }
        let mut authorities: Vec<Authority> = Vec::new();
        for a in self.authorities {
            if authorities.iter().any(|b| b.name == a.name) {
                return Err(RuleError::DuplicateAuthority { name: a.name });
            }
            let name = a.name.clone();
            authorities.push(a.compile(base).map_err(|source| RuleError::Authority {
                name,
                source: Box::new(source),
            })?);
        }
        let count = self.count.unwrap_or(1);
        if count == 0 || count > authorities.len() {
            return Err(RuleError::Count {
                count,
                authorities: authorities.len(),
            });
        }
        let root_digest = self
            .root_digest
            .map(|value| match Digest::parse(&value) {
                Some(d) => Ok(d.0),
                None => Err(RuleError::RootDigest { value }),
            })
            .transpose()?;
        Ok(Rule {
            name: self.name,
            names,
            repositories,
            authorities,
            count,
            require_covered: patterns("requireCovered", &self.require_covered)?,
            root_digest,
            allow_unsigned_files: self.allow_unsigned_files,
            mode: self.mode.unwrap_or(default_mode),
            allow_legacy_format: self.allow_legacy_format,
            require_digest: self.require_digest,
        })
    }
}

impl AuthorityDoc {
    fn compile(self, base: &Path) -> Result<Authority, AuthorityError> {
        if self.ctlog.is_some() && self.key.is_none() {
            return Err(AuthorityError::CtlogWithoutKey);
        }
        let trust = match (self.key, self.keyless, self.certificate) {
            (Some(key), None, None) => {
                let pem = key.read(base, "key")?;
                let transparency = match self.ctlog {
                    None => None,
                    Some(ctlog) => {
                        let json = ctlog
                            .trusted_root
                            .map(|s| s.read(base, "ctlog.trustedRoot"))
                            .transpose()?;
                        let root = sigstore::trusted_root(json.as_deref())
                            .map_err(AuthorityError::CtlogRoot)?;
                        Some(Box::new(root))
                    }
                };
                TrustedMaterial::Keys {
                    keys: vec![PublicKey::from_pem(&pem).map_err(AuthorityError::Key)?],
                    transparency,
                }
            }
            (None, Some(keyless), None) => {
                if keyless.identities.is_empty() {
                    return Err(AuthorityError::NoIdentities);
                }
                let identities = keyless
                    .identities
                    .into_iter()
                    .map(IdentityDoc::compile)
                    .collect::<Result<_, _>>()?;
                let root_json = keyless
                    .trusted_root
                    .map(|s| s.read(base, "keyless.trustedRoot"))
                    .transpose()?;
                let root = sigstore::trusted_root(root_json.as_deref())
                    .map_err(AuthorityError::KeylessRoot)?;
                TrustedMaterial::Sigstore(Box::new(Keyless { root, identities }))
            }
            (None, None, Some(cert)) => {
                if cert.anchors.is_empty() {
                    return Err(AuthorityError::NoAnchors);
                }
                let mut anchors = Vec::new();
                for source in cert.anchors {
                    let pem = source.read(base, "certificate.anchors")?;
                    anchors.extend(
                        Certificate::from_pem_bundle(pem.as_bytes())
                            .map_err(AuthorityError::Anchors)?,
                    );
                }
                TrustedMaterial::Certificates {
                    anchors,
                    allow_expired: cert.allow_expired,
                }
            }
            _ => return Err(AuthorityError::NotOneKind),
        };
        Ok(Authority {
            name: self.name,
            trust,
        })
    }
}

impl IdentityDoc {
    fn compile(self) -> Result<Identity, AuthorityError> {
        let one = |field: &'static str, exact: Option<String>, re: Option<String>| match (exact, re)
        {
            (Some(e), None) => Ok(Matcher::Exact(e)),
            (None, Some(r)) => Matcher::regex(&r).map_err(AuthorityError::IdentityRegex),
            _ => Err(AuthorityError::IdentityField { field }),
        };
        Ok(Identity {
            subject: one("subject", self.subject, self.subject_reg_exp)?,
            issuer: one("issuer", self.issuer, self.issuer_reg_exp)?,
        })
    }
}

impl Source {
    fn read(self, base: &Path, field: &'static str) -> Result<String, SourceError> {
        match (self.data, self.path) {
            (Some(data), None) => Ok(data),
            (None, Some(path)) => {
                let full = base.join(path);
                let bytes =
                    crate::io::read_bounded("policy reference", &full, crate::io::MAX_KEY_BYTES)
                        .map_err(|source| SourceError::Read { field, source })?;
                String::from_utf8(bytes).map_err(|_| SourceError::NotText { field, path: full })
            }
            _ => Err(SourceError::NotOne { field }),
        }
    }
}
