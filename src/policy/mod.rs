//! The verification policy: which signers may sign which models, how many
//! must agree, and what the signature must cover.
//!
//! A `ModelPolicy` document (YAML or JSON, Kubernetes-style) is parsed
//! strictly (unknown fields are errors) and compiled into [`Policy`]: rules
//! with glob matchers and [`Authority`] trust material ready to use. Field
//! names follow sigstore policy-controller's ClusterImagePolicy and Kyverno
//! (`authorities`, `key`, `keyless.identities[{issuer, subject, issuerRegExp,
//! subjectRegExp}]`, `count`, `mode`) so that operators' policies carry over.
//! Nothing is trusted by default: a rule needs at least one authority, and a
//! model that no rule matches is rejected.

mod document;
mod error;
mod folder;
mod gpu;

use std::path::Path;

use glob::{MatchOptions, Pattern};
use serde::Deserialize;

use crate::io::ReadError;
use crate::model::Digest;
use crate::trust::{Certificate, TrustedMaterial};

pub use error::{AuthorityError, DocumentError, FolderError, GpuError, RuleError, SourceError};
pub use gpu::{GpuRequirement, LibraryPin, VersionRange};

/// The policy document's `apiVersion`.
pub const API_VERSION: &str = "modelgate.dev/v1alpha1";
/// The policy document's `kind`.
pub const KIND: &str = "ModelPolicy";
/// Largest policy document read (1 MiB; a policy is a few KiB).
pub const MAX_POLICY_BYTES: u64 = crate::io::MAX_KEY_BYTES;

/// What happens when verification fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The model does not start (the default).
    #[default]
    Enforce,
    /// The model starts; the failure is logged loudly and recorded as
    /// `unverified-allowed`. For rollouts only; never implied.
    Warn,
}

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("policy {path}: {reason}")]
pub struct PolicyError {
    /// The policy file.
    pub path: String,
    /// What is wrong, in words that point at the field.
    #[source]
    pub reason: PolicyReason,
}

/// Why a policy file cannot be used: it cannot be read, or its document is
/// wrong.
#[derive(Debug, thiserror::Error)]
pub enum PolicyReason {
    /// The file cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The document is not a usable `ModelPolicy`.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A folder of policy files is not one usable policy.
    #[error(transparent)]
    Folder(FolderError),
}

/// No rule of a policy matches a model; nothing is trusted by default.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no rule of policy {policy} matches model {model:?}; nothing is trusted by default: add a rule for it"
)]
pub struct NoRule {
    /// The policy's name.
    pub policy: String,
    /// The model's name.
    pub model: String,
}

/// A compiled, checked policy.
#[derive(Debug)]
pub struct Policy {
    /// `metadata.name`, or where the policy came from.
    pub name: String,
    /// Rules in document order; the first that matches a model applies.
    pub rules: Vec<Rule>,
    /// Registries models may be pulled from (`spec.allowedRegistries`,
    /// exact `host:port`); empty: any.
    pub allowed_registries: Vec<String>,
    /// What the GPU pathway under every model must be (`spec.gpu`); none:
    /// nothing is checked.
    pub gpu: Option<GpuRequirement>,
}

/// What one group of models requires.
#[derive(Debug)]
pub struct Rule {
    /// The rule's name, recorded in measurements.
    pub name: String,
    names: Vec<Pattern>,
    repositories: Vec<Pattern>,
    /// Who may sign; never empty.
    pub authorities: Vec<Authority>,
    /// How many distinct authorities must have signed (k of n).
    pub count: usize,
    /// Globs of files the signature must cover.
    pub require_covered: Vec<Pattern>,
    /// A root digest the signed manifest must have.
    pub root_digest: Option<[u8; 32]>,
    /// Whether files the signature does not list are tolerated.
    pub allow_unsigned_files: bool,
    /// Enforce or warn.
    pub mode: Mode,
    /// Accept signatures in model_signing 0.2's pre-1.0 format (for a
    /// migration window; never implied).
    pub allow_legacy_format: bool,
    /// Refuse a registry reference by tag: only `@sha256:` references.
    pub require_digest: bool,
}

/// One accepted signer: a name and its trust material.
#[derive(Debug)]
pub struct Authority {
    /// The authority's name, recorded in measurements.
    pub name: String,
    /// Keys, certificate anchors, or keyless identities.
    pub trust: TrustedMaterial,
}

