//! The command line: arguments, and one function per subcommand that wires
//! the library together and returns the process exit code.
//!
//! Exit codes: 0 verified (or signed, or digested); 1 rejected (drift, bad or
//! untrusted signature); 2 could not verify (usage, unreadable input, I/O).
//! Both non-zero codes mean "do not start the workload".

use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{error, info, warn};

use crate::attest::{self, HashOptions};
use crate::hashing::{self, HashAlgorithm};
use crate::logging::{self, LogFormat};
use crate::manifest::{Method, normalize_relative};
use crate::measurement::{Measurement, PolicyOut};
use crate::model_dir;
use crate::policy::{Mode, Policy};
use crate::trust::sigstore::{Identity, Keyless, Matcher};
use crate::trust::{self, Certificate, PrivateKey, PublicKey, TrustedMaterial};
use crate::verify::{self, Evidence, Problem, Rejection, Request};
use crate::{Error, MAX_KEY_BYTES, read_bounded, write_atomic};

/// Exit code: the model was verified.
pub const EXIT_OK: i32 = 0;
/// Exit code: the model or its signature was checked and rejected.
pub const EXIT_REJECTED: i32 = 1;
/// Exit code: verification could not be carried out.
pub const EXIT_ERROR: i32 = 2;

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
    /// Print the model's root digest (sha256:<hex>) as a signer computes it.
    Digest(DigestArgs),
    /// Verify one Sigstore bundle over a file or sha256:<hex> digest
    /// (Sigstore's conformance protocol).
    VerifyBundle(VerifyBundleArgs),
    /// Work with ModelPolicy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `modelgate policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a ModelPolicy file and explain what it requires; exit 0 if
    /// valid, 2 if not.
    Check {
        /// The policy file (YAML or JSON).
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
    /// public-good production root.
    #[arg(long, value_name = "trusted_root.json", requires = "identity")]
    pub trusted_root: Option<PathBuf>,
}

impl KeylessArgs {
    fn given(&self) -> bool {
        self.certificate_identity.is_some() || self.certificate_identity_regexp.is_some()
    }

    fn identity(&self) -> Result<Identity, Error> {
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

    fn root(&self) -> Result<sigstore_trust_root::TrustedRoot, Error> {
        let json = match &self.trusted_root {
            Some(path) => Some(
                String::from_utf8(read_bounded("trusted root", path, MAX_KEY_BYTES)?)
                    .map_err(|_| Error::Usage(format!("{}: not UTF-8 JSON", path.display())))?,
            ),
            None => None,
        };
        trust::sigstore::trusted_root(json.as_deref()).map_err(|e| Error::Usage(e.to_string()))
    }
}

/// `modelgate verify-bundle`.
#[derive(Debug, Args)]
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

/// `modelgate attest`.
#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The model folder, or a single model file.
    pub model: PathBuf,
    /// EC private key (P-256/384/521, SEC1 or PKCS#8 PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Sign with the certificate method: the signing certificate (PEM) for
    /// the key, written into the bundle.
    #[arg(long, value_name = "LEAF.pem")]
    pub certificate: Option<PathBuf>,
    /// Certificates that complete the chain (intermediates, root), written
    /// after the signing certificate; repeatable.
    #[arg(
        long = "certificate-chain",
        value_name = "CHAIN.pem",
        requires = "certificate"
    )]
    pub certificate_chain: Vec<PathBuf>,
    /// Where to write the signature bundle.
    #[arg(long)]
    pub signature: PathBuf,
    /// Hashing options.
    #[command(flatten)]
    pub hashing: HashArgs,
}

/// `modelgate verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The model folder, or a single model file.
    pub model: PathBuf,
    /// The signature bundle; repeat for a policy rule that needs k of n
    /// signers.
    #[arg(long, required = true)]
    pub signature: Vec<PathBuf>,
    /// A ModelPolicy file (YAML or JSON) saying who may sign which model,
    /// instead of the trust flags below.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key", "certificate_chain", "identity"])]
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
        conflicts_with = "key"
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
    /// Write a measurement (JSON) here, whatever the verdict.
    #[arg(long, value_name = "OUT.json")]
    pub measurement: Option<PathBuf>,
}

/// `modelgate digest`.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The model folder, or a single model file.
    pub model: PathBuf,
    /// Hashing options.
    #[command(flatten)]
    pub hashing: HashArgs,
}

