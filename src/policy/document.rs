//! The `ModelPolicy` document as written (YAML or JSON), parsed strictly
//! (unknown fields are errors) and compiled into a checked [`Policy`].

use std::path::{Path, PathBuf};

use glob::Pattern;
use serde::Deserialize;

use super::{
    API_VERSION, Authority, GpuRequirement, KIND, LibraryPin, Mode, Policy, Rule, VersionRange,
};
use crate::node::DriverVersion;
use crate::node::gpu::{LIBRARY_FAMILIES, is_driver_library};
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
    pub(super) fn compile(self, base: &Path) -> Result<Policy, String> {
        if self.api_version != API_VERSION || self.kind != KIND {
            return Err(format!(
                "expected apiVersion {API_VERSION} and kind {KIND}, found {} {}",
                self.api_version, self.kind
            ));
        }
        if self.spec.models.is_empty() {
            return Err(
                "spec.models is empty: a policy that matches no model trusts nothing".into(),
            );
        }
        let mut rules: Vec<Rule> = Vec::new();
        for (i, doc) in self.spec.models.into_iter().enumerate() {
            let at = format!("spec.models[{i}] ({})", doc.name);
            if rules.iter().any(|r| r.name == doc.name) {
                return Err(format!("{at}: rule name {:?} is used twice", doc.name));
            }
            rules.push(
                doc.compile(base, self.spec.mode)
                    .map_err(|e| format!("{at}: {e}"))?,
            );
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
            .map_err(|e| format!("spec.gpu.{e}"))?;
        Ok(Policy {
            name,
            rules,
            allowed_registries: self.spec.allowed_registries,
            gpu,
        })
    }
}

