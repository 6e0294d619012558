//! The settings of a run, validated once. A front end gathers what the user
//! gave (flags, or `MODELGATE_*` variables) into a [`Spec`]; [`Settings::build`]
//! checks it (exactly one kind of trust, each file usable, the policy
//! parsed) and compiles the policy once, into an `Arc` that concurrent runs
//! share. Errors name the setting the way the user wrote it ([`Naming`]):
//! `--key` on the command line, `MODELGATE_KEY` in a pod spec. Nothing below
//! this module sees a flag or a variable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Error, SettingsError};
use crate::io::{MAX_KEY_BYTES, ReadError, read_bounded};
use crate::oci::RegistryOptions;
use crate::policy::Policy;
use crate::trust::sigstore::{self, Identity, Keyless, Matcher};
use crate::trust::{Certificate, PublicKey, TrustedMaterial};

/// How a front end names its settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// Command-line flags (`--key`).
    Flags,
    /// Environment variables (`MODELGATE_KEY`), as `init` is configured.
    Variables,
}

/// A setting, for naming it in an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// The signature files.
    Signature,
    /// The ModelPolicy file, or a folder of them.
    Policy,
    /// Trusted public keys.
    Key,
    /// Certificate-method anchors.
    CertificateChain,
    /// The keyless identity (exact or regular expression).
    CertificateIdentity,
    /// The keyless OIDC issuer (exact or regular expression).
    CertificateOidcIssuer,
    /// A Sigstore trusted root.
    TrustedRoot,
    /// Accept the pre-1.0 format.
    AllowLegacyFormat,
    /// Extra CAs for registry HTTPS.
    CaFile,
    /// A Docker config with registry credentials.
    RegistryConfig,
}

impl Naming {
    /// The setting's name as this front end's user wrote it.
    pub fn name(self, setting: Setting) -> &'static str {
        use Setting::*;
        match (self, setting) {
            (Self::Flags, Signature) => "--signature",
            (Self::Flags, Policy) => "--policy",
            (Self::Flags, Key) => "--key",
            (Self::Flags, CertificateChain) => "--certificate-chain",
            (Self::Flags, CertificateIdentity) => "--certificate-identity",
            (Self::Flags, CertificateOidcIssuer) => "--certificate-oidc-issuer",
            (Self::Flags, TrustedRoot) => "--trusted-root",
            (Self::Flags, AllowLegacyFormat) => "--allow-legacy-format",
            (Self::Flags, CaFile) => "--ca-file",
            (Self::Flags, RegistryConfig) => "--registry-config",
            (Self::Variables, Signature) => "MODELGATE_SIGNATURE",
            (Self::Variables, Policy) => "MODELGATE_POLICY",
            (Self::Variables, Key) => "MODELGATE_KEY",
            (Self::Variables, CertificateChain) => "MODELGATE_CERTIFICATE_CHAIN",
            (Self::Variables, CertificateIdentity) => "MODELGATE_CERTIFICATE_IDENTITY",
            (Self::Variables, CertificateOidcIssuer) => "MODELGATE_CERTIFICATE_OIDC_ISSUER",
            (Self::Variables, TrustedRoot) => "MODELGATE_TRUSTED_ROOT",
            (Self::Variables, AllowLegacyFormat) => "MODELGATE_ALLOW_LEGACY_FORMAT",
            (Self::Variables, CaFile) => "MODELGATE_CA_FILE",
            (Self::Variables, RegistryConfig) => "MODELGATE_REGISTRY_CONFIG",
        }
    }
}

/// Trust and verification as the user gave them, before anything is read.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// A ModelPolicy file, or a folder of them.
    pub policy: Option<PathBuf>,
    /// Trusted public keys (PEM files).
    pub keys: Vec<PathBuf>,
    /// Certificate-method anchors (PEM files).
    pub certificate_chain: Vec<PathBuf>,
    /// Accept an expired signing certificate valid when issued.
    pub allow_expired_certificate: bool,
    /// Keyless: the identity, exactly.
    pub certificate_identity: Option<String>,
    /// Keyless: a regular expression for the identity.
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer, exactly.
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression for the issuer.
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// A Sigstore trusted root instead of the embedded one.
    pub trusted_root: Option<PathBuf>,
    /// Accept model_signing 0.2 signatures (without a policy).
    pub allow_legacy_format: bool,
    /// Signature files; empty: found in the registry (oci:// only).
    pub signatures: Vec<PathBuf>,
    /// The model's name for policy matching.
    pub model_name: Option<String>,
    /// More paths to leave out.
    pub ignore_paths: Vec<String>,
    /// Tolerate unsigned files (recorded).
    pub ignore_unsigned_files: bool,
    /// How to reach registries.
    pub registry: RegistryOptions,
    /// Blobs downloaded at once.
    pub concurrency: usize,
    /// A limit on the registry work (`--timeout`).
    pub registry_timeout: Option<Duration>,
    /// Hashing threads.
    pub workers: usize,
}

