//! The command-line arguments: one struct per subcommand, parsed by clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::gate::Error;
use crate::logging::LogFormat;
use crate::trust::sigstore::{Identity, Matcher};

/// Verify AI models against OpenSSF Model Signing attestations, and sign them.
#[derive(Debug, Parser)]
#[command(name = "modelgate", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 verified; 1 rejected; 2 could not verify. Non-zero means: do not start."
)]
pub struct Cli {
    /// Log format on stderr: text on a terminal, JSON lines otherwise.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "MODELGATE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Only log warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Hashing threads (default: the CPUs this process may use).
    #[arg(long, global = true, env = "MODELGATE_JOBS")]
    pub jobs: Option<usize>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hash a model and sign it with a private key, writing a Sigstore bundle.
    Attest(AttestArgs),
    /// Verify a model against its signature; exit non-zero on any mismatch.
    Verify(VerifyArgs),
    /// Pull a model from an OCI registry, verify it, and only then put it in place.
    Pull(PullArgs),
    /// Sign a model and push it as a ModelPack artifact with its signature
    /// attached; prints the pushed digest.
    Push(PushArgs),
    /// Print the model's root digest (sha256:<hex>) as a signer computes it.
    Digest(DigestArgs),
    /// Verify one Sigstore bundle over a file or sha256:<hex> digest
    /// (Sigstore's conformance protocol).
    VerifyBundle(VerifyBundleArgs),
    /// Work with ModelPolicy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The init container: fetch or find the model, verify it, record the
    /// measurement; configured by MODELGATE_* environment variables (the
    /// same names as these flags). Also runs as `modelgate <uri> <mountPath>`
    /// (KServe's storage-initializer convention).
    Init(Box<InitArgs>),
    /// The watch sidecar: verify the model folder like init, then keep it
    /// under watch (inotify, a stat sweep, a budgeted re-hash) and serve
    /// /readyz (503 once it drifts) and /livez on MODELGATE_WATCH_LISTEN;
    /// configured by the same MODELGATE_* variables as init.
    Watch(Box<WatchArgs>),
    /// Work with measurement logs.
    #[command(subcommand)]
    Measurement(MeasurementCommand),
    /// The admission webhook: an HTTPS server for the Kubernetes API server
    /// that adds the gate to pods carrying a model (/mutate) and denies
    /// those without it or with a model not signed as the policy requires
    /// (/validate).
    #[command(mut_arg("timeout", |a| a
        .default_value("8")
        .env("MODELGATE_TIMEOUT")
        .help("Give up on one review's registry lookup after this many seconds (the API server waits 10 by default)")))]
    Webhook(Box<WebhookArgs>),
}