impl GpuDoc {
    /// Errors start with the field they are about, below `spec.gpu.`.
    fn compile(self) -> Result<GpuRequirement, String> {
        let driver_version = self.driver_version.map(RangeDoc::compile).transpose()?;
        let mut libraries: Vec<LibraryPin> = Vec::new();
        for (i, lib) in self.libraries.into_iter().enumerate() {
            let at = format!("libraries[{i}]");
            if !is_driver_library(&lib.name) {
                return Err(format!(
                    "{at}.name: {:?} is not a driver library modelgate measures (a file name starting with one of {})",
                    lib.name,
                    LIBRARY_FAMILIES.join(", ")
                ));
            }
            if libraries.iter().any(|l| l.name == lib.name) {
                return Err(format!("{at}.name: {:?} is listed twice", lib.name));
            }
            let sha256 = lib.sha256.to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{at}.sha256: {:?} is not 64 hex digits (sha256sum's output, without a sha256: prefix)",
                    lib.sha256
                ));
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
    fn compile(self) -> Result<VersionRange, String> {
        let version = |what: &str, v: Option<String>| {
            v.map(|text| {
                DriverVersion::parse(&text).ok_or_else(|| {
                    format!(
                        "driverVersion.{what}: {text:?} is not a version of dot-separated numbers, such as \"535.104.05\""
                    )
                })
            })
            .transpose()
        };
        let range = VersionRange {
            min: version("min", self.min)?,
            max: version("max", self.max)?,
        };
        match (&range.min, &range.max) {
            (None, None) => {
                Err("driverVersion: give min (inclusive), max (exclusive) or both".into())
            }
            (Some(min), Some(max)) if min >= max => Err(format!(
                "driverVersion: min {min} is not below max {max}, so no driver is allowed (min is inclusive, max exclusive)"
            )),
            _ => Ok(range),
        }
    }
}

impl RuleDoc {
    fn compile(self, base: &Path, default_mode: Mode) -> Result<Rule, String> {
        let patterns = |what: &str, list: &[String]| {
            list.iter()
                .map(|p| Pattern::new(p).map_err(|e| format!("{what}: bad glob {p:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let names = patterns("match.names", &self.matches.names)?;
        let repositories = patterns("match.repositories", &self.matches.repositories)?;
        if names.is_empty() && repositories.is_empty() {
            return Err("match names no model (use names: [\"*\"] to match every model)".into());
        }
        if self.authorities.is_empty() {
            return Err("authorities is empty: a rule must name who may sign".into());
        }
        let mut authorities: Vec<Authority> = Vec::new();
        for a in self.authorities {
            if authorities.iter().any(|b| b.name == a.name) {
                return Err(format!("authority name {:?} is used twice", a.name));
            }
            let name = a.name.clone();
            authorities.push(
                a.compile(base)
                    .map_err(|e| format!("authority {name}: {e}"))?,
            );
        }
        let count = self.count.unwrap_or(1);
        if count == 0 || count > authorities.len() {
            return Err(format!(
                "count is {count}, but must be between 1 and the {} authorities",
                authorities.len()
            ));
        }
        let root_digest = self
            .root_digest
            .map(|d| {
                d.strip_prefix("sha256:")
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| format!("rootDigest {d:?} is not sha256:<64 hex digits>"))
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
    fn compile(self, base: &Path) -> Result<Authority, String> {
        if self.ctlog.is_some() && self.key.is_none() {
            return Err(
                "ctlog goes with a key authority (keyless signatures are always checked against their log)"
                    .into(),
            );
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
                            .map_err(|e| format!("ctlog.trustedRoot: {e}"))?;
                        Some(Box::new(root))
                    }
                };
                TrustedMaterial::Keys {
                    keys: vec![PublicKey::from_pem(&pem).map_err(|e| format!("key: {e}"))?],
                    transparency,
                }
            }
            (None, Some(keyless), None) => {
                if keyless.identities.is_empty() {
                    return Err("keyless.identities is empty: name who may sign".into());
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
                let root =
                    sigstore::trusted_root(root_json.as_deref()).map_err(|e| e.to_string())?;
                TrustedMaterial::Sigstore(Box::new(Keyless { root, identities }))
            }
            (None, None, Some(cert)) => {
                if cert.anchors.is_empty() {
                    return Err("certificate.anchors is empty".into());
                }
                let mut anchors = Vec::new();
                for source in cert.anchors {
                    let pem = source.read(base, "certificate.anchors")?;
                    anchors.extend(
                        Certificate::from_pem_bundle(pem.as_bytes())
                            .map_err(|e| format!("certificate.anchors: {e}"))?,
                    );
                }
                TrustedMaterial::Certificates {
                    anchors,
                    allow_expired: cert.allow_expired,
                }
            }
            _ => return Err("give exactly one of key, keyless or certificate".into()),
        };
        Ok(Authority {
            name: self.name,
            trust,
        })
    }
}

impl IdentityDoc {
    fn compile(self) -> Result<Identity, String> {
        let one = |what: &str, exact: Option<String>, re: Option<String>| match (exact, re) {
            (Some(e), None) => Ok(Matcher::Exact(e)),
            (None, Some(r)) => Matcher::regex(&r).map_err(|e| e.to_string()),
            _ => Err(format!(
                "an identity needs exactly one of {what} and {what}RegExp"
            )),
        };
        Ok(Identity {
            subject: one("subject", self.subject, self.subject_reg_exp)?,
            issuer: one("issuer", self.issuer, self.issuer_reg_exp)?,
        })
    }
}

impl Source {
    fn read(self, base: &Path, what: &str) -> Result<String, String> {
        match (self.data, self.path) {
            (Some(data), None) => Ok(data),
            (None, Some(path)) => {
                let full = base.join(path);
                let bytes =
                    crate::io::read_bounded("policy reference", &full, crate::io::MAX_KEY_BYTES)
                        .map_err(|e| format!("{what}: {e}"))?;
                String::from_utf8(bytes)
                    .map_err(|_| format!("{what}: {} is not text", full.display()))
            }
            _ => Err(format!("{what}: give exactly one of data or path")),
        }
    }
}