/// Runs the parsed command line and returns the exit code.
pub fn run(cli: Cli) -> i32 {
    logging::init(cli.log_format, cli.quiet);
    let workers = cli
        .jobs
        .filter(|&j| j > 0)
        .unwrap_or_else(hashing::default_workers);
    let progress = Progress::new(cli.quiet);
    let code = match &cli.command {
        Command::Attest(args) => report(attest_cmd(args, workers, &progress)),
        Command::Digest(args) => report(digest_cmd(args, workers, &progress)),
        Command::Verify(args) => verify_cmd(args, workers, &progress),
        Command::VerifyBundle(args) => verify_bundle_cmd(args),
        Command::Policy(PolicyCommand::Check { file }) => report(policy_check_cmd(file)),
    };
    progress.finish();
    code
}

fn report(result: Result<(), Error>) -> i32 {
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            error!(exit_code = EXIT_ERROR, "{e}");
            EXIT_ERROR
        }
    }
}

/// Signs a model: hash every file, build the manifest, sign, write the bundle.
fn attest_cmd(args: &AttestArgs, workers: usize, progress: &Progress) -> Result<(), Error> {
    let pem = read_pem("private key", &args.key)?;
    let key = PrivateKey::from_pem(&pem).map_err(|source| Error::Key {
        path: args.key.clone(),
        source,
    })?;
    let progress_fn = |n| progress.inc(n);
    let mut opts = hash_options(&args.model, &args.hashing, workers, &progress_fn)?;
    opts.ignore_paths
        .extend(model_dir::relative_inside(&args.model, &args.signature));
    let chain = match &args.certificate {
        None => None,
        Some(leaf_path) => {
            let mut chain =
                load_certificates("signing certificate", std::slice::from_ref(leaf_path))?;
            chain.truncate(1);
            chain.extend(load_certificates(
                "certificate chain",
                &args.certificate_chain,
            )?);
            Some(chain)
        }
    };
    let manifest = attest::hash_model(&opts)?;
    let bundle = attest::sign(&manifest, &key, chain.as_deref())?;
    write_atomic(&args.signature, &bundle, 0o644).map_err(|source| Error::Write {
        path: args.signature.clone(),
        source,
    })?;
    info!(
        model = %args.model.display(),
        signature = %args.signature.display(),
        root_digest = %format!("sha256:{}", hex::encode(manifest.root_digest)),
        resources = manifest.resources.len(),
        key_fingerprint = %key.public_key().fingerprint(),
        "signed"
    );
    Ok(())
}

/// Prints the root digest a signer would put in the statement's subject.
fn digest_cmd(args: &DigestArgs, workers: usize, progress: &Progress) -> Result<(), Error> {
    let progress_fn = |n| progress.inc(n);
    let opts = hash_options(&args.model, &args.hashing, workers, &progress_fn)?;
    let manifest = attest::hash_model(&opts)?;
    progress.finish();
    println!("sha256:{}", hex::encode(manifest.root_digest));
    Ok(())
}

