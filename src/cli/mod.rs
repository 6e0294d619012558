//! The command line: arguments, and one function per subcommand that wires
//! the library together and returns the process exit code.
//!
//! Exit codes: 0 verified (or signed, or digested); 1 rejected (drift, bad or
//! untrusted signature); 2 could not verify (usage, unreadable input, I/O).
//! Both non-zero codes mean "do not start the workload".

mod abort;
mod args;
mod init_cmd;
mod verify_cmd;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing::{error, info};

use crate::io::ReadError;
use crate::logging;
use crate::model::Method;
use crate::model::hashing::{self, HashAlgorithm};
use crate::model::paths::{self, normalize_relative};
use crate::oci;
use crate::oms::sign::{self, HashOptions};
use crate::policy::Policy;
use crate::trust::{Certificate, PrivateKey};
use crate::{Error, MAX_KEY_BYTES, read_bounded, write_atomic};
pub use args::*;

/// Exit code: the model was verified.
pub const EXIT_OK: i32 = 0;
/// Exit code: the model or its signature was checked and rejected.
pub const EXIT_REJECTED: i32 = 1;
/// Exit code: verification could not be carried out.
pub const EXIT_ERROR: i32 = 2;

/// Whether `word` names a subcommand (or `help`).
pub fn is_subcommand(word: &str) -> bool {
    use clap::CommandFactory as _;
    word == "help"
        || Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == word)
}

/// Runs the parsed command line and returns the exit code.
pub fn run(cli: Cli) -> i32 {
    // init's log lines go to stdout (one per step), as kubelet collects them.
    let to_stdout = matches!(cli.command, Command::Init(_));
    logging::init(cli.log_format, cli.quiet, to_stdout);
    let workers = cli
        .jobs
        .filter(|&j| j > 0)
        .unwrap_or_else(hashing::default_workers);
    let progress = Progress::new(cli.quiet);
    let code = match &cli.command {
        Command::Attest(args) => report(attest_cmd(args, workers, &progress)),
        Command::Digest(args) => report(digest_cmd(args, workers, &progress)),
        Command::Verify(args) => verify_cmd::verify_cmd(args, workers, &progress),
        Command::Pull(args) => verify_cmd::pull_cmd(args, workers, &progress),
        Command::Push(args) => report(push_cmd(args, workers, &progress)),
        Command::VerifyBundle(args) => verify_bundle_cmd(args),
        Command::Policy(PolicyCommand::Check { file }) => report(policy_check_cmd(file)),
        Command::Init(args) => init_cmd::init_cmd(args, workers, &progress),
        Command::Measurement(MeasurementCommand::Verify { log, expect_chain }) => {
            measurement_verify_cmd(log, expect_chain.as_deref())
        }
    };
    progress.finish();
    code
}

/// `modelgate measurement verify LOG`: exit 0 and the entry count and last
/// chain on stdout, or exit 1 naming the first broken entry.
fn measurement_verify_cmd(log: &Path, expect_chain: Option<&str>) -> i32 {
    match crate::measure::log::verify_log(log, expect_chain) {
        Ok(summary) => {
            println!("{} entries, chain {}", summary.entries, summary.chain);
            info!(log = %log.display(), entries = summary.entries, chain = %summary.chain, "measurement log verified");
            EXIT_OK
        }
        Err(e @ crate::measure::log::LogError::Io { .. }) => {
            error!(exit_code = EXIT_ERROR, "{e}");
            EXIT_ERROR
        }
        Err(e) => {
            error!(exit_code = EXIT_REJECTED, "{e}");
            EXIT_REJECTED
        }
    }
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
    let (key, chain) = load_signer(&args.signer)?;
    let progress_fn = |n| progress.inc(n);
    let manifest = match remote_model(&args.model, &args.hashing, &args.registry)? {
        Some((manifest, digest)) => {
            info!(model = %args.model, digest = %digest, "signing from the registry's manifest, without downloading");
            manifest
        }
        None => {
            let model = Path::new(&args.model);
            let mut opts = hash_options(model, &args.hashing, workers, &progress_fn)?;
            opts.ignore_paths
                .extend(paths::relative_inside(model, &args.signature));
            sign::hash_model(&opts)?
        }
    };
    let bundle = sign::sign(&manifest, &key, chain.as_deref())?;
    write_atomic(&args.signature, &bundle, 0o644).map_err(|source| Error::Write {
        path: args.signature.clone(),
        source,
    })?;
    info!(
        model = %args.model,
        signature = %args.signature.display(),
        root_digest = %format!("sha256:{}", hex::encode(manifest.root_digest)),
        resources = manifest.resources.len(),
        key_fingerprint = %key.public_key().fingerprint(),
        "signed"
    );
    Ok(())
}

