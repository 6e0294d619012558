//! Registry credentials from a Docker config file: `--registry-config FILE`
//! (a mounted Kubernetes `.dockerconfigjson` secret), else
//! `$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`, or
//! `~/.docker/config.json`, the first that exists. Nothing else is read, no
//! credential helper is run (an init container has none), and a credential
//! never appears in a log, an error, a measurement or a `Debug` print.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::io::{ReadError, read_bounded};

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// How to authenticate to one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// No credential: anonymous (a token is still fetched when the registry
    /// asks for one).
    Anonymous,
    /// A user name and password (or an access token used as one).
    Basic {
        /// The user name.
        username: String,
        /// The password; never printed.
        password: String,
    },
    /// An identity token (`identitytoken`), sent as the bearer token.
    Bearer(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credential {
    /// A short description for logs and measurements: never the secret.
    pub fn describe(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".into(),
            Self::Basic { username, .. } => format!("user {username}"),
            Self::Bearer(_) => "identity token".into(),
        }
    }
}

/// Why a config file cannot be used. Messages name the file and the
/// registry entry, never its content.
#[derive(Debug, thiserror::Error)]
#[error("registry config {path}: {reason}")]
pub struct CredentialError {
    /// The config file.
    pub path: PathBuf,
    /// What is wrong.
    #[source]
    pub reason: ConfigReason,
}

/// Why a config file cannot be used: it cannot be read, or its content is
/// wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigReason {
    /// The file cannot be read (the path is [`CredentialError::path`]).
    #[error("{}", .0.reason)]
    Read(ReadError),
    /// Its content is wrong.
    #[error(transparent)]
    Content(#[from] ConfigError),
}

/// What is wrong with a config file's content. Messages say where, never
/// what a value is (it may be a secret).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or not a Docker config's shape.
    #[error("not a Docker config JSON document (line {line}, column {column})")]
    NotJson {
        /// Where serde stopped.
        line: usize,
        /// The column there.
        column: usize,
    },
    /// An `auths` entry cannot be used.
    #[error("auths[{registry:?}]: {reason}")]
    Entry {
        /// The entry's key, as written.
        registry: String,
        /// What is wrong with it.
        reason: EntryError,
    },
}

/// What is wrong with an `auths` entry's `auth` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not base64.
    #[error("auth is not base64")]
    NotBase64,
    /// Decodes to bytes that are not UTF-8.
    #[error("auth is not UTF-8")]
    NotUtf8,
    /// Decodes to text without a `:`.
    #[error("auth is not base64 of user:password")]
    NoColon,
}

/// A registry whose credentials a credential helper keeps: modelgate runs
/// no helper, and going anonymous instead would hide why a pull fails.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the credentials for {registry} are kept by the credential helper docker-credential-{helper}, which modelgate does not run; put them in the config file (a Kubernetes .dockerconfigjson secret has them inline)"
)]
pub struct HelperNotRun {
    /// The registry.
    pub registry: String,
    /// The helper's name (`ecr-login` for `docker-credential-ecr-login`).
    pub helper: String,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Credentials for every registry a config file names.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// Where they came from, if anywhere.
    pub source: Option<PathBuf>,
    by_registry: BTreeMap<String, Credential>,
    helpers: BTreeMap<String, String>,
}

impl Credentials {
    /// The config file to read: `explicit`, else the first of the usual
    /// places that exists; `None` when there is none (anonymous access).
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(path) = explicit {
            return Some(path.to_path_buf());
        }
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let candidates = [
            env("REGISTRY_AUTH_FILE").map(PathBuf::from),
            env("DOCKER_CONFIG").map(|d| PathBuf::from(d).join("config.json")),
            env("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
        ];
        candidates.into_iter().flatten().find(|p| p.is_file())
    }

    /// Reads the credentials from `path` (see [`Self::locate`]). A config
    /// named explicitly must exist; the others are optional.
    pub fn load(path: Option<&Path>) -> Result<Self, CredentialError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let err = |reason: ConfigReason| CredentialError {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = read_bounded("registry config", path, MAX_CONFIG_BYTES)
            .map_err(|e| err(ConfigReason::Read(e)))?;
        Self::parse(&bytes).map_err(|e| err(e.into())).map(|mut c| {
            c.source = Some(path.to_path_buf());
            c
        })
    }