/// Checked settings: what a run needs, with the policy compiled.
#[derive(Clone)]
pub struct Settings {
    /// Who may sign what: a policy file, or the trust settings as a policy
    /// of one rule. Shared by every run built from these settings.
    pub policy: Arc<Policy>,
    /// Signature files given; empty: found in the registry.
    pub signatures: Vec<PathBuf>,
    /// The model's name for policy matching.
    pub model_name: Option<String>,
    /// More paths to leave out.
    pub ignore_paths: Vec<String>,
    /// Tolerate unsigned files.
    pub ignore_unsigned_files: bool,
    /// How to reach registries.
    pub registry: RegistryOptions,
    /// Blobs downloaded at once.
    pub concurrency: usize,
    /// A limit on the registry work.
    pub registry_timeout: Option<Duration>,
    /// Hashing threads.
    pub workers: usize,
}

/// The kind of trust a spec gives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Policy,
    Keys,
    Certificates,
    Keyless,
}

impl Settings {
    /// Checks `spec` and compiles its trust, naming settings as `naming`
    /// does. Nothing is fetched.
    pub fn build(spec: Spec, naming: Naming) -> Result<Self, SettingsError> {
        let name = |s| naming.name(s);
        let identity =
            spec.certificate_identity.is_some() || spec.certificate_identity_regexp.is_some();
        let issuer =
            spec.certificate_oidc_issuer.is_some() || spec.certificate_oidc_issuer_regexp.is_some();
        let given: Vec<(Kind, Setting)> = [
            (Kind::Policy, Setting::Policy, spec.policy.is_some()),
            (Kind::Keys, Setting::Key, !spec.keys.is_empty()),
            (
                Kind::Certificates,
                Setting::CertificateChain,
                !spec.certificate_chain.is_empty(),
            ),
            (Kind::Keyless, Setting::CertificateIdentity, identity),
        ]
        .into_iter()
        .filter(|(_, _, set)| *set)
        .map(|(kind, setting, _)| (kind, setting))
        .collect();
        let (kind, kind_setting) = match given.as_slice() {
            [] => {
                return Err(SettingsError::NoTrust {
                    policy: name(Setting::Policy),
                    key: name(Setting::Key),
                    chain: name(Setting::CertificateChain),
                    identity: name(Setting::CertificateIdentity),
                    issuer: name(Setting::CertificateOidcIssuer),
                });
            }
            [one] => *one,
            [(_, a), (_, b), ..] => return Err(SettingsError::TwoTrusts(name(*a), name(*b))),
        };
        if identity != issuer {
            let (given, missing) = if identity {
                (Setting::CertificateIdentity, Setting::CertificateOidcIssuer)
            } else {
                (Setting::CertificateOidcIssuer, Setting::CertificateIdentity)
            };
            return Err(SettingsError::HalfKeyless {
                given: name(given),
                missing: name(missing),
            });
        }
        if spec.trusted_root.is_some() && matches!(kind, Kind::Policy | Kind::Certificates) {
            return Err(SettingsError::RootWithout {
                root: name(Setting::TrustedRoot),
                with: name(kind_setting),
            });
        }
        if spec.allow_legacy_format && kind == Kind::Policy {
            return Err(SettingsError::LegacyWithPolicy {
                legacy: name(Setting::AllowLegacyFormat),
                policy: name(Setting::Policy),
            });
        }
        if naming == Naming::Variables {
            let files = [
                (Setting::Signature, &spec.signatures),
                (Setting::Policy, &spec.policy.iter().cloned().collect()),
                (Setting::Key, &spec.keys),
                (Setting::CertificateChain, &spec.certificate_chain),
                (
                    Setting::TrustedRoot,
                    &spec.trusted_root.iter().cloned().collect(),
                ),
                (Setting::CaFile, &spec.registry.ca_files),
                (
                    Setting::RegistryConfig,
                    &spec.registry.registry_config.iter().cloned().collect(),
                ),
            ];
            for (setting, paths) in files {
                for path in paths {
                    // A folder of policy files is checked as it is read.
                    if setting == Setting::Policy && path.is_dir() {
                        continue;
                    }
                    usable_file(name(setting), path)?;
                }
            }
        }
        let policy = compile(&spec, kind).map_err(|e| match naming {
            Naming::Variables => SettingsError::Trust {
                setting: name(kind_setting),
                source: Box::new(e),
            },
            // The message names the file already, as the command line
            // has always shown it.
            Naming::Flags => SettingsError::Unusable(Box::new(e)),
        })?;
        Ok(Self {
            policy: Arc::new(policy),
            signatures: spec.signatures,
            model_name: spec.model_name,
            ignore_paths: spec.ignore_paths,
            ignore_unsigned_files: spec.ignore_unsigned_files,
            registry: spec.registry,
            concurrency: spec.concurrency.max(1),
            registry_timeout: spec.registry_timeout,
            workers: spec.workers.max(1),
        })
    }
}