/// For an `oci://` model, its `files`/`sha256` manifest from the registry's
/// manifest (no blob downloaded) and the OCI digest; `None` for a path.
fn remote_model(
    model: &str,
    hashing: &HashArgs,
    registry: &RegistryArgs,
) -> Result<Option<(crate::oms::manifest::Manifest, String)>, Error> {
    if !oci::ModelRef::is_oci(model) {
        return Ok(None);
    }
    if registry.subpath.is_some() {
        return Err(Error::Usage(
            "--subpath names a folder inside a container image's tar layers, whose files' digests the manifest does not give; pull the model and attest the folder".into(),
        ));
    }
    if hashing.hash != "sha256"
        || hashing.shard_size.is_some()
        || hashing.allow_symlinks
        || !hashing.ignore_paths.is_empty()
    {
        return Err(Error::Usage(
            "an oci:// model is signed by file with sha256 (its layer digests): drop --hash, --shard-size, --allow-symlinks and --ignore-paths".into(),
        ));
    }
    let reference = oci::ModelRef::parse(model).map_err(|e| Error::Usage(e.to_string()))?;
    let timeout = registry.timeout.map(std::time::Duration::from_secs);
    oci::remote_manifest(&reference, &registry.options(), timeout)
        .map(Some)
        .map_err(|e| Error::Usage(e.to_string()))
}

/// The private key, and for the certificate method the signing certificate
/// followed by the rest of the chain.
fn load_signer(args: &SignerArgs) -> Result<(PrivateKey, Option<Vec<Certificate>>), Error> {
    let pem = read_pem("private key", &args.key)?;
    let key = PrivateKey::from_pem(&pem).map_err(|source| Error::Key {
        path: args.key.clone(),
        source,
    })?;
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
    Ok((key, chain))
}

/// Signs a model (files, SHA-256: a layer's digest is then its file's) and
/// pushes it with its signature attached, for CI.
fn push_cmd(args: &PushArgs, workers: usize, progress: &Progress) -> Result<(), Error> {
    let reference =
        oci::ModelRef::parse(&args.reference).map_err(|e| Error::Usage(e.to_string()))?;
    if args.registry.subpath.is_some() {
        return Err(Error::Usage(
            "push writes a ModelPack artifact, not a container image: drop --subpath".into(),
        ));
    }
    let (key, chain) = load_signer(&args.signer)?;
    let progress_fn = |n| progress.inc(n);
    let hashing = HashArgs {
        hash: "sha256".into(),
        shard_size: None,
        allow_symlinks: false,
        ignore_paths: Vec::new(),
    };
    let mut opts = hash_options(&args.model, &hashing, workers, &progress_fn)?;
    if let Some(sig) = &args.signature {
        opts.ignore_paths
            .extend(paths::relative_inside(&args.model, sig));
    }
    let manifest = sign::hash_model(&opts)?;
    if manifest
        .resources
        .iter()
        .any(|(k, _)| k.path == crate::model::SINGLE_FILE_NAME)
    {
        return Err(Error::Usage(
            "push takes a model folder, not a single file".into(),
        ));
    }
    let bundle = sign::sign(&manifest, &key, chain.as_deref())?;
    if let Some(sig) = &args.signature {
        write_atomic(sig, &bundle, 0o644).map_err(|source| Error::Write {
            path: sig.clone(),
            source,
        })?;
    }
    let options = args.registry.options();
    let pushed = oci::push_model(
        &reference,
        &options,
        &args.model,
        &manifest,
        &bundle,
        args.registry.timeout.map(std::time::Duration::from_secs),
    )
    .map_err(|e| Error::Usage(e.to_string()))?;
    info!(
        model = %args.model.display(),
        reference = %reference,
        digest = %pushed.digest,
        signature = %reference.pinned(&pushed.signature_digest).canonical(),
        blobs_sent = pushed.sent,
        blobs_skipped = pushed.skipped,
        referrers_api = pushed.referrers_api,
        root_digest = %format!("sha256:{}", hex::encode(manifest.root_digest)),
        "pushed"
    );
    println!("{}", pushed.digest);
    Ok(())
}

