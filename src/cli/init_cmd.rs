//! `modelgate init`: the init container. Configured the Kubernetes way, by
//! `MODELGATE_*` environment variables named like the flags, all checked
//! before any work starts: a missing, unknown (a typo of a `MODELGATE_`
//! name) or contradictory setting is exit 2 naming the variable. Then it
//! fetches or finds the model, verifies it, and records the measurement
//! (with the pod and the node), the measurement log entry and the
//! termination message. A deadline (`MODELGATE_TIMEOUT`) and SIGTERM end
//! the run with exit 2 and nothing placed (see [`crate::gate::Cancel`]).
//!
//! KServe runs a storage initializer as `<uri> <mountPath>`; `main` turns
//! that into `init --source <uri> --target <mountPath>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args as _;
use tracing::{error, info};

use super::Progress;
use super::args::InitArgs;
use crate::gate::{self, Both, Cancel, MeasurementFile, Naming, Settings, Source};
use crate::measure::{Measurement, Pod, RunContext};
use crate::node::GpuFacts;
use crate::oci::ModelRef;
use crate::policy::GpuRequirement;
use crate::verify::Verdict;

/// Where an oci:// model goes without `MODELGATE_TARGET` (KServe's path).
pub const DEFAULT_TARGET: &str = "/mnt/models";
/// The measurement's default place: a shared emptyDir.
pub const DEFAULT_MEASUREMENT: &str = "/run/modelgate/measurement.json";
/// The deadline of a run without `MODELGATE_TIMEOUT`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3600);
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
pub(super) struct ConfigError(pub(super) String);

impl From<gate::SettingsError> for ConfigError {
    fn from(e: gate::SettingsError) -> Self {
        Self(e.to_string())
    }
}

/// The checked configuration.
pub(super) struct Plan {
    pub(super) source: Source,
    pub(super) settings: Settings,
    pub(super) record: MeasurementFile,
    deadline: Option<Duration>,
    /// The GPU pathway, measured under `MODELGATE_HOST_ROOT`.
    gpu: GpuFacts,
    /// What the policy requires of it, if anything.
    gpu_requirement: Option<GpuRequirement>,
}

impl Plan {
    /// What the measurement calls the model before a verdict.
    fn shown(&self) -> PathBuf {
        match &self.source {
            Source::Oci { reference, .. } => PathBuf::from(reference),
            Source::InPlace(path)
            | Source::InPlaceAs { shown: path, .. }
            | Source::Copy { from: path, .. } => path.clone(),
        }
    }
}