impl Policy {
    /// The policy the command-line trust flags stand for: one rule matching
    /// every model, one authority, one signature required, enforced.
    pub fn single(trust: TrustedMaterial) -> Self {
        let rule = Rule {
            name: "command-line".into(),
            names: vec![Pattern::new("*").unwrap_or_default()],
            repositories: Vec::new(),
            authorities: vec![Authority {
                name: "command-line".into(),
                trust,
            }],
            count: 1,
            require_covered: Vec::new(),
            root_digest: None,
            allow_unsigned_files: false,
            mode: Mode::Enforce,
            allow_legacy_format: false,
            require_digest: false,
        };
        Self {
            name: "command-line".into(),
            rules: vec![rule],
            allowed_registries: Vec::new(),
            gpu: None,
        }
    }

    /// Reads, parses and compiles a policy file. Key, certificate and
    /// trusted-root paths in it are relative to the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let err = |reason: PolicyReason| PolicyError {
            path: path.display().to_string(),
            reason,
        };
        let bytes =
            crate::io::read_bounded("policy", path, MAX_POLICY_BYTES).map_err(|e| err(e.into()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&bytes, base).map_err(|e| err(e.into()))
    }

    /// Parses and compiles a policy document (YAML, or JSON when it starts
    /// with `{`); key, certificate and trusted-root paths in it are read
    /// relative to `base`.
    pub fn parse(bytes: &[u8], base: &Path) -> Result<Self, DocumentError> {
        if bytes.len() as u64 > MAX_POLICY_BYTES {
            return Err(DocumentError::TooLarge {
                limit: MAX_POLICY_BYTES,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| DocumentError::NotUtf8)?;
        let doc: document::Doc = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(DocumentError::Json)?
        } else {
            serde_saphyr::from_str(text).map_err(|e| DocumentError::Yaml(Box::new(e)))?
        };
        doc.compile(base)
    }

    /// The rule for a model: the first whose names (or, for a model from a
    /// registry, repositories) match.
    pub fn select(&self, model_name: &str, repository: Option<&str>) -> Result<&Rule, NoRule> {
        self.rules
            .iter()
            .find(|r| {
                r.names.iter().any(|p| p.matches(model_name))
                    || repository.is_some_and(|repo| r.repositories.iter().any(|p| p.matches(repo)))
            })
            .ok_or_else(|| NoRule {
                policy: self.name.clone(),
                model: model_name.to_string(),
            })
    }

    /// Whether a rule names `repository` in its `match.repositories`: an
    /// image from there is a model, whatever it is mounted as.
    pub fn covers_repository(&self, repository: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.repositories.iter().any(|p| p.matches(repository)))
    }

    /// A human explanation of what the policy requires.
    pub fn explain(&self) -> String {
        let mut out = format!(
            "policy {}: {} rule(s); the first rule that matches a model applies\n",
            self.name,
            self.rules.len()
        );
        if let Some(gpu) = &self.gpu {
            out.push_str(&format!("- gpu: {}\n", gpu.describe()));
        }
        for r in &self.rules {
            let list = |ps: &[Pattern]| {
                ps.iter()
                    .map(|p| p.as_str().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "- rule {} ({}):\n",
                r.name,
                if r.mode == Mode::Warn {
                    "WARN: failures are logged, the model still starts"
                } else {
                    "enforce"
                }
            ));
            if !r.names.is_empty() {
                out.push_str(&format!("    models named: {}\n", list(&r.names)));
            }
            if !r.repositories.is_empty() {
                out.push_str(&format!(
                    "    models from repositories: {}\n",
                    list(&r.repositories)
                ));
            }
            out.push_str(&format!(
                "    needs signatures from {} of {} authorities:\n",
                r.count,
                r.authorities.len()
            ));
            for a in &r.authorities {
                out.push_str(&format!("      - {}: {}\n", a.name, describe(&a.trust)));
            }
            if !r.require_covered.is_empty() {
                out.push_str(&format!(
                    "    the signature must cover: {}\n",
                    list(&r.require_covered)
                ));
            }
            if let Some(d) = r.root_digest {
                out.push_str(&format!("    pinned root digest: {}\n", Digest(d)));
            }
            if r.require_digest {
                out.push_str("    registry references: by digest only (a tag is refused)\n");
            }
            if r.allow_legacy_format {
                out.push_str("    pre-1.0 signatures (model_signing 0.2): ACCEPTED, for a migration window\n");
            }
            out.push_str(if r.allow_unsigned_files {
                "    unsigned files: tolerated (recorded)\n"
            } else {
                "    unsigned files: rejected\n"
            });
        }
        out
    }
}