/// `modelgate webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// The address to listen on.
    #[arg(long, env = "MODELGATE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: std::net::SocketAddr,
    /// The serving certificate chain (PEM, as a TLS Secret's tls.crt); re-read when it changes.
    #[arg(long, env = "MODELGATE_TLS_CERT_FILE", value_name = "PEM")]
    pub tls_cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, SEC1 or PKCS#1, as tls.key).
    #[arg(long, env = "MODELGATE_TLS_PRIVATE_KEY_FILE", value_name = "PEM")]
    pub tls_private_key_file: PathBuf,
    /// The ModelPolicy file that says who may sign which model, or a folder
    /// of them (their rules in file-name order); re-read when it changes.
    #[arg(long, env = "MODELGATE_POLICY", value_name = "PATH")]
    pub policy: PathBuf,
    /// The modelgate image to inject, pinned: REPOSITORY@sha256:<64 hex>.
    #[arg(long, env = "MODELGATE_GATE_IMAGE", value_name = "IMAGE")]
    pub gate_image: String,
    /// Registry options (--timeout: one review's limit).
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `modelgate policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a ModelPolicy file and explain what it requires; exit 0 if
    /// valid, 2 if not.
    Check {
        /// The policy file (YAML or JSON), or a folder of them.
        file: PathBuf,
    },
}

/// Sigstore keyless trust: who must have signed, and the trusted root.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("identity").args(["certificate_identity", "certificate_identity_regexp"]).requires("issuer")))]
#[command(group(clap::ArgGroup::new("issuer").args(["certificate_oidc_issuer", "certificate_oidc_issuer_regexp"]).requires("identity")))]
pub struct KeylessArgs {
    /// Keyless: the signer's identity (certificate SAN: email or URI), exactly.
    #[arg(long, value_name = "ID")]
    pub certificate_identity: Option<String>,
    /// Keyless: a regular expression the whole identity must match.
    #[arg(long, value_name = "RE")]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer that authenticated the signer, exactly.
    #[arg(long, value_name = "URL")]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression the whole OIDC issuer must match.
    #[arg(long, value_name = "RE")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Sigstore trusted root (trusted_root.json) instead of the embedded
    /// public-good production root. With a keyless identity: the Fulcio CAs,
    /// logs and timestamp authorities to verify against. With --key: the
    /// bundle must also carry transparency-log entries that verify against
    /// this root (a key signature uploaded to Rekor, as cosign does).
    #[arg(long, value_name = "trusted_root.json")]
    pub trusted_root: Option<PathBuf>,
}

impl KeylessArgs {
    pub(super) fn identity(&self) -> Result<Identity, Error> {
        let pick = |exact: &Option<String>, re: &Option<String>| match (exact, re) {
            (Some(e), _) => Ok(Matcher::Exact(e.clone())),
            (None, Some(r)) => Matcher::regex(r).map_err(|e| Error::Usage(e.to_string())),
            (None, None) => Err(Error::Usage(
                "keyless verification needs an identity and an OIDC issuer".into(),
            )),
        };
        Ok(Identity {
            subject: pick(
                &self.certificate_identity,
                &self.certificate_identity_regexp,
            )?,
            issuer: pick(
                &self.certificate_oidc_issuer,
                &self.certificate_oidc_issuer_regexp,
            )?,
        })
    }

    pub(super) fn root(&self) -> Result<sigstore_trust_root::TrustedRoot, Error> {
        crate::gate::trusted_root(self.trusted_root.as_deref())
    }
}

/// `modelgate verify-bundle`.
#[derive(Debug, Args)]
#[command(after_help = VERIFY_BUNDLE_TRUST)]
pub struct VerifyBundleArgs {
    /// The Sigstore bundle.
    #[arg(long)]
    pub bundle: PathBuf,
    /// A managed key (PEM) instead of a keyless identity.
    #[arg(
        long,
        required_unless_present = "identity",
        conflicts_with = "identity"
    )]
    pub key: Option<PathBuf>,
    /// Keyless trust.
    #[command(flatten)]
    pub keyless: KeylessArgs,
    /// The signed file, or its digest as sha256:<hex>. For a DSSE bundle,
    /// a subject of the in-toto statement.
    #[arg(value_name = "FILE_OR_DIGEST")]
    pub artifact: String,
}

/// How the model is hashed (shared by `attest` and `digest`).
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Hash function for each file or shard.
    #[arg(long = "hash", value_parser = ["sha256", "blake2b", "blake3"], default_value = "sha256")]
    pub hash: String,
    /// Hash files in shards of this many bytes (the `shards` method).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_size: Option<u64>,
    /// Hash symlinks to files inside the model as their targets.
    #[arg(long)]
    pub allow_symlinks: bool,
    /// Path to leave out (relative to the model, or under it); repeatable.
    #[arg(long = "ignore-paths", value_name = "P")]
    pub ignore_paths: Vec<String>,
}

/// Who signs: a key, and for the certificate method its certificate chain
/// (shared by `attest` and `push`).
#[derive(Debug, Args)]
pub struct SignerArgs {
    /// EC private key (P-256/384/521, SEC1 or PKCS#8 PEM).
    #[arg(
        long,
        required_unless_present = "sigstore",
        conflicts_with = "sigstore"
    )]
    pub key: Option<PathBuf>,
    /// Sign with the certificate method: the signing certificate (PEM) for
    /// the key, written into the bundle.
    #[arg(long, value_name = "LEAF.pem", requires = "key")]
    pub certificate: Option<PathBuf>,
    /// Certificates that complete the chain (intermediates, root), written
    /// after the signing certificate; repeatable.
    #[arg(
        long = "certificate-chain",
        value_name = "CHAIN.pem",
        requires = "certificate"
    )]
    pub certificate_chain: Vec<PathBuf>,
    /// Keyless signing.
    #[command(flatten)]
    pub sigstore: SigstoreArgs,
}

/// Sign keylessly through Sigstore (docs/commands.md: flag names after
/// cosign and model_signing).
#[derive(Debug, Args)]
pub struct SigstoreArgs {
    /// Sign keylessly: an ephemeral key, a Fulcio certificate for the OIDC
    /// identity, a Rekor entry (the public-good instance unless
    /// --signing-config). The token: --identity-token, --identity-token-file,
    /// SIGSTORE_ID_TOKEN, or GitHub Actions' ambient credentials.
    #[arg(long)]
    pub sigstore: bool,
    /// The OIDC identity token, or a file holding it (as cosign takes it).
    /// A value on the command line is visible to other processes: prefer a
    /// file or SIGSTORE_ID_TOKEN.
    #[arg(
        long,
        value_name = "TOKEN|FILE",
        requires = "sigstore",
        conflicts_with = "identity_token_file"
    )]
    pub identity_token: Option<SecretArg>,
    /// A file holding the OIDC identity token, read when signing (a
    /// Kubernetes projected service-account token).
    #[arg(long, value_name = "FILE", requires = "sigstore")]
    pub identity_token_file: Option<PathBuf>,
    /// A Sigstore SigningConfig v0.2 naming the Fulcio, Rekor and timestamp
    /// authority to use (a private instance); default: the public-good one.
    #[arg(long, value_name = "FILE", requires = "sigstore")]
    pub signing_config: Option<PathBuf>,
    /// The trusted root the new signature is checked against before it is
    /// written (the private instance's); default: the public-good one.
    #[arg(long, value_name = "trusted_root.json", requires = "sigstore")]
    pub trusted_root: Option<PathBuf>,
}

/// A secret given as a flag: never shown by `Debug`.
#[derive(Clone)]
pub struct SecretArg(pub sigstore_oidc::SecretString);

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(sigstore_oidc::SecretString::new(s)))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `modelgate attest`.
#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The model folder, a single model file, or oci://REGISTRY/REPOSITORY:TAG
    /// (signed from its manifest without downloading, when every layer is a
    /// raw file).
    pub model: String,
    /// The signer.
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Where to write the signature bundle.
    #[arg(long)]
    pub signature: PathBuf,
    /// Hashing options.
    #[command(flatten)]
    pub hashing: HashArgs,
    /// Registry options, for an oci:// model.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Which trust flags `verify` takes together, as printed by `verify --help`.
const VERIFY_TRUST: &str = "\
Trust: exactly one of these, for the kind of bundle the signer made:
  --policy FILE
      a ModelPolicy: rules, authorities (key, key with ctlog, certificate, keyless), k of n
  --key PUB.pem [--key ...]
      a managed key (modelgate attest, model_signing sign key): the signature alone
  --key PUB.pem --trusted-root trusted_root.json
      a managed key whose bundle was also uploaded to a transparency log (cosign and
      other Sigstore clients): its log entries must verify against that root
  --certificate-chain CA.pem [...] [--allow-expired-certificate]
      a signing certificate chained to one of these CAs (model_signing sign certificate)
  --certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] URL [--trusted-root trusted_root.json]
      Sigstore keyless (model_signing sign sigstore), against the embedded public-good
      root or the one given
Add --allow-legacy-format to accept model_signing 0.2 signatures (not with --policy).
Exit codes: 0 verified; 1 rejected; 2 could not verify. Non-zero means: do not start.";

/// Which trust flags `verify-bundle` takes together.
const VERIFY_BUNDLE_TRUST: &str = "\
Trust: one of
  --key PUB.pem
      a managed key; log entries in the bundle, if any, must verify against the
      embedded public-good root
  --key PUB.pem --trusted-root trusted_root.json
      a managed key with at least one log entry, verified against that root
  --certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] URL [--trusted-root trusted_root.json]
      Sigstore keyless
Exit codes: 0 verified; 1 rejected; 2 could not verify.";

/// `modelgate verify`.
#[derive(Debug, Args)]
#[command(after_help = VERIFY_TRUST)]
pub struct VerifyArgs {
    /// The model folder, a single model file, or oci://REGISTRY/REPOSITORY:TAG
    /// (or @sha256:DIGEST), pulled into a temporary folder and verified there.
    pub model: String,
    /// Trust and verification options.
    #[command(flatten)]
    pub check: CheckArgs,
    /// Registry options, for an oci:// model.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `modelgate pull`.
#[derive(Debug, Args)]
#[command(after_help = VERIFY_TRUST)]
pub struct PullArgs {
    /// oci://REGISTRY/REPOSITORY:TAG or oci://REGISTRY/REPOSITORY@sha256:DIGEST.
    pub reference: String,
    /// The folder to create. The model is pulled into a temporary folder
    /// beside it and renamed into place only once verified; it must not
    /// exist, or be an empty folder.
    pub destination: PathBuf,
    /// Trust and verification options.
    #[command(flatten)]
    pub check: CheckArgs,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `modelgate push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The model folder.
    pub model: PathBuf,
    /// Where to push it: oci://REGISTRY/REPOSITORY:TAG.
    pub reference: String,
    /// The signer.
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Also write the signature bundle here.
    #[arg(long, value_name = "OUT.sig")]
    pub signature: Option<PathBuf>,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How to reach registries (for oci:// models).
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Trust this CA (PEM) for registry HTTPS, besides the system roots; repeatable.
    #[arg(long, value_name = "CA.pem")]
    pub ca_file: Vec<PathBuf>,
    /// Reach this registry (host:port) over plain HTTP; never implied; repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,
    /// Only contact these registries (host:port, exact); repeatable. A
    /// reference to any other is refused before any request.
    #[arg(long, value_name = "HOST:PORT")]
    pub allowed_registry: Vec<String>,
    /// Registry credentials: a Docker config file (a mounted
    /// .dockerconfigjson); default $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json,
    /// ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    /// The platform to pick from an image index (os/arch[/variant]); default
    /// the running one.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// The model is this folder of a plain container image (KServe modelcars
    /// and olot images keep it under /models); only its entries are unpacked.
    #[arg(long, value_name = "/FOLDER")]
    pub subpath: Option<String>,
    /// Give up on the registry work (a pull, a push, a manifest fetch)
    /// after this many seconds. The default, 15 minutes, pulls a 100 GB
    /// model at about 110 MB/s; a run that needs longer says so.
    #[arg(long, value_name = "SECONDS", default_value = "900", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Cut a registry connection that sends nothing for this many seconds
    /// (a stalled transfer ends with a message naming what it waited for).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = clap::value_parser!(u64).range(1..))]
    pub read_timeout: u64,
    /// Blobs downloaded at once.
    #[arg(long, value_name = "N", default_value = "4", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
}

