//! The error of a run that cannot reach a verdict: a setting that cannot
//! be used, unreadable input, a registry that cannot be used, I/O. Each is
//! [`crate::verify::Verdict::Error`] (exit 2), except content a registry
//! served wrong, which is a rejection.

use std::path::PathBuf;

use super::stage::StageError;
use crate::io::ReadError;
use crate::oci::OciError;
use crate::oms::sign::SignError;
use crate::policy::PolicyError;
use crate::trust;
use crate::verify::Verdict;

/// Something that stops a run from reaching a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// A setting (a flag or a `MODELGATE_*` variable) cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The policy file cannot be used.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A registry could not be used, or served wrong content.
    #[error(transparent)]
    Registry(#[from] OciError),
    /// The model could not be staged or placed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file holds no usable key.
    #[error("key {path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why it is unusable.
        source: trust::KeyError,
    },
    /// A certificate file holds no usable certificate.
    #[error("certificate {path}: {source}")]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// Why it is unusable.
        source: trust::ChainError,
    },
    /// A model could not be hashed or signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A keyless signature could not be made.
    #[error(transparent)]
    Keyless(#[from] crate::keyless::KeylessError),
    /// The keyless bundle the Sigstore services returned does not verify,
    /// so it was not written.
    #[error(
        "the bundle made through Sigstore does not verify against {root}: {reason}; nothing was written (is the trusted root the one of the instance the signing config names?)"
    )]
    KeylessUnverified {
        /// The trusted root checked against.
        root: String,
        /// Why it does not verify.
        reason: String,
    },
}

impl Error {
    /// [`Verdict::Rejected`] for content a registry served wrong; otherwise
    /// [`Verdict::Error`].
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::Registry(e) => e.verdict(),
            _ => Verdict::Error,
        }
    }
}

/// A setting that cannot be used, named as the user wrote it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No kind of trust was given.
    #[error(
        "no trust is configured: set {policy} (who may sign which model), or {key}, {chain}, or {identity} with {issuer}"
    )]
    NoTrust {
        /// The policy setting's name.
        policy: &'static str,
        /// The key setting's name.
        key: &'static str,
        /// The certificate-chain setting's name.
        chain: &'static str,
        /// The identity setting's name.
        identity: &'static str,
        /// The issuer setting's name.
        issuer: &'static str,
    },
    /// Two kinds of trust were given.
    #[error(
        "{0} and {1} are both set: they are different ways to say who may sign; set one (a policy names its own keys and identities)"
    )]
    TwoTrusts(&'static str, &'static str),
    /// An identity without an issuer, or the reverse.
    #[error("{given} is set without {missing}: keyless trust needs both")]
    HalfKeyless {
        /// The one given.
        given: &'static str,
        /// The one missing.
        missing: &'static str,
    },
    /// A trusted root with a kind of trust that has none.
    #[error(
        "{root} is set with {with}: a policy names its roots itself, and a certificate chain has no Sigstore root"
    )]
    RootWithout {
        /// The trusted-root setting's name.
        root: &'static str,
        /// The trust it was given with.
        with: &'static str,
    },
    /// The legacy format allowed beside a policy, whose rules decide it.
    #[error("{legacy} is set with {policy}: the policy rule's allowLegacyFormat decides")]
    LegacyWithPolicy {
        /// The legacy setting's name.
        legacy: &'static str,
        /// The policy setting's name.
        policy: &'static str,
    },
    /// A file setting that names no readable file (checked up front for
    /// variables: a missing mount is the usual cause).
    #[error("{setting}={}: {reason}", path.display())]
    File {
        /// The setting's name.
        setting: &'static str,
        /// Its value.
        path: PathBuf,
        /// Why it is unusable, and what to do.
        reason: String,
    },
    /// The trust a flag names cannot be used (a bad key, policy, root);
    /// the message names the file.
    #[error("{0}")]
    Unusable(Box<Error>),
    /// The trust a variable names cannot be used (a bad key, policy, root).
    #[error("{setting}: {source}")]
    Trust {
        /// The setting's name.
        setting: &'static str,
        /// Why.
        source: Box<Error>,
    },
}