/// Verifies a model; writes the measurement whatever the verdict.
fn verify_cmd(args: &VerifyArgs, workers: usize, progress: &Progress) -> i32 {
    let prepared = load_policy(args).and_then(|policy| {
        let ignores = args
            .ignore_paths
            .iter()
            .map(|p| model_relative(&args.model, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((policy, ignores))
    });
    let (policy, extra_ignores) = match prepared {
        Ok(v) => v,
        Err(e) => {
            error!(exit_code = EXIT_ERROR, "{e}");
            record(args, || Measurement::error(&args.model, e.to_string()));
            return EXIT_ERROR;
        }
    };
    let model_name = args
        .model_name
        .clone()
        .unwrap_or_else(|| model_dir::display_name(&args.model));
    let rule = match policy.select(&model_name, None) {
        Ok(rule) => rule,
        Err(why) => {
            let rejection = Rejection::new(Problem::Policy(why), Evidence::default());
            return reject(args, &rejection, None);
        }
    };
    let decided = || PolicyOut {
        name: &policy.name,
        rule: &rule.name,
        mode: if rule.mode == Mode::Warn {
            "warn"
        } else {
            "enforce"
        },
    };
    let progress_fn = |n| progress.inc(n);
    let request = Request {
        model: &args.model,
        signatures: &args.signature,
        rule,
        extra_ignores: &extra_ignores,
        ignore_unsigned_files: args.ignore_unsigned_files,
        workers,
        progress: &progress_fn,
    };
    let result = verify::verify(&request);
    progress.finish();
    match result {
        Ok(verified) => {
            for path in &verified.unsigned_tolerated {
                warn!(path = %path, "unsigned file tolerated");
            }
            for why in &verified.disregarded {
                warn!("signature not counted: {why}");
            }
            let code = record(args, || {
                Measurement::verified(&args.model, &verified).with_policy(decided())
            });
            let signers: Vec<String> = verified
                .signers
                .iter()
                .map(|s| format!("{} [{}]", s.signer.describe(), s.authority))
                .collect();
            info!(
                model = %args.model.display(),
                root_digest = %format!("sha256:{}", hex::encode(verified.manifest.root_digest)),
                resources = verified.manifest.resources.len(),
                rule = %verified.rule,
                signer = %signers.join("; "),
                "verified"
            );
            code
        }
        Err(rejection) => reject(args, &rejection, Some((rule.mode, decided()))),
    }
}

/// Validates a policy and prints what it requires.
fn policy_check_cmd(file: &Path) -> Result<(), Error> {
    let policy = Policy::from_file(file).map_err(|e| Error::Usage(e.to_string()))?;
    print!("{}", policy.explain());
    Ok(())
}

/// Reports a rejection: every problem, the measurement, the exit code. In a
/// rule's warn mode the model may start: the verdict is `unverified-allowed`
/// and the failure is logged as loudly as an enforced one.
fn reject(args: &VerifyArgs, rejection: &Rejection, policy: Option<(Mode, PolicyOut<'_>)>) -> i32 {
    for problem in &rejection.problems {
        error!(
            kind = problem.kind(),
            path = problem.path().unwrap_or(""),
            "{problem}"
        );
    }
    let code = rejection.exit_code();
    match policy {
        Some((Mode::Warn, decided)) => {
            let rule = decided.rule.to_string();
            let written = record(args, || {
                Measurement::rejected(&args.model, rejection)
                    .with_policy(decided)
                    .allowed_by_warn_mode()
            });
            error!(
                exit_code = written,
                model = %args.model.display(),
                rule = %rule,
                "{}; POLICY RULE {rule} IS IN WARN MODE: the workload is allowed to start UNVERIFIED (enforce mode would exit {code})",
                rejection.summary()
            );
            written
        }
        decided => {
            record(args, || {
                let doc = Measurement::rejected(&args.model, rejection);
                match decided {
                    Some((_, d)) => doc.with_policy(d),
                    None => doc,
                }
            });
            error!(exit_code = code, model = %args.model.display(), "{}; do not start the workload", rejection.summary());
            code
        }
    }
}

/// Verifies one Sigstore bundle over a file or digest: 0 verified, 1
/// rejected, 2 unusable input.
fn verify_bundle_cmd(args: &VerifyBundleArgs) -> i32 {
    use crate::verify_bundle::{Artifact, BundleCheckError, Signer, verify_bundle};
    let run = || -> Result<String, BundleCheckError> {
        let unusable = |e: Error| BundleCheckError::Unusable(e.to_string());
        let bundle = String::from_utf8(
            read_bounded("bundle", &args.bundle, crate::MAX_SIGNATURE_BYTES).map_err(unusable)?,
        )
        .map_err(|_| BundleCheckError::Rejected("the bundle is not UTF-8 JSON".into()))?;
        let artifact = Artifact::parse(&args.artifact).map_err(BundleCheckError::Unusable)?;
        let root = args.keyless.root().map_err(unusable)?;
        match &args.key {
            Some(path) => {
                let pem = read_pem("public key", path).map_err(unusable)?;
                verify_bundle(&bundle, &artifact, &Signer::Key(&pem), &root)?;
                Ok(format!("key {}", path.display()))
            }
            None => {
                let identity = args.keyless.identity().map_err(unusable)?;
                let result =
                    verify_bundle(&bundle, &artifact, &Signer::Identity(&identity), &root)?;
                Ok(result
                    .identity()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default())
            }
        }
    };
    match run() {
        Ok(signer) => {
            info!(bundle = %args.bundle.display(), artifact = %args.artifact, signer = %signer, "verified");
            EXIT_OK
        }
        Err(e) => {
            let code = if matches!(e, BundleCheckError::Rejected(_)) {
                EXIT_REJECTED
            } else {
                EXIT_ERROR
            };
            error!(exit_code = code, bundle = %args.bundle.display(), "{e}");
            code
        }
    }
}

/// Writes the measurement if one was asked for. A verified model whose
/// measurement cannot be written is not reported as verified.
fn record<'a>(args: &VerifyArgs, doc: impl FnOnce() -> Measurement<'a>) -> i32 {
    let Some(path) = &args.measurement else {
        return EXIT_OK;
    };
    match doc().write(path) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            error!(path = %path.display(), "cannot write measurement: {e}");
            // Never leave an older "verified" document behind.
            let _ = std::fs::remove_file(path);
            EXIT_ERROR
        }
    }
}

