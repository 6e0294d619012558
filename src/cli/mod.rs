//! The command line: arguments, and one function per subcommand that turns
//! them into the library's inputs and returns the [`Verdict`] (`main.rs`
//! exits with its code: 0 verified, or signed, or digested; 1 rejected; 2
//! could not verify; both non-zero codes mean "do not start the workload").
//!
//! The process has one tokio runtime, built here; the library's registry
//! steps are async and only this module blocks on them.

mod args;
mod init_cmd;
mod verify_cmd;
mod watch_cmd;
mod webhook;

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing::{error, info};

use crate::gate::{self, Error, read_pem};
use crate::io::read_bounded;
use crate::logging;
use crate::model::hashing::{self, HashAlgorithm};
use crate::oci;
use crate::policy::Policy;
use crate::verify::Verdict;
pub use args::*;

/// Whether `word` names a subcommand (or `help`).
pub fn is_subcommand(word: &str) -> bool {
    use clap::CommandFactory as _;
    word == "help"
        || Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == word)
}

/// Runs the parsed command line and returns its verdict.
pub fn run(cli: Cli) -> Verdict {
    // init's log lines go to stdout (one per step), as kubelet collects them.
    let to_stdout = matches!(cli.command, Command::Init(_));
    logging::init(cli.log_format, cli.quiet, to_stdout);
    // Blocked before any other thread exists (the runtime's included), so
    // every thread inherits the mask and only init's (or watch's) watcher
    // takes SIGTERM.
    let signals = matches!(cli.command, Command::Init(_) | Command::Watch(_))
        .then(init_cmd::block_termination_signals)
        .flatten();
    // Commands that reach no registry answer without starting the runtime
    // (its two worker threads are start-up time for nothing).
    match &cli.command {
        Command::VerifyBundle(args) => return verify_bundle_cmd(args),
        Command::Policy(PolicyCommand::Check { file }) => return report(policy_check_cmd(file)),
        Command::Measurement(MeasurementCommand::Verify { log, expect_chain }) => {
            return measurement_verify_cmd(log, expect_chain.as_deref());
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(
                exit_code = Verdict::Error.exit_code(),
                "cannot start the network runtime: {e}"
            );
            return Verdict::Error;
        }
    };
    let workers = cli
        .jobs
        .filter(|&j| j > 0)
        .unwrap_or_else(hashing::default_workers);
    let progress = Progress::new(cli.quiet);
    let rt = &runtime;
    let verdict = match &cli.command {
        Command::Attest(args) => report(attest_cmd(args, workers, &progress, rt)),
        Command::Digest(args) => report(digest_cmd(args, workers, &progress, rt)),
        Command::Verify(args) => verify_cmd::verify_cmd(args, workers, &progress, rt),
        Command::Pull(args) => verify_cmd::pull_cmd(args, workers, &progress, rt),
        Command::Push(args) => report(push_cmd(args, workers, &progress, rt)),
        Command::Init(args) => init_cmd::init_cmd(args, workers, &progress, rt, signals),
        Command::VerifyBundle(_) | Command::Policy(_) | Command::Measurement(_) => {
            unreachable!("answered above, without the runtime")
        }
        Command::Webhook(args) => webhook::webhook_cmd(args, workers, rt),
        Command::Watch(args) => watch_cmd::watch_cmd(args, workers, rt, signals),
    };
    progress.finish();
    verdict
}

/// `modelgate measurement verify LOG`: the entry count and last chain on
/// stdout, or a rejection naming the first broken entry.
fn measurement_verify_cmd(log: &Path, expect_chain: Option<&str>) -> Verdict {
    match crate::measure::log::verify_log(log, expect_chain) {
        Ok(summary) => {
            println!("{} entries, chain {}", summary.entries, summary.chain);
            info!(log = %log.display(), entries = summary.entries, chain = %summary.chain, "measurement log verified");
            Verdict::Verified
        }
        Err(e) => {
            let verdict = match e {
                crate::measure::log::LogError::Io { .. } => Verdict::Error,
                crate::measure::log::LogError::Broken { .. } => Verdict::Rejected,
            };
            error!(exit_code = verdict.exit_code(), "{e}");
            verdict
        }
    }
}

fn report(result: Result<(), Error>) -> Verdict {
    match result {
        Ok(()) => Verdict::Verified,
        Err(e) => {
            // A command that signs, pushes or checks a file ends in an error
            // whatever went wrong: it had nothing to reject.
            error!(exit_code = Verdict::Error.exit_code(), "{e}");
            Verdict::Error
        }
    }
}

/// The gate's view of a model given on the command line.
fn model<'a>(
    given: &'a str,
    registry: &'a crate::oci::RegistryOptions,
    timeout: u64,
    workers: usize,
    progress: &'a (dyn Fn(u64) + Sync),
) -> gate::sign::Model<'a> {
    gate::sign::Model {
        given,
        registry,
        deadline: Some(oci::Deadline::after(std::time::Duration::from_secs(
            timeout,
        ))),
        workers,
        progress,
    }
}

/// The hashing flags as the gate takes them.
fn hashing(args: &HashArgs) -> Result<gate::sign::Hashing, Error> {
    Ok(gate::sign::Hashing {
        hash: HashAlgorithm::from_name(&args.hash)
            .ok_or_else(|| Error::Usage(format!("unknown hash {}", args.hash)))?,
        shard_size: args.shard_size,
        allow_symlinks: args.allow_symlinks,
        ignore_paths: args.ignore_paths.clone(),
    })
}

