//! `modelgate init`: the init container. Configured the Kubernetes way, by
//! `MODELGATE_*` environment variables named like the flags, all checked
//! before any work starts: a missing, unknown (a typo of a `MODELGATE_`
//! name) or contradictory setting is exit 2 naming the variable. Then it
//! fetches or finds the model, verifies it, and records the measurement
//! (with the pod and the node), the measurement log entry and the
//! termination message. A deadline (`MODELGATE_TIMEOUT`) and SIGTERM end
//! the run with exit 2 and nothing placed (see [`super::abort`]).
//!
//! KServe runs a storage initializer as `<uri> <mountPath>`; `main` turns
//! that into `init --source <uri> --target <mountPath>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args as _;
use tracing::{error, info};

use super::args::{CheckArgs, InitArgs, KeylessArgs, RegistryArgs};
use super::{EXIT_ERROR, Progress, abort, verify_cmd};
use crate::measure::{Measurement, Pod, RunContext, log};
use crate::node::GpuFacts;
use crate::oci::ModelRef;
use crate::policy::GpuRequirement;

/// Where an oci:// model goes without `MODELGATE_TARGET` (KServe's path).
pub const DEFAULT_TARGET: &str = "/mnt/models";
/// The measurement's default place: a shared emptyDir.
pub const DEFAULT_MEASUREMENT: &str = "/run/modelgate/measurement.json";
/// kubelet's default termination-message path.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";
/// Variables read by the global options and logging, also allowed.
const GLOBAL_VARIABLES: &[&str] = &["MODELGATE_LOG", "MODELGATE_LOG_FORMAT", "MODELGATE_JOBS"];
/// URI schemes KServe may hand a storage initializer that modelgate does
/// not fetch itself.
const NOT_FETCHED: &[&str] = &[
    "s3://",
    "gs://",
    "hf://",
    "https://",
    "http://",
    "pvc://",
    "hdfs://",
    "webhdfs://",
];

/// A setting that cannot be used, named by its variable.
#[derive(Debug)]
struct ConfigError(String);

/// Where the model comes from.
enum Source {
    /// A registry reference, pulled into `target`.
    Oci { reference: String, target: PathBuf },
    /// A mounted folder, verified in place, or copied to `target` first.
    Folder {
        path: PathBuf,
        target: Option<PathBuf>,
    },
}

/// The checked configuration.
struct Plan {
    source: Source,
    checks: CheckArgs,
    registry: RegistryArgs,
    deadline: Option<Duration>,
    /// The GPU pathway, measured under `MODELGATE_HOST_ROOT`.
    gpu: GpuFacts,
    /// What the policy requires of it, if anything.
    gpu_requirement: Option<GpuRequirement>,
}

/// Runs `init`.
pub(super) fn init_cmd(args: &InitArgs, workers: usize, progress: &Progress) -> i32 {
    // Blocked before any other thread exists, so every thread inherits the
    // mask and only the watcher below receives SIGTERM.
    let signals = block_termination_signals();
    let plan = match configure(args) {
        Ok(plan) => plan,
        Err(ConfigError(message)) => return config_error(args, &message),
    };
    let (kind, model) = match &plan.source {
        Source::Oci { reference, target } => {
            ("oci", format!("{reference} -> {}", target.display()))
        }
        Source::Folder { path, target: None } => ("folder", path.display().to_string()),
        Source::Folder {
            path,
            target: Some(t),
        } => (
            "folder-copy",
            format!("{} -> {}", path.display(), t.display()),
        ),
    };
    info!(
        step = "config",
        source = kind,
        model = %model,
        deadline_seconds = plan.deadline.map(|d| d.as_secs()),
        measurement = ?plan.checks.measurement,
        "configuration accepted"
    );
    info!(
        step = "node",
        gpu = plan.gpu.present,
        driver = plan.gpu.driver_version.as_deref().unwrap_or("none"),
        gpus = plan.gpu.gpus.len(),
        libraries = plan.gpu.libraries.len(),
        "GPU pathway measured"
    );
    if let Some(requirement) = &plan.gpu_requirement
        && let Err(failures) = requirement.check(&plan.gpu)
    {
        return gpu_rejected(&plan, &failures);
    }
    watch(&plan, signals);
    match &plan.source {
        Source::Oci { reference, target } => verify_cmd::pull_and_verify(
            reference,
            Some(target),
            &plan.checks,
            &plan.registry,
            workers,
            progress,
        ),
        Source::Folder { path, target: None } => {
            verify_cmd::verify_in_place(path, &plan.checks, workers, progress)
        }
        Source::Folder {
            path,
            target: Some(target),
        } => verify_cmd::copy_and_verify(path, target, &plan.checks, workers, progress),
    }
}