/// A file setting's value must name a readable file.
fn usable_file(setting: &'static str, path: &Path) -> Result<(), SettingsError> {
    let reason = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => return Ok(()),
        Ok(_) => "not a file".to_string(),
        Err(e) => format!("{e}; mount it (a ConfigMap or Secret) or fix the path"),
    };
    Err(SettingsError::File {
        setting,
        path: path.to_path_buf(),
        reason,
    })
}

/// The policy the spec gives: the policy file, or the trust settings as a
/// policy of one rule.
fn compile(spec: &Spec, kind: Kind) -> Result<Policy, Error> {
    if let Some(path) = &spec.policy {
        return Ok(Policy::from_path(path)?);
    }
    let trust = match kind {
        Kind::Keyless => {
            let identity = Identity {
                subject: matcher(
                    &spec.certificate_identity,
                    &spec.certificate_identity_regexp,
                )?,
                issuer: matcher(
                    &spec.certificate_oidc_issuer,
                    &spec.certificate_oidc_issuer_regexp,
                )?,
            };
            TrustedMaterial::Sigstore(Box::new(Keyless {
                root: trusted_root(spec.trusted_root.as_deref())?,
                identities: vec![identity],
            }))
        }
        Kind::Certificates => TrustedMaterial::Certificates {
            anchors: load_certificates("certificate chain", &spec.certificate_chain)?,
            allow_expired: spec.allow_expired_certificate,
        },
        Kind::Keys | Kind::Policy => {
            let keys = spec
                .keys
                .iter()
                .map(|path| {
                    let pem = read_pem("public key", path)?;
                    PublicKey::from_pem(&pem).map_err(|source| Error::Key {
                        path: path.clone(),
                        source,
                    })
                })
                .collect::<Result<_, _>>()?;
            let transparency = match &spec.trusted_root {
                Some(path) => Some(Box::new(trusted_root(Some(path))?)),
                None => None,
            };
            TrustedMaterial::Keys { keys, transparency }
        }
    };
    let mut policy = Policy::single(trust);
    for rule in &mut policy.rules {
        rule.allow_legacy_format = spec.allow_legacy_format;
    }
    Ok(policy)
}

/// An exact value or a whole-value regular expression.
fn matcher(exact: &Option<String>, re: &Option<String>) -> Result<Matcher, Error> {
    match (exact, re) {
        (Some(e), _) => Ok(Matcher::Exact(e.clone())),
        (None, Some(r)) => Matcher::regex(r).map_err(|e| Error::Usage(e.to_string())),
        (None, None) => Err(Error::Usage(
            "keyless verification needs an identity and an OIDC issuer".into(),
        )),
    }
}

/// The Sigstore trusted root at `path`, or the embedded public-good one.
pub fn trusted_root(path: Option<&Path>) -> Result<sigstore_trust_root::TrustedRoot, Error> {
    let json = match path {
        Some(path) => Some(
            String::from_utf8(read_bounded("trusted root", path, MAX_KEY_BYTES)?)
                .map_err(|_| Error::Usage(format!("{}: not UTF-8 JSON", path.display())))?,
        ),
        None => None,
    };
    sigstore::trusted_root(json.as_deref()).map_err(|e| Error::Usage(e.to_string()))
}

/// A PEM text file, bounded.
pub fn read_pem(what: &'static str, path: &Path) -> Result<String, Error> {
    let bytes = read_bounded(what, path, MAX_KEY_BYTES)?;
    String::from_utf8(bytes).map_err(|_| {
        Error::Read(ReadError {
            what,
            path: path.to_path_buf(),
            reason: "not a PEM text file".into(),
        })
    })
}

/// Every certificate in the PEM files at `paths`.
pub fn load_certificates(what: &'static str, paths: &[PathBuf]) -> Result<Vec<Certificate>, Error> {
    let mut out = Vec::new();
    for path in paths {
        let pem = read_bounded(what, path, MAX_KEY_BYTES)?;
        out.extend(
            Certificate::from_pem_bundle(&pem).map_err(|e| Error::Certificate {
                path: path.clone(),
                source: e,
            })?,
        );
    }
    Ok(out)
}