impl RegistryArgs {
    /// The registry options these flags give.
    pub fn options(&self) -> crate::oci::RegistryOptions {
        crate::oci::RegistryOptions {
            ca_files: self.ca_file.clone(),
            insecure: self.insecure_registry.clone(),
            allowed: self.allowed_registry.clone(),
            registry_config: self.registry_config.clone(),
            platform: self.platform.clone(),
            subpath: self.subpath.clone(),
            read_timeout: Some(std::time::Duration::from_secs(self.read_timeout)),
        }
    }
}

/// Trust and verification options shared by `verify` and `pull`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The signature bundle; repeat for a policy rule that needs k of n
    /// signers. Required for a model on disk; for an oci:// model, when
    /// absent, the signatures attached to it in the registry are used.
    #[arg(long)]
    pub signature: Vec<PathBuf>,
    /// A ModelPolicy file (YAML or JSON) saying who may sign which model,
    /// instead of the trust flags below.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key", "certificate_chain", "identity", "trusted_root"])]
    pub policy: Option<PathBuf>,
    /// The model's name for policy matching (default: the model path's last
    /// component).
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// The signer's EC public key (PEM); repeat to trust any of several.
    #[arg(long, required_unless_present_any = ["certificate_chain", "identity", "policy"], conflicts_with = "identity")]
    pub key: Vec<PathBuf>,
    /// Trust anchors for the certificate method: root or intermediate CA
    /// certificates (PEM, one or more per file); repeatable.
    #[arg(
        long = "certificate-chain",
        value_name = "ROOT_OR_INTERMEDIATE.pem",
        conflicts_with_all = ["key", "identity", "trusted_root"]
    )]
    pub certificate_chain: Vec<PathBuf>,
    /// Accept a signing certificate that has expired, if it was valid when
    /// issued (the reference's behaviour; by default the leaf must be valid now).
    #[arg(long, requires = "certificate_chain")]
    pub allow_expired_certificate: bool,
    /// Sigstore keyless trust.
    #[command(flatten)]
    pub keyless: KeylessArgs,
    /// Another path to leave out, besides those the signature lists; repeatable.
    #[arg(long = "ignore-paths", value_name = "P")]
    pub ignore_paths: Vec<String>,
    /// Accept files on disk that the signature does not list (they are recorded).
    #[arg(long)]
    pub ignore_unsigned_files: bool,
    /// Accept a signature in the pre-1.0 format that model_signing 0.2 wrote
    /// (predicate Digests/v0.1, its DSSE encoding bug), verified as the
    /// reference verifies it; for a migration window only (recorded in the
    /// measurement). With --policy, the rule's allowLegacyFormat decides.
    #[arg(long, conflicts_with = "policy")]
    pub allow_legacy_format: bool,
    /// Write a measurement (JSON) here, whatever the verdict.
    #[arg(long, value_name = "OUT.json")]
    pub measurement: Option<PathBuf>,
}