/// The node does not meet the policy's GPU requirement: rejected before
/// anything is fetched or verified (exit 1).
fn gpu_rejected(plan: &Plan, failures: &[String]) -> i32 {
    let message = format!(
        "the node's GPU pathway does not meet the policy: {}",
        failures.join("; ")
    );
    error!(
        step = "node",
        exit_code = super::EXIT_REJECTED,
        "{message}; do not start the workload"
    );
    if let Some(path) = &plan.checks.measurement {
        let context = plan.checks.context.as_deref();
        let shown = match &plan.source {
            Source::Oci { reference, .. } => PathBuf::from(reference),
            Source::Folder { path, .. } => path.clone(),
        };
        let doc = Measurement::failed(&shown, "rejected", message).with_context(
            context.and_then(|c| c.pod.as_ref()),
            context.and_then(|c| c.node.as_ref()),
        );
        let code = verify_cmd::write_measurement(path, &doc.to_bytes(), context);
        if code != super::EXIT_OK {
            return code;
        }
    }
    super::EXIT_REJECTED
}

/// Reports a configuration error: the log line, the termination message and
/// (when its folder exists) an `error` measurement.
fn config_error(args: &InitArgs, message: &str) -> i32 {
    error!(
        step = "config",
        exit_code = EXIT_ERROR,
        "{message}; do not start the workload"
    );
    let context = RunContext {
        pod: Pod::from_env(),
        node: None,
        measurement_log: None,
        termination_log: termination_log(args.termination_log.as_deref())
            .ok()
            .flatten(),
    };
    let measurement = PathBuf::from(args.measurement.as_deref().unwrap_or(DEFAULT_MEASUREMENT));
    if measurement.parent().is_some_and(Path::is_dir) {
        let shown = PathBuf::from(args.source.as_deref().unwrap_or("(no MODELGATE_SOURCE)"));
        let doc = Measurement::failed(&shown, "error", message.to_string())
            .with_context(context.pod.as_ref(), None);
        verify_cmd::write_measurement(&measurement, &doc.to_bytes(), Some(&context));
    } else if let Some(file) = &context.termination_log {
        let text = log::cut(
            format!("modelgate: error: {message}\n"),
            log::MAX_TERMINATION_BYTES,
        );
        let _ = std::fs::write(file, text);
    }
    EXIT_ERROR
}

/// Every `MODELGATE_*` variable `init` reads.
fn known_variables() -> Vec<String> {
    let mut names: Vec<String> = InitArgs::augment_args(clap::Command::new("init"))
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    names.extend(GLOBAL_VARIABLES.iter().map(|s| s.to_string()));
    names
}

/// The closest known name to `unknown`, for "did you mean".
fn closest<'a>(unknown: &str, known: &'a [String]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(unknown, k), k.as_str()))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

/// A boolean setting: true/false, 1/0, yes/no.
fn boolean(var: &str, value: Option<&str>) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(ConfigError(format!(
            "{var}={other:?} is not a boolean; use true or false"
        ))),
    }
}

/// A duration: seconds, or a number with s, m or h.
fn duration(var: &str, value: &str) -> Result<Duration, ConfigError> {
    let bad = || {
        ConfigError(format!(
            "{var}={value:?} is not a duration; write seconds (600) or 90s, 10m, 1h"
        ))
    };
    let (number, unit) = match value
        .trim()
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
    {
        Some((i, _)) => value.trim().split_at(i),
        None => (value.trim(), "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(bad()),
    };
    if seconds == 0 {
        return Err(ConfigError(format!(
            "{var}={value:?}: the deadline must be positive"
        )));
    }
    Ok(Duration::from_secs(seconds))
}

/// A file setting: it must name a readable file.
fn file(var: &str, value: &str) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(value);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(ConfigError(format!("{var}={value}: not a file"))),
        Err(e) => Err(ConfigError(format!(
            "{var}={value}: {e}; mount it (a ConfigMap or Secret) or fix the path"
        ))),
    }
}