/// Runs `init`.
pub(super) fn init_cmd(
    args: &InitArgs,
    workers: usize,
    progress: &Progress,
    runtime: &tokio::runtime::Runtime,
    signals: Option<nix::sys::signal::SigSet>,
) -> Verdict {
    let plan = match configure(args, workers) {
        Ok(plan) => plan,
        Err(ConfigError(message)) => return config_error(args, &message),
    };
    let (kind, model) = match &plan.source {
        Source::Oci { reference, to } => (
            "oci",
            format!(
                "{reference} -> {}",
                to.as_deref().unwrap_or(Path::new(DEFAULT_TARGET)).display()
            ),
        ),
        Source::InPlace(path) | Source::InPlaceAs { shown: path, .. } => {
            ("folder", path.display().to_string())
        }
        Source::Copy { from, to } => (
            "folder-copy",
            format!("{} -> {}", from.display(), to.display()),
        ),
    };
    info!(
        step = "config",
        source = kind,
        model = %model,
        deadline_seconds = plan.deadline.map(|d| d.as_secs()),
        measurement = %plan.record.path.display(),
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
    if let Some(verdict) = check_gpu(&plan) {
        return verdict;
    }
    let cancel = Cancel::new();
    end_on_deadline_or_signal(&plan, &cancel, signals, |_| {});
    let mut recorder = Both {
        show: progress,
        record: plan.record.clone(),
    };
    runtime
        .block_on(gate::run(
            &plan.settings,
            plan.source.clone(),
            &cancel,
            &mut recorder,
        ))
        .verdict
}

/// The node against the policy's GPU requirement: `Some(rejected)` when
/// it does not meet it (logged and recorded), before anything is fetched
/// or verified.
pub(super) fn check_gpu(plan: &Plan) -> Option<Verdict> {
    let requirement = plan.gpu_requirement.as_ref()?;
    let failures = requirement.check(&plan.gpu).err()?;
    Some(gpu_rejected(plan, &failures))
}

fn gpu_rejected(plan: &Plan, failures: &[String]) -> Verdict {
    let message = format!(
        "the node's GPU pathway does not meet the policy: {}",
        failures.join("; ")
    );
    error!(
        step = "node",
        exit_code = Verdict::Rejected.exit_code(),
        "{message}; do not start the workload"
    );
    let doc = Measurement::failed(&plan.shown(), Verdict::Rejected, message);
    if plan.record.write(doc).is_err() {
        return Verdict::Error;
    }
    Verdict::Rejected
}

/// Reports a configuration error: the log line, the termination message and
/// (when its folder exists) an `error` measurement.
pub(super) fn config_error(args: &InitArgs, message: &str) -> Verdict {
    error!(
        step = "config",
        exit_code = Verdict::Error.exit_code(),
        "{message}; do not start the workload"
    );
    let context = RunContext {
        pod: Pod::from_env(),
        gpu: None,
        measurement_log: None,
        termination_log: termination_log(args.termination_log.as_deref())
            .ok()
            .flatten(),
    };
    let measurement = PathBuf::from(args.measurement.as_deref().unwrap_or(DEFAULT_MEASUREMENT));
    if measurement.parent().is_some_and(Path::is_dir) {
        let shown = PathBuf::from(args.source.as_deref().unwrap_or("(no MODELGATE_SOURCE)"));
        let doc = Measurement::failed(&shown, Verdict::Error, message.to_string());
        let record = MeasurementFile {
            path: measurement,
            context: Some(Arc::new(context)),
        };
        let _ = record.write(doc);
    } else if let Some(file) = &context.termination_log {
        let text = crate::measure::log::cut(
            format!("modelgate: error: {message}\n"),
            crate::measure::log::MAX_TERMINATION_BYTES,
        );
        let _ = std::fs::write(file, text);
    }
    Verdict::Error
}

/// Every `MODELGATE_*` variable `init` and `watch` read: each knows the
/// other's, so that one ConfigMap (`envFrom`) can serve both containers.
fn known_variables() -> Vec<String> {
    let mut names: Vec<String> = super::args::WatchArgs::augment_args(clap::Command::new("watch"))
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
pub(super) fn duration(var: &str, value: &str) -> Result<Duration, ConfigError> {
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
pub(super) fn configure(args: &InitArgs, workers: usize) -> Result<Plan, ConfigError> {
    configure_source(args, workers, true)
}

/// [`configure`], where a folder source need not be a folder here when
/// `here` is false (`watch` finds it in another container).
pub(super) fn configure_source(
    args: &InitArgs,
    workers: usize,
    here: bool,
) -> Result<Plan, ConfigError> {
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
            to: Some(target),
        }
    } else {
        let path = PathBuf::from(source);
        if here && !path.is_dir() {
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
        match target {
            Some(to) => Source::Copy { from: path, to },
            None => Source::InPlace(path),
        }
    };
    // A pod must never sit in Init with no word: without MODELGATE_TIMEOUT
    // the run still ends, after an hour (a 400 GB model at about 110 MB/s).
    let deadline = Some(
        args.timeout
            .as_deref()
            .map(|v| duration("MODELGATE_TIMEOUT", v))
            .transpose()?
            .unwrap_or(DEFAULT_DEADLINE),
    );
    let read_timeout = args
        .read_timeout
        .as_deref()
        .map(|v| duration("MODELGATE_READ_TIMEOUT", v))
        .transpose()?;
    let concurrency = match args.concurrency.as_deref() {
        None => 4,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| {
                ConfigError(format!(
                    "MODELGATE_CONCURRENCY={v:?} is not a number from 1 to 64"
                ))
            })?,
    };
    let spec = gate::Spec {
        policy: args.policy.as_ref().map(PathBuf::from),
        keys: paths(&args.key),
        certificate_chain: paths(&args.certificate_chain),
        allow_expired_certificate: false,
        certificate_identity: args.certificate_identity.clone(),
        certificate_identity_regexp: args.certificate_identity_regexp.clone(),
        certificate_oidc_issuer: args.certificate_oidc_issuer.clone(),
        certificate_oidc_issuer_regexp: args.certificate_oidc_issuer_regexp.clone(),
        trusted_root: args.trusted_root.as_ref().map(PathBuf::from),
        allow_legacy_format: boolean(
            "MODELGATE_ALLOW_LEGACY_FORMAT",
            args.allow_legacy_format.as_deref(),
        )?,
        signatures: paths(&args.signature),
        model_name: args.model_name.clone(),
        ignore_paths: args.ignore_paths.clone(),
        ignore_unsigned_files: boolean(
            "MODELGATE_IGNORE_UNSIGNED_FILES",
            args.ignore_unsigned_files.as_deref(),
        )?,
        registry: crate::oci::RegistryOptions {
            ca_files: paths(&args.ca_file),
            insecure: args.insecure_registry.clone(),
            allowed: args.allowed_registry.clone(),
            registry_config: args.registry_config.as_ref().map(PathBuf::from),
            platform: args.platform.clone(),
            subpath: args.subpath.clone(),
            read_timeout,
        },
        concurrency,
        // The deadline covers the whole run (see `end_on_deadline_or_signal`).
        registry_timeout: None,
        workers,
    };
    // Every trust file must parse now, not after a download.
    let settings = Settings::build(spec, Naming::Variables)?;
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
        gpu: Some(gpu.clone()),
        measurement_log,
        termination_log: termination_log(args.termination_log.as_deref())?,
    };
    Ok(Plan {
        source,
        gpu_requirement: settings.policy.gpu.clone(),
        settings,
        record: MeasurementFile {
            path: measurement,
            context: Some(Arc::new(context)),
        },
        deadline,
        gpu,
    })
}