/// The signer flags as the gate takes them; for `--sigstore`, the token
/// source found (flags first, then the environment CI systems set).
fn signer(args: &SignerArgs, registry: &RegistryArgs) -> Result<gate::sign::Signing, Error> {
    if !args.sigstore.sigstore {
        let key = args
            .key
            .clone()
            .ok_or_else(|| Error::Usage("--key or --sigstore is required".into()))?;
        return Ok(gate::sign::Signing::Files(gate::sign::SignerFiles {
            key,
            certificate: args.certificate.clone(),
            certificate_chain: args.certificate_chain.clone(),
        }));
    }
    let s = &args.sigstore;
    Ok(gate::sign::Signing::Sigstore(gate::sign::Sigstore {
        token: token_source(s),
        signing_config: s.signing_config.clone(),
        trusted_root: s.trusted_root.clone(),
        ca_files: registry.ca_file.clone(),
        timeout: std::time::Duration::from_secs(registry.timeout),
        connect_timeout: std::time::Duration::from_secs(registry.read_timeout),
    }))
}

/// Where the identity token comes from, in this order: `--identity-token`
/// (a value, or a file when it names one, as cosign reads it),
/// `--identity-token-file`, `SIGSTORE_ID_TOKEN` (GitLab's `id_tokens`, and
/// others), GitHub Actions' `ACTIONS_ID_TOKEN_REQUEST_URL` and
/// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`. A flag wins over the environment: it
/// is what this run was told.
fn token_source(args: &SigstoreArgs) -> Option<crate::keyless::TokenSource> {
    use crate::keyless::TokenSource;
    let secret = |v: String| sigstore_oidc::SecretString::new(v);
    if let Some(given) = &args.identity_token {
        let path = Path::new(given.0.expose_secret());
        return Some(if path.is_file() {
            TokenSource::File {
                origin: "--identity-token",
                path: path.to_path_buf(),
            }
        } else {
            TokenSource::Value {
                origin: "--identity-token",
                token: given.0.clone(),
            }
        });
    }
    if let Some(path) = &args.identity_token_file {
        return Some(TokenSource::File {
            origin: "--identity-token-file",
            path: path.clone(),
        });
    }
    if let Some(token) = std::env::var("SIGSTORE_ID_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        return Some(TokenSource::Value {
            origin: "SIGSTORE_ID_TOKEN",
            token: secret(token),
        });
    }
    match (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) {
        (Ok(request_url), Ok(request_token)) if !request_url.is_empty() => {
            Some(TokenSource::GitHubActions {
                request_url,
                request_token: secret(request_token),
            })
        }
        _ => None,
    }
}

/// `attest`: hash, sign, write the bundle.
fn attest_cmd(
    args: &AttestArgs,
    workers: usize,
    progress: &Progress,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Error> {
    let progress_fn = |n| progress.inc(n);
    let options = args.registry.options();
    let model = model(
        &args.model,
        &options,
        args.registry.timeout,
        workers,
        &progress_fn,
    );
    let hashing = hashing(&args.hashing)?;
    runtime.block_on(gate::sign::attest(
        &model,
        &hashing,
        &signer(&args.signer, &args.registry)?,
        &args.signature,
    ))
}

/// `push`: sign the folder and push it with its signature; prints the
/// pushed digest.
fn push_cmd(
    args: &PushArgs,
    workers: usize,
    progress: &Progress,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Error> {
    let progress_fn = |n| progress.inc(n);
    let options = args.registry.options();
    let given = args.model.to_string_lossy();
    let model = model(
        &given,
        &options,
        args.registry.timeout,
        workers,
        &progress_fn,
    );
    let pushed = runtime.block_on(gate::sign::push(
        &model,
        &args.reference,
        &signer(&args.signer, &args.registry)?,
        args.signature.as_deref(),
    ))?;
    println!("{}", pushed.digest);
    Ok(())
}

/// `digest`: prints the root digest a signer would put in the statement's
/// subject.
fn digest_cmd(
    args: &DigestArgs,
    workers: usize,
    progress: &Progress,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Error> {
    let progress_fn = |n| progress.inc(n);
    let options = args.registry.options();
    let model = model(
        &args.model,
        &options,
        args.registry.timeout,
        workers,
        &progress_fn,
    );
    let hashing = hashing(&args.hashing)?;
    let digest = runtime.block_on(gate::sign::digest(&model, &hashing))?;
    progress.finish();
    println!("{digest}");
    Ok(())
}

/// Validates a policy and prints what it requires.
fn policy_check_cmd(file: &Path) -> Result<(), Error> {
    let policy = Policy::from_path(file)?;
    print!("{}", policy.explain());
    Ok(())
}

/// Verifies one Sigstore bundle over a file or digest: verified, rejected,
/// or an error for unusable input.
fn verify_bundle_cmd(args: &VerifyBundleArgs) -> Verdict {
    use crate::verify::artifact::{Artifact, BundleCheckError, Signer, verify_bundle};
    let run = || -> Result<String, BundleCheckError> {
        let unusable = |e: Error| BundleCheckError::Unusable(e.to_string());
        let bundle = String::from_utf8(
            read_bounded("bundle", &args.bundle, crate::MAX_SIGNATURE_BYTES)
                .map_err(|e| unusable(e.into()))?,
        )
        .map_err(|_| BundleCheckError::Rejected("the bundle is not UTF-8 JSON".into()))?;
        let artifact = Artifact::parse(&args.artifact)
            .map_err(|e| BundleCheckError::Unusable(e.to_string()))?;
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
            Verdict::Verified
        }
        Err(e) => {
            let verdict = if matches!(e, BundleCheckError::Rejected(_)) {
                Verdict::Rejected
            } else {
                Verdict::Error
            };
            error!(exit_code = verdict.exit_code(), bundle = %args.bundle.display(), "{e}");
            verdict
        }
    }
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

impl crate::gate::Display for Progress {
    fn hashed(&self, n: u64) {
        self.inc(n);
    }

    fn finished(&self) {
        self.finish();
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