/// A setting naming a file to write: its folder must exist.
fn writable_in_folder(var: &str, value: &str) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(value);
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !folder.is_dir() {
        return Err(ConfigError(format!(
            "{var}={value}: the folder {} does not exist; mount a volume there (an emptyDir) or set {var}",
            folder.display()
        )));
    }
    Ok(path)
}

/// The termination-message file: as set (its folder must exist), or the
/// kubelet default when it exists (outside a pod there is none).
fn termination_log(value: Option<&str>) -> Result<Option<PathBuf>, ConfigError> {
    match value {
        Some(v) => writable_in_folder("MODELGATE_TERMINATION_LOG", v).map(Some),
        None => Ok(Path::new(DEFAULT_TERMINATION_LOG)
            .exists()
            .then(|| PathBuf::from(DEFAULT_TERMINATION_LOG))),
    }
}

/// Checks every setting and builds the plan; nothing is fetched or written.
fn configure(args: &InitArgs) -> Result<Plan, ConfigError> {
    let known = known_variables();
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("MODELGATE_") && !known.contains(k))
        .collect();
    unknown.sort();
    if let Some(name) = unknown.first() {
        let hint = closest(name, &known)
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        return Err(ConfigError(format!(
            "{name} is not a modelgate setting{hint}; fix its name or remove it (every MODELGATE_ variable must mean something, so a typo cannot silently drop a check)"
        )));
    }
    let source = args.source.as_deref().ok_or_else(|| {
        ConfigError(
            "MODELGATE_SOURCE is not set: give the model, a folder or oci://REGISTRY/REPOSITORY@sha256:DIGEST".into(),
        )
    })?;
    if source.trim().is_empty() {
        return Err(ConfigError("MODELGATE_SOURCE is empty".into()));
    }
    let is_oci = ModelRef::is_oci(source);
    if !is_oci && let Some(scheme) = NOT_FETCHED.iter().find(|s| source.starts_with(*s)) {
        return Err(ConfigError(format!(
            "MODELGATE_SOURCE={source}: modelgate fetches oci:// references and verifies folders, not {scheme} URIs; let KServe's own storage initializer download it and verify the folder after (deploy/README.md)"
        )));
    }
    if !is_oci && source.contains("://") {
        return Err(ConfigError(format!(
            "MODELGATE_SOURCE={source}: unsupported URI; use a folder or oci://"
        )));
    }
    for (var, set) in [
        ("MODELGATE_SUBPATH", args.subpath.is_some()),
        ("MODELGATE_PLATFORM", args.platform.is_some()),
    ] {
        if set && !is_oci {
            return Err(ConfigError(format!(
                "{var} applies to an oci:// source, and MODELGATE_SOURCE={source} is a folder"
            )));
        }
    }
    let source = if is_oci {
        ModelRef::parse(source)
            .map_err(|e| ConfigError(format!("MODELGATE_SOURCE={source}: {e}")))?;
        let target = PathBuf::from(args.target.as_deref().unwrap_or(DEFAULT_TARGET));
        Source::Oci {
            reference: source.to_string(),
            target,
        }
    } else {
        let path = PathBuf::from(source);
        if !path.is_dir() {
            return Err(ConfigError(format!(
                "MODELGATE_SOURCE={source}: not a folder (mount the model there, read-only)"
            )));
        }
        if args.signature.is_empty() {
            return Err(ConfigError(format!(
                "MODELGATE_SIGNATURE is not set: a folder source (MODELGATE_SOURCE={source}) needs its signature file; only an oci:// source finds its signatures in the registry"
            )));
        }
        let target = args.target.as_deref().map(PathBuf::from);
        if let Some(t) = &target
            && (t.starts_with(&path) || path.starts_with(t))
        {
            return Err(ConfigError(format!(
                "MODELGATE_TARGET={} and MODELGATE_SOURCE={source} overlap; the copy needs a separate, empty folder",
                t.display()
            )));
        }
        Source::Folder { path, target }
    };
    // Trust: exactly one kind.
    let identity =
        args.certificate_identity.is_some() || args.certificate_identity_regexp.is_some();
    let issuer =
        args.certificate_oidc_issuer.is_some() || args.certificate_oidc_issuer_regexp.is_some();
    let kinds: Vec<&str> = [
        ("MODELGATE_POLICY", args.policy.is_some()),
        ("MODELGATE_KEY", !args.key.is_empty()),
        (
            "MODELGATE_CERTIFICATE_CHAIN",
            !args.certificate_chain.is_empty(),
        ),
        ("MODELGATE_CERTIFICATE_IDENTITY", identity),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect();
    match kinds.as_slice() {
        [] => {
            return Err(ConfigError(
                "no trust is configured: set MODELGATE_POLICY (who may sign which model), or MODELGATE_KEY, MODELGATE_CERTIFICATE_CHAIN, or MODELGATE_CERTIFICATE_IDENTITY with MODELGATE_CERTIFICATE_OIDC_ISSUER".into(),
            ));
        }
        [_] => {}
        [a, b, ..] => {
            return Err(ConfigError(format!(
                "{a} and {b} are both set: they are different ways to say who may sign; set one (a policy names its own keys and identities)"
            )));
        }
    }
    if identity != issuer {
        return Err(ConfigError(if identity {
            "MODELGATE_CERTIFICATE_IDENTITY is set without MODELGATE_CERTIFICATE_OIDC_ISSUER: keyless trust needs both".into()
        } else {
            "MODELGATE_CERTIFICATE_OIDC_ISSUER is set without MODELGATE_CERTIFICATE_IDENTITY: keyless trust needs both".into()
        }));
    }
    if args.trusted_root.is_some() && (args.policy.is_some() || !args.certificate_chain.is_empty())
    {
        return Err(ConfigError(format!(
            "MODELGATE_TRUSTED_ROOT is set with {}: a policy names its roots itself, and a certificate chain has no Sigstore root",
            kinds[0]
        )));
    }
    let allow_legacy = boolean(
        "MODELGATE_ALLOW_LEGACY_FORMAT",
        args.allow_legacy_format.as_deref(),
    )?;
    if allow_legacy && args.policy.is_some() {
        return Err(ConfigError(
            "MODELGATE_ALLOW_LEGACY_FORMAT is set with MODELGATE_POLICY: the policy rule's allowLegacyFormat decides".into(),
        ));
    }
    let files = |var: &str, values: &[String]| -> Result<Vec<PathBuf>, ConfigError> {
        values.iter().map(|v| file(var, v)).collect()
    };
    let one = |var: &str, value: &Option<String>| -> Result<Option<PathBuf>, ConfigError> {
        value.as_deref().map(|v| file(var, v)).transpose()
    };
    let deadline = args
        .timeout
        .as_deref()
        .map(|v| duration("MODELGATE_TIMEOUT", v))
        .transpose()?;
    let concurrency = match args.concurrency.as_deref() {
        None => 4,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| {
                ConfigError(format!(
                    "MODELGATE_CONCURRENCY={v:?} is not a number from 1 to 64"
                ))
            })?,
    };
    let measurement = writable_in_folder(
        "MODELGATE_MEASUREMENT",
        args.measurement.as_deref().unwrap_or(DEFAULT_MEASUREMENT),
    )?;
    let measurement_log = args
        .measurement_log
        .as_deref()
        .map(|v| writable_in_folder("MODELGATE_MEASUREMENT_LOG", v))
        .transpose()?;
    let host_root = PathBuf::from(args.host_root.as_deref().unwrap_or("/"));
    if !host_root.is_dir() {
        return Err(ConfigError(format!(
            "MODELGATE_HOST_ROOT={}: not a folder",
            host_root.display()
        )));
    }
    let gpu = crate::node::gpu_facts(&host_root);
    let context = RunContext {
        pod: Pod::from_env(),
        node: Some(serde_json::json!({ "gpu": gpu })),
        measurement_log,
        termination_log: termination_log(args.termination_log.as_deref())?,
    };
    let checks = CheckArgs {
        signature: files("MODELGATE_SIGNATURE", &args.signature)?,
        policy: one("MODELGATE_POLICY", &args.policy)?,
        model_name: args.model_name.clone(),
        key: files("MODELGATE_KEY", &args.key)?,
        certificate_chain: files("MODELGATE_CERTIFICATE_CHAIN", &args.certificate_chain)?,
        allow_expired_certificate: false,
        keyless: KeylessArgs {
            certificate_identity: args.certificate_identity.clone(),
            certificate_identity_regexp: args.certificate_identity_regexp.clone(),
            certificate_oidc_issuer: args.certificate_oidc_issuer.clone(),
            certificate_oidc_issuer_regexp: args.certificate_oidc_issuer_regexp.clone(),
            trusted_root: one("MODELGATE_TRUSTED_ROOT", &args.trusted_root)?,
        },
        ignore_paths: args.ignore_paths.clone(),
        ignore_unsigned_files: boolean(
            "MODELGATE_IGNORE_UNSIGNED_FILES",
            args.ignore_unsigned_files.as_deref(),
        )?,
        allow_legacy_format: allow_legacy,
        measurement: Some(measurement),
        context: Some(Arc::new(context)),
    };
    // The trust files must parse now, not after a download.
    let policy = verify_cmd::load_policy(&checks).map_err(|e| {
        let var = kinds[0];
        ConfigError(format!("{var}: {e}"))
    })?;
    let registry = RegistryArgs {
        ca_file: files("MODELGATE_CA_FILE", &args.ca_file)?,
        insecure_registry: args.insecure_registry.clone(),
        allowed_registry: args.allowed_registry.clone(),
        registry_config: one("MODELGATE_REGISTRY_CONFIG", &args.registry_config)?,
        platform: args.platform.clone(),
        subpath: args.subpath.clone(),
        // The deadline covers the whole run (see `watch`).
        timeout: None,
        concurrency,
    };
    Ok(Plan {
        source,
        checks,
        registry,
        deadline,
        gpu,
        gpu_requirement: policy.gpu,
    })
}