    /// Parses a config file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        // serde's message for a bad value may quote it: say only where.
        let doc: ConfigFile = serde_json::from_slice(bytes).map_err(|e| ConfigError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        let mut by_registry = BTreeMap::new();
        for (key, entry) in doc.auths {
            let registry = normalize_registry(&key);
            let credential = entry.credential().map_err(|reason| ConfigError::Entry {
                registry: key.clone(),
                reason,
            })?;
            by_registry.insert(registry, credential);
        }
        let mut helpers: BTreeMap<String, String> = doc
            .cred_helpers
            .into_iter()
            .map(|(k, v)| (normalize_registry(&k), v))
            .collect();
        if let Some(store) = doc.creds_store {
            helpers.insert("*".into(), store);
        }
        Ok(Self {
            source: None,
            by_registry,
            helpers,
        })
    }

    /// The credential for `registry`; anonymous when the file names none.
    /// A registry left to a credential helper is an error: the helper is not
    /// run, and silently going anonymous would hide why a pull fails.
    pub fn for_registry(&self, registry: &str) -> Result<Credential, HelperNotRun> {
        if let Some(c) = self.by_registry.get(registry) {
            return Ok(c.clone());
        }
        let docker_hub = matches!(registry, "docker.io" | "index.docker.io");
        if docker_hub && let Some(c) = self.by_registry.get("index.docker.io") {
            return Ok(c.clone());
        }
        if let Some(helper) = self.helpers.get(registry).or_else(|| self.helpers.get("*")) {
            return Err(HelperNotRun {
                registry: registry.to_string(),
                helper: helper.clone(),
            });
        }
        Ok(Credential::Anonymous)
    }
}

impl AuthEntry {
    fn credential(self) -> Result<Credential, EntryError> {
        if let Some(token) = self.identitytoken.filter(|t| !t.is_empty()) {
            return Ok(Credential::Bearer(token));
        }
        if let (Some(username), Some(password)) = (&self.username, &self.password) {
            return Ok(Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            });
        }
        let Some(auth) = self.auth.filter(|a| !a.is_empty()) else {
            return Ok(Credential::Anonymous);
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| EntryError::NotBase64)?;
        let text = String::from_utf8(decoded).map_err(|_| EntryError::NotUtf8)?;
        let (username, password) = text.split_once(':').ok_or(EntryError::NoColon)?;
        Ok(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

/// `https://index.docker.io/v1/` -> `index.docker.io`; `host:5000` stays.
fn normalize_registry(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_over_its_size_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, vec![b' '; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let err = Credentials::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.ends_with(&format!("it is larger than {MAX_CONFIG_BYTES} bytes")),
            "{err}"
        );
    }

    #[test]
    fn every_way_docker_writes_credentials_is_read() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with:colons");
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                "registry.example.com:5000": {{"username": "bob", "password": "pw"}},
                "http://tokens.example.com/v2/": {{"identitytoken": "tok"}},
                "empty.example.com": {{}}
            }}, "credHelpers": {{"helped.example.com": "ecr-login"}}}}"#
        );
        let c = Credentials::parse(json.as_bytes()).unwrap();
        assert_eq!(
            c.for_registry("docker.io").unwrap(),
            Credential::Basic {
                username: "alice".into(),
                password: "s3cret:with:colons".into()
            }
        );
        assert_eq!(
            c.for_registry("registry.example.com:5000").unwrap(),
            Credential::Basic {
                username: "bob".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            c.for_registry("tokens.example.com").unwrap(),
            Credential::Bearer("tok".into())
        );
        assert_eq!(
            c.for_registry("empty.example.com").unwrap(),
            Credential::Anonymous
        );
        assert_eq!(
            c.for_registry("other.example.com").unwrap(),
            Credential::Anonymous
        );
        let err = c
            .for_registry("helped.example.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("docker-credential-ecr-login"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let basic = Credential::Basic {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        let bearer = Credential::Bearer("tok-123".into());
        for text in [
            format!("{basic:?}"),
            basic.describe(),
            format!("{bearer:?}"),
            bearer.describe(),
        ] {
            assert!(
                !text.contains("hunter2") && !text.contains("tok-123"),
                "{text}"
            );
        }
        // A malformed file's error says where, not what.
        let err = Credentials::parse(br#"{"auths": {"r": {"auth": 12345678}}}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("12345678"), "{err}");
        let bad = base64::engine::general_purpose::STANDARD.encode("no-colon-secret");
        let err =
            Credentials::parse(format!(r#"{{"auths": {{"r": {{"auth": "{bad}"}}}}}}"#).as_bytes())
                .unwrap_err()
                .to_string();
        assert!(
            !err.contains("no-colon-secret") && !err.contains(&bad),
            "{err}"
        );
    }
}