/// Prints the root digest a signer would put in the statement's subject.
fn digest_cmd(args: &DigestArgs, workers: usize, progress: &Progress) -> Result<(), Error> {
    let progress_fn = |n| progress.inc(n);
    let manifest = match remote_model(&args.model, &args.hashing, &args.registry)? {
        Some((manifest, _)) => manifest,
        None => {
            let opts = hash_options(Path::new(&args.model), &args.hashing, workers, &progress_fn)?;
            sign::hash_model(&opts)?
        }
    };
    progress.finish();
    println!("sha256:{}", hex::encode(manifest.root_digest));
    Ok(())
}

/// Validates a policy and prints what it requires.
fn policy_check_cmd(file: &Path) -> Result<(), Error> {
    let policy = Policy::from_file(file).map_err(|e| Error::Usage(e.to_string()))?;
    print!("{}", policy.explain());
    Ok(())
}

/// Verifies one Sigstore bundle over a file or digest: 0 verified, 1
/// rejected, 2 unusable input.
fn verify_bundle_cmd(args: &VerifyBundleArgs) -> i32 {
    use crate::verify::artifact::{Artifact, BundleCheckError, Signer, verify_bundle};
    let run = || -> Result<String, BundleCheckError> {
        let unusable = |e: Error| BundleCheckError::Unusable(e.to_string());
        let bundle = String::from_utf8(
            read_bounded("bundle", &args.bundle, crate::MAX_SIGNATURE_BYTES)
                .map_err(|e| unusable(e.into()))?,
        )
        .map_err(|_| BundleCheckError::Rejected("the bundle is not UTF-8 JSON".into()))?;
        let artifact = Artifact::parse(&args.artifact).map_err(BundleCheckError::Unusable)?;
        let root = args.keyless.root().map_err(unusable)?;
        match &args.key {
            Some(path) => {
                let pem = read_pem("public key", path).map_err(unusable)?;
                let signer = Signer::Key {
                    pem: &pem,
                    require_tlog: args.keyless.trusted_root.is_some(),
                };
                verify_bundle(&bundle, &artifact, &signer, &root)?;
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

/// Interprets an `--ignore-paths` value as a path relative to the model
/// root (see [`paths::locate`] for the spellings accepted).
fn model_relative(model: &Path, path: &str) -> Result<String, Error> {
    let rel = paths::locate(model, Path::new(path)).map_err(|why| match why {
        paths::LocateError::Outside => Error::Usage(format!(
            "--ignore-paths {path}: not a path inside the model {}",
            model.display()
        )),
        other => Error::Usage(format!("--ignore-paths {path}: {other}")),
    })?;
    normalize_relative(&rel).ok_or_else(|| {
        Error::Usage(format!(
            "--ignore-paths {path}: not a path inside the model {}",
            model.display()
        ))
    })
}

fn read_pem(what: &'static str, path: &Path) -> Result<String, Error> {
    let bytes = read_bounded(what, path, MAX_KEY_BYTES)?;
    String::from_utf8(bytes).map_err(|_| {
        Error::Read(ReadError {
            what,
            path: path.to_path_buf(),
            reason: "not a PEM text file".into(),
        })
    })
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

/// A byte counter on a terminal, nothing otherwise; for a pull, a bar per
/// blob (bytes, rate, time left) under it.
struct Progress {
    bar: Option<ProgressBar>,
    multi: Option<MultiProgress>,
    blobs: std::sync::Mutex<Vec<ProgressBar>>,
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
        Self {
            multi: bar.as_ref().map(|_| MultiProgress::new()),
            bar,
            blobs: std::sync::Mutex::new(Vec::new()),
        }
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

impl Progress {
    /// The bar of a blob, on a terminal.
    fn blob(&self, handle: usize) -> Option<ProgressBar> {
        self.multi.as_ref()?;
        let blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        blobs.get(handle).cloned()
    }
}

impl oci::pull::Watch for Progress {
    fn started(&self, shown: &str, size: u64) -> usize {
        let Some(multi) = &self.multi else {
            return 0;
        };
        let bar = multi.add(ProgressBar::new(size));
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:30!} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_message(shown.to_string());
        let mut blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        blobs.push(bar);
        blobs.len() - 1
    }

    fn received(&self, handle: usize, n: u64) {
        if let Some(bar) = self.blob(handle) {
            bar.inc(n);
        }
    }

    fn finished(&self, handle: usize) {
        if let Some(bar) = self.blob(handle) {
            bar.finish_and_clear();
        }
    }
}