impl Rule {
    /// The first pattern that no signed path matches, if any. A pattern
    /// without `/` is matched against each file's name; one with `/`
    /// against the path from the model root.
    pub fn uncovered<'a>(&'a self, signed_paths: &[&str]) -> Vec<&'a Pattern> {
        self.require_covered
            .iter()
            .filter(|p| !signed_paths.iter().any(|path| covers(p, path)))
            .collect()
    }

    /// Whether an unsigned file is one the signature was required to cover.
    pub fn requires_signature(&self, path: &str) -> bool {
        self.require_covered.iter().any(|p| covers(p, path))
    }
}

fn covers(pattern: &Pattern, path: &str) -> bool {
    let opts = MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    if pattern.as_str().contains('/') {
        pattern.matches_with(path, opts)
    } else {
        pattern.matches_with(path.rsplit('/').next().unwrap_or(path), opts)
    }
}

fn describe(trust: &TrustedMaterial) -> String {
    match trust {
        TrustedMaterial::Keys { keys, transparency } => {
            let fps: Vec<String> = keys.iter().map(|k| k.digest().to_string()).collect();
            let logged = match transparency {
                None => String::new(),
                Some(root) => {
                    let logs: Vec<&str> = root.tlogs.iter().map(|l| l.base_url.as_str()).collect();
                    format!(
                        ", with transparency-log evidence required from {}",
                        logs.join(", ")
                    )
                }
            };
            format!("key {}{logged}", fps.join(", "))
        }
        TrustedMaterial::Certificates {
            anchors,
            allow_expired,
        } => {
            let subjects: Vec<String> = anchors.iter().map(Certificate::subject).collect();
            format!(
                "certificate chaining to {}{}",
                subjects.join(", "),
                if *allow_expired {
                    " (expired leaf allowed)"
                } else {
                    ""
                }
            )
        }
        TrustedMaterial::Sigstore(k) => {
            let ids: Vec<String> = k.identities.iter().map(ToString::to_string).collect();
            format!("sigstore keyless: {}", ids.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_policy_over_its_size_limit_is_refused_before_parsing() {
        let big = vec![b' '; MAX_POLICY_BYTES as usize + 1];
        let err = Policy::parse(&big, Path::new(".")).map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("it is larger than {MAX_POLICY_BYTES} bytes")
        );
    }

    use super::*;

    #[test]
    fn rules_match_by_name_or_by_repository_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pub");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/keys/test-signer.pub.pem"
            ),
            &key,
        )
        .unwrap();
        let doc = |models: &str| {
            format!(
                "apiVersion: modelgate.dev/v1alpha1\nkind: ModelPolicy\nspec:\n  models:\n{models}"
            )
        };
        let rule = |name: &str, matcher: &str| {
            format!(
                "    - name: {name}\n      match:\n        {matcher}\n      authorities:\n        - name: k\n          key:\n            path: k.pub\n"
            )
        };
        let text = doc(&(rule(
            "by-repo",
            "repositories: [\"registry.example.com/models/*\"]",
        ) + &rule("by-name", "names: [\"llama-*\"]")));
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, text).unwrap();
        let policy = Policy::from_file(&path).unwrap();
        assert_eq!(
            policy
                .select("llama-3", Some("registry.example.com/models/llama"))
                .unwrap()
                .name,
            "by-repo"
        );
        assert_eq!(policy.select("llama-3", None).unwrap().name, "by-name");
        assert_eq!(
            policy
                .select("other", Some("registry.example.com/models/x"))
                .unwrap()
                .name,
            "by-repo"
        );
        assert!(
            policy
                .select("other", Some("registry.example.com/elsewhere/x"))
                .is_err()
        );
    }

    #[test]
    fn coverage_globs_match_names_or_paths() {
        let p = |s: &str| Pattern::new(s).unwrap();
        assert!(covers(
            &p("*.safetensors"),
            "model-00001-of-00002.safetensors"
        ));
        assert!(covers(&p("*.safetensors"), "sub/x.safetensors"));
        assert!(covers(&p("tokenizer*"), "tokenizer_config.json"));
        assert!(!covers(&p("config.json"), "generation_config.json"));
        assert!(covers(&p("sub/*.bin"), "sub/a.bin"));
        assert!(!covers(&p("sub/*.bin"), "sub/deeper/a.bin"));
    }
}