fn hash_options<'a>(
    model: &'a Path,
    args: &HashArgs,
    workers: usize,
    progress: &'a (dyn Fn(u64) + Sync),
) -> Result<HashOptions<'a>, Error> {
    let hash = HashAlgorithm::from_name(&args.hash)
        .ok_or_else(|| Error::Usage(format!("unknown hash {}", args.hash)))?;
    let method = args
        .shard_size
        .map_or(Method::Files, |shard_size| Method::Shards { shard_size });
    let ignore_paths = args
        .ignore_paths
        .iter()
        .map(|p| model_relative(model, p))
        .collect::<Result<_, _>>()?;
    Ok(HashOptions {
        model,
        hash,
        method,
        allow_symlinks: args.allow_symlinks,
        ignore_paths,
        workers,
        progress,
    })
}

/// Interprets an `--ignore-paths` value as a path relative to the model root.
///
/// Accepted: a path relative to the model (`tokenizer.json`), the same path
/// spelled through the model argument (`models/llama/tokenizer.json` for model
/// `models/llama`, as the reference CLI takes it), or an absolute path inside
/// the model. Anything that would name a path outside it is an error.
fn model_relative(model: &Path, path: &str) -> Result<String, Error> {
    let outside = || {
        Error::Usage(format!(
            "--ignore-paths {path}: not a path inside the model {}",
            model.display()
        ))
    };
    let p = Path::new(path);
    let rel: PathBuf = if p.is_absolute() {
        let root = std::fs::canonicalize(model).map_err(|_| outside())?;
        lexical(p)
            .strip_prefix(&root)
            .map_err(|_| outside())?
            .to_path_buf()
    } else if let Ok(rest) = lexical(p).strip_prefix(lexical(model)) {
        rest.to_path_buf()
    } else {
        p.to_path_buf()
    };
    rel.to_str()
        .and_then(normalize_relative)
        .ok_or_else(outside)
}

/// A path with `.` components dropped (no symlink resolution).
fn lexical(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

fn read_pem(what: &'static str, path: &Path) -> Result<String, Error> {
    let bytes = read_bounded(what, path, MAX_KEY_BYTES)?;
    String::from_utf8(bytes).map_err(|_| Error::Read {
        what,
        path: path.to_path_buf(),
        reason: "not a PEM text file".into(),
    })
}

/// The policy `verify` applies: the `--policy` file, or the trust flags as
/// a policy of one rule.
fn load_policy(args: &VerifyArgs) -> Result<Policy, Error> {
    match &args.policy {
        Some(path) => Policy::from_file(path).map_err(|e| Error::Usage(e.to_string())),
        None => load_trust(args).map(Policy::single),
    }
}

/// The trusted material the command-line flags give: keys, certificate
/// anchors, or a keyless identity.
fn load_trust(args: &VerifyArgs) -> Result<TrustedMaterial, Error> {
    if args.keyless.given() {
        let identities = vec![args.keyless.identity()?];
        let root = args.keyless.root()?;
        return Ok(TrustedMaterial::Sigstore(Box::new(Keyless {
            root,
            identities,
        })));
    }
    if !args.certificate_chain.is_empty() {
        let anchors = load_certificates("certificate chain", &args.certificate_chain)?;
        return Ok(TrustedMaterial::Certificates {
            anchors,
            allow_expired: args.allow_expired_certificate,
        });
    }
    let keys = args
        .key
        .iter()
        .map(|path| {
            let pem = read_pem("public key", path)?;
            PublicKey::from_pem(&pem).map_err(|source| Error::Key {
                path: path.clone(),
                source,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(TrustedMaterial::Keys(keys))
}

fn load_certificates(what: &'static str, paths: &[PathBuf]) -> Result<Vec<Certificate>, Error> {
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

/// A byte counter on a terminal, nothing otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} hashed {bytes} ({binary_bytes_per_sec})")
            {
                bar.set_style(style);
            }
            bar
        });
        Self { bar }
    }

    fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