/// A comma-separated list of paths, as the variables give them.
fn paths(values: &[String]) -> Vec<PathBuf> {
    values.iter().map(PathBuf::from).collect()
}

/// SIGTERM and SIGINT, blocked in this thread (and so in every thread it
/// starts) to be taken by the watcher alone.
pub(super) fn block_termination_signals() -> Option<nix::sys::signal::SigSet> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().ok().map(|()| set)
}

/// Starts the deadline and the signal watcher. Either cancels the run and
/// owns the rest of it: exit 2, every temporary folder removed, nothing
/// placed, an `error` measurement, log entry and termination message,
/// unless the run is over (the model placed, or [`Cancel::finish`]ed):
/// then the deadline does nothing, and a signal calls `once_over` with
/// what stopped it (`init` ends as verified anyway; `watch` exits 0).
pub(super) fn end_on_deadline_or_signal(
    plan: &Plan,
    cancel: &Cancel,
    signals: Option<nix::sys::signal::SigSet>,
    once_over: fn(&str),
) {
    let record = plan.record.clone();
    let (shown, target) = match &plan.source {
        Source::Oci { to, .. } => (to.clone().unwrap_or_default(), to.clone()),
        Source::InPlace(path) | Source::InPlaceAs { shown: path, .. } => (path.clone(), None),
        Source::Copy { to, .. } => (to.clone(), Some(to.clone())),
    };
    let cancel = cancel.clone();
    let end = Arc::new(move |why: String, signal: bool| {
        let Some(cancelled) = cancel.cancel() else {
            // The run is over: the model is in place, or watched.
            if signal {
                once_over(&why);
            }
            return;
        };
        error!(
            exit_code = Verdict::Error.exit_code(),
            "{why}; nothing was placed; do not start the workload"
        );
        let _ = record.write(Measurement::failed(&shown, Verdict::Error, why.clone()));
        // Once more: a worker still running may have re-created a folder.
        for path in &cancelled.removed {
            let _ = std::fs::remove_dir_all(path);
        }
        if let Some(t) = &target {
            let _ = std::fs::remove_file(t.join(gate::INCOMPLETE));
        }
        std::process::exit(Verdict::Error.exit_code());
    });
    if let Some(limit) = plan.deadline {
        let end = Arc::clone(&end);
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            end(
                format!(
                    "the deadline passed: MODELGATE_TIMEOUT={}s",
                    limit.as_secs()
                ),
                false,
            );
        });
    }
    if let Some(set) = signals {
        std::thread::spawn(move || {
            if let Ok(signal) = set.wait() {
                end(
                    format!(
                        "stopped by {signal:?} (the pod is being deleted or the run cancelled)"
                    ),
                    true,
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boolean_is_one_of_six_spellings_and_anything_else_names_the_variable() {
        for (text, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("false", false),
            ("0", false),
            ("No", false),
        ] {
            assert_eq!(boolean("MODELGATE_X", Some(text)).unwrap(), want, "{text}");
        }
        assert!(!boolean("MODELGATE_X", None).unwrap());
        let ConfigError(message) = boolean("MODELGATE_X", Some("on")).unwrap_err();
        assert_eq!(
            message,
            "MODELGATE_X=\"on\" is not a boolean; use true or false"
        );
    }

    #[test]
    fn a_duration_takes_seconds_or_a_unit_and_refuses_zero_and_garbage() {
        for (text, seconds) in [
            ("600", 600),
            ("90s", 90),
            ("10m", 600),
            ("1h", 3600),
            (" 5 ", 5),
        ] {
            assert_eq!(
                duration("MODELGATE_TIMEOUT", text).unwrap(),
                Duration::from_secs(seconds),
                "{text}"
            );
        }
        let ConfigError(zero) = duration("MODELGATE_TIMEOUT", "0").unwrap_err();
        assert_eq!(
            zero,
            "MODELGATE_TIMEOUT=\"0\": the deadline must be positive"
        );
        for bad in ["", "ten", "10d", "-5", "1.5m", "m"] {
            let ConfigError(message) = duration("MODELGATE_TIMEOUT", bad).unwrap_err();
            assert!(
                message.contains("is not a duration; write seconds (600) or 90s, 10m, 1h"),
                "{bad}: {message}"
            );
        }
        // No overflow on an absurd value: it saturates.
        assert!(duration("MODELGATE_TIMEOUT", "99999999999999999h").is_ok());
    }

    #[test]
    fn a_typo_of_a_variable_gets_the_closest_known_name_and_a_stranger_none() {
        let known = known_variables();
        assert_eq!(
            closest("MODELGATE_SOURSE", &known),
            Some("MODELGATE_SOURCE")
        );
        assert_eq!(
            closest("MODELGATE_TIMOUT", &known),
            Some("MODELGATE_TIMEOUT")
        );
        assert_eq!(closest("MODELGATE_SOMETHING_ELSE", &known), None);
        for name in [
            "MODELGATE_SOURCE",
            "MODELGATE_POLICY",
            "MODELGATE_LOG",
            "MODELGATE_JOBS",
        ] {
            assert!(known.iter().any(|k| k == name), "{name}");
        }
    }

    #[test]
    fn a_file_to_write_needs_its_folder_and_the_termination_log_defaults_only_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("m.json");
        assert_eq!(
            writable_in_folder("MODELGATE_MEASUREMENT", inside.to_str().unwrap()).unwrap(),
            inside
        );
        let missing = dir.path().join("absent/m.json");
        let ConfigError(message) =
            writable_in_folder("MODELGATE_MEASUREMENT", missing.to_str().unwrap()).unwrap_err();
        assert!(
            message.contains(
                "does not exist; mount a volume there (an emptyDir) or set MODELGATE_MEASUREMENT"
            ),
            "{message}"
        );
        let set = termination_log(Some(inside.to_str().unwrap())).unwrap();
        assert_eq!(set, Some(inside));
        let default = termination_log(None).unwrap();
        assert_eq!(
            default.is_some(),
            Path::new(DEFAULT_TERMINATION_LOG).exists()
        );
    }
}
