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

use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};
use serde::Deserialize;

use crate::trust::sigstore::{self, Identity, Keyless, Matcher};
use crate::trust::{Certificate, PublicKey, TrustedMaterial};

/// The policy document's `apiVersion`.
pub const API_VERSION: &str = "modelgate.dev/v1alpha1";
/// The policy document's `kind`.
pub const KIND: &str = "ModelPolicy";

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
    pub reason: String,
}

/// A compiled, checked policy.
#[derive(Debug)]
pub struct Policy {
    /// `metadata.name`, or where the policy came from.
    pub name: String,
    /// Rules in document order; the first that matches a model applies.
    pub rules: Vec<Rule>,
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
        };
        Self {
            name: "command-line".into(),
            rules: vec![rule],
        }
    }

    /// Reads, parses and compiles a policy file. Key, certificate and
    /// trusted-root paths in it are relative to the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let err = |reason: String| PolicyError {
            path: path.display().to_string(),
            reason,
        };
        let bytes = crate::read_bounded("policy", path, crate::MAX_KEY_BYTES)
            .map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
        let doc: Doc = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
        } else {
            serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        doc.compile(base).map_err(err)
    }

    /// The rule for a model: the first whose names (or, for a model from a
    /// registry, repositories) match.
    pub fn select(&self, model_name: &str, repository: Option<&str>) -> Result<&Rule, String> {
        self.rules
            .iter()
            .find(|r| {
                r.names.iter().any(|p| p.matches(model_name))
                    || repository.is_some_and(|repo| r.repositories.iter().any(|p| p.matches(repo)))
            })
            .ok_or_else(|| {
                format!(
                    "no rule of policy {} matches model {model_name:?}; nothing is trusted by default: add a rule for it",
                    self.name
                )
            })
    }

    /// A human explanation of what the policy requires.
    pub fn explain(&self) -> String {
        let mut out = format!(
            "policy {}: {} rule(s); the first rule that matches a model applies\n",
            self.name,
            self.rules.len()
        );
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
                out.push_str(&format!(
                    "    pinned root digest: sha256:{}\n",
                    hex::encode(d)
                ));
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
        TrustedMaterial::Keys(keys) => {
            let fps: Vec<String> = keys
                .iter()
                .map(|k| format!("sha256:{}", k.fingerprint()))
                .collect();
            format!("key {}", fps.join(", "))
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

// ---- the document as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Doc {
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
    models: Vec<RuleDoc>,
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
    fn compile(self, base: &Path) -> Result<Policy, String> {
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
        Ok(Policy { name, rules })
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
        })
    }
}

impl AuthorityDoc {
    fn compile(self, base: &Path) -> Result<Authority, String> {
        let trust = match (self.key, self.keyless, self.certificate) {
            (Some(key), None, None) => {
                let pem = key.read(base, "key")?;
                TrustedMaterial::Keys(vec![
                    PublicKey::from_pem(&pem).map_err(|e| format!("key: {e}"))?,
                ])
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
                let bytes = crate::read_bounded("policy reference", &full, crate::MAX_KEY_BYTES)
                    .map_err(|e| format!("{what}: {e}"))?;
                String::from_utf8(bytes)
                    .map_err(|_| format!("{what}: {} is not text", full.display()))
            }
            _ => Err(format!("{what}: give exactly one of data or path")),
        }
    }
}

#[cfg(test)]
mod tests {
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