/// `modelgate measurement ...`.
#[derive(Debug, Subcommand)]
pub enum MeasurementCommand {
    /// Recompute a hash-chained measurement log and name any entry that was
    /// edited, reordered or removed; prints the entry count and last chain.
    Verify {
        /// The log (MODELGATE_MEASUREMENT_LOG of `init`).
        log: PathBuf,
        /// The last chain value it must end with (hex), kept elsewhere:
        /// shows entries removed from the end.
        #[arg(long, value_name = "HEX")]
        expect_chain: Option<String>,
    },
}

/// `modelgate init`: every setting is an environment variable with the
/// flag's name (MODELGATE_SOURCE for --source); lists are comma-separated.
/// Values are checked before any work starts.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The model: a folder (verified in place), or oci://REGISTRY/REPO@sha256:DIGEST.
    #[arg(long, env = "MODELGATE_SOURCE", value_name = "FOLDER|oci://REF")]
    pub source: Option<String>,
    /// Where an oci:// model is put once verified (an empty folder; default
    /// /mnt/models). With a folder source: copy it here, verified.
    #[arg(long, env = "MODELGATE_TARGET", value_name = "DIR")]
    pub target: Option<String>,
    /// Signature bundle files; absent: found in the registry (oci:// only).
    #[arg(long, env = "MODELGATE_SIGNATURE", value_delimiter = ',')]
    pub signature: Vec<String>,
    /// The ModelPolicy file (recommended).
    #[arg(long, env = "MODELGATE_POLICY")]
    pub policy: Option<String>,
    /// Trusted public keys (PEM).
    #[arg(long, env = "MODELGATE_KEY", value_delimiter = ',')]
    pub key: Vec<String>,
    /// Trust anchors for the certificate method (PEM).
    #[arg(long, env = "MODELGATE_CERTIFICATE_CHAIN", value_delimiter = ',')]
    pub certificate_chain: Vec<String>,
    /// Keyless: the signer's identity, exactly.
    #[arg(long, env = "MODELGATE_CERTIFICATE_IDENTITY")]
    pub certificate_identity: Option<String>,
    /// Keyless: a regular expression for the identity.
    #[arg(long, env = "MODELGATE_CERTIFICATE_IDENTITY_REGEXP")]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer, exactly.
    #[arg(long, env = "MODELGATE_CERTIFICATE_OIDC_ISSUER")]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression for the OIDC issuer.
    #[arg(long, env = "MODELGATE_CERTIFICATE_OIDC_ISSUER_REGEXP")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// A Sigstore trusted_root.json (offline trust).
    #[arg(long, env = "MODELGATE_TRUSTED_ROOT")]
    pub trusted_root: Option<String>,
    /// The model's name for policy matching.
    #[arg(long, env = "MODELGATE_MODEL_NAME")]
    pub model_name: Option<String>,
    /// More paths to leave out.
    #[arg(long, env = "MODELGATE_IGNORE_PATHS", value_delimiter = ',')]
    pub ignore_paths: Vec<String>,
    /// true: tolerate unsigned files (recorded).
    #[arg(long, env = "MODELGATE_IGNORE_UNSIGNED_FILES", value_name = "BOOL")]
    pub ignore_unsigned_files: Option<String>,
    /// true: accept model_signing 0.2 signatures (without a policy).
    #[arg(long, env = "MODELGATE_ALLOW_LEGACY_FORMAT", value_name = "BOOL")]
    pub allow_legacy_format: Option<String>,
    /// A Docker config with registry credentials (a mounted .dockerconfigjson).
    #[arg(long, env = "MODELGATE_REGISTRY_CONFIG")]
    pub registry_config: Option<String>,
    /// Extra CA certificates for registry HTTPS (PEM).
    #[arg(long, env = "MODELGATE_CA_FILE", value_delimiter = ',')]
    pub ca_file: Vec<String>,
    /// Registries (host:port) reached over plain HTTP.
    #[arg(long, env = "MODELGATE_INSECURE_REGISTRY", value_delimiter = ',')]
    pub insecure_registry: Vec<String>,
    /// The only registries that may be contacted.
    #[arg(long, env = "MODELGATE_ALLOWED_REGISTRY", value_delimiter = ',')]
    pub allowed_registry: Vec<String>,
    /// The platform to pick from an image index.
    #[arg(long, env = "MODELGATE_PLATFORM")]
    pub platform: Option<String>,
    /// The model's folder in a container image (/models for modelcars).
    #[arg(long, env = "MODELGATE_SUBPATH")]
    pub subpath: Option<String>,
    /// The deadline for the whole run: 600, 90s, 10m, 1h (default 1h).
    #[arg(long, env = "MODELGATE_TIMEOUT", value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Cut a registry connection that sends nothing this long (default 30s).
    #[arg(long, env = "MODELGATE_READ_TIMEOUT", value_name = "DURATION")]
    pub read_timeout: Option<String>,
    /// Blobs downloaded at once (1 to 64).
    #[arg(long, env = "MODELGATE_CONCURRENCY", value_name = "N")]
    pub concurrency: Option<String>,
    /// The measurement (default /run/modelgate/measurement.json).
    #[arg(long, env = "MODELGATE_MEASUREMENT")]
    pub measurement: Option<String>,
    /// A hash-chained measurement log to append to.
    #[arg(long, env = "MODELGATE_MEASUREMENT_LOG")]
    pub measurement_log: Option<String>,
    /// The termination-message file (default /dev/termination-log, when it exists).
    #[arg(long, env = "MODELGATE_TERMINATION_LOG")]
    pub termination_log: Option<String>,
    /// The root the node facts (GPU driver, devices, libraries) are read
    /// under (default /).
    #[arg(long, env = "MODELGATE_HOST_ROOT")]
    pub host_root: Option<String>,
}