/// SIGTERM and SIGINT, blocked in this thread (and so in every thread it
/// starts) to be taken by the watcher alone.
fn block_termination_signals() -> Option<nix::sys::signal::SigSet> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().ok().map(|()| set)
}

/// Starts the deadline and the signal watcher. Either ends the run: exit 2,
/// every temporary folder removed, nothing placed, an `error` measurement,
/// log entry and termination message, unless the model was already placed.
fn watch(plan: &Plan, signals: Option<nix::sys::signal::SigSet>) {
    let measurement = plan.checks.measurement.clone();
    let context = plan.checks.context.clone();
    let shown = match &plan.source {
        Source::Oci { target, .. } => target.clone(),
        Source::Folder { path, target } => target.clone().unwrap_or_else(|| path.clone()),
    };
    let target = match &plan.source {
        Source::Oci { target, .. } => Some(target.clone()),
        Source::Folder { target, .. } => target.clone(),
    };
    let end = Arc::new(move |why: String| {
        let Some(removed) = abort::abort() else {
            return; // the model is in place; the run ends as verified
        };
        error!(
            exit_code = EXIT_ERROR,
            "{why}; nothing was placed; do not start the workload"
        );
        if let Some(path) = &measurement {
            let doc = Measurement::failed(&shown, "error", why.clone()).with_context(
                context.as_ref().and_then(|c| c.pod.as_ref()),
                context.as_ref().and_then(|c| c.node.as_ref()),
            );
            verify_cmd::write_measurement(path, &doc.to_bytes(), context.as_deref());
        }
        // Once more: a worker still running may have re-created a folder.
        for path in &removed {
            let _ = std::fs::remove_dir_all(path);
        }
        if let Some(t) = &target {
            let _ = std::fs::remove_file(t.join(".modelgate-incomplete"));
        }
        std::process::exit(EXIT_ERROR);
    });
    if let Some(limit) = plan.deadline {
        let end = Arc::clone(&end);
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            end(format!(
                "the deadline passed: MODELGATE_TIMEOUT={}s",
                limit.as_secs()
            ));
        });
    }
    if let Some(set) = signals {
        std::thread::spawn(move || {
            if let Ok(signal) = set.wait() {
                end(format!(
                    "stopped by {signal:?} (the pod is being deleted or the run cancelled)"
                ));
            }
        });
    }
}