/// `modelgate watch`: init's settings, and how to watch.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The settings of the first verification, as for init.
    #[command(flatten)]
    pub init: InitArgs,
    /// Between two stat sweeps: 600, 90s, 10m, 1h (default 60s).
    #[arg(long, env = "MODELGATE_WATCH_INTERVAL", value_name = "DURATION")]
    pub interval: Option<String>,
    /// Between two full re-hashes (default 24h).
    #[arg(long, env = "MODELGATE_WATCH_REHASH_INTERVAL", value_name = "DURATION")]
    pub rehash_interval: Option<String>,
    /// The full re-hash's budget in bytes per second: 500K, 64M, 1G, or
    /// Ki/Mi/Gi (default 64Mi).
    #[arg(long, env = "MODELGATE_WATCH_MAX_RATE", value_name = "BYTES")]
    pub max_rate: Option<String>,
    /// The probes' address (default 0.0.0.0:8181).
    #[arg(long, env = "MODELGATE_WATCH_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// quarantine (not ready until restored; default) or restart (/livez
    /// fails too, rate-limited).
    #[arg(long, env = "MODELGATE_WATCH_ON_DRIFT", value_name = "ACTION")]
    pub on_drift: Option<String>,
    /// The model is MODELGATE_SOURCE inside the container whose process
    /// has this name (ps -o comm; a KServe modelcar's is sleep), found in
    /// the pod's shared PID namespace (shareProcessNamespace: true).
    #[arg(long, env = "MODELGATE_WATCH_CONTAINER", value_name = "PROCESS")]
    pub container: Option<String>,
    /// The most inotify watches to use (default: as many as the kernel
    /// allows); folders beyond are covered by the stat sweep.
    #[arg(long, env = "MODELGATE_WATCH_MAX_INOTIFY", value_name = "N")]
    pub max_inotify: Option<String>,
}

/// `modelgate digest`.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The model folder, a single model file, or oci://REGISTRY/REPOSITORY:TAG
    /// (from its manifest, when every layer is a raw file).
    pub model: String,
    /// Hashing options.
    #[command(flatten)]
    pub hashing: HashArgs,
    /// Registry options, for an oci:// model.
    #[command(flatten)]
    pub registry: RegistryArgs,
}
