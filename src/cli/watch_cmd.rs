//! `modelgate watch`: the native sidecar (an initContainer with
//! `restartPolicy: Always`). Configured by init's `MODELGATE_*` variables
//! and its own `MODELGATE_WATCH_*`, all checked before any work starts (a
//! bad one is exit 2 naming it, as for init). It serves the probes at once
//! (`/readyz` is 503 until the model verified), verifies the folder in
//! place like init, exits with init's code if that fails, and otherwise
//! keeps it under watch until the pod ends ([`crate::watch`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use super::args::WatchArgs;
use super::init_cmd::{self, ConfigError, config_error, duration};
use crate::gate::{self, Cancel, Source};
use crate::verify::Verdict;
use crate::watch::{self, Health, Located, OnDrift, Place, Schedule, tracker};

/// The probes' address without `MODELGATE_WATCH_LISTEN`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8181";
/// Between two stat sweeps without `MODELGATE_WATCH_INTERVAL`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Between two full re-hashes without `MODELGATE_WATCH_REHASH_INTERVAL`.
pub const DEFAULT_REHASH_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The re-hash budget without `MODELGATE_WATCH_MAX_RATE`: 64 MiB/s, a
/// 100 GB model re-read in 25 minutes a day.
pub const DEFAULT_MAX_RATE: u64 = 64 << 20;
/// While the model's container is not found, say so this often.
const WAIT_REPORT: Duration = Duration::from_secs(30);

/// The watch settings, checked.
struct WatchPlan {
    place: Arc<Place>,
    listen: SocketAddr,
    on_drift: OnDrift,
    schedule: Schedule,
}

/// Runs `watch`: returns only if the first verification fails. Until it
/// ends, `MODELGATE_TIMEOUT` and SIGTERM end the sidecar as they end
/// `init` (exit 2, an `error` measurement); once the model is watched,
/// SIGTERM (the pod ending) is a clean exit 0.
pub(super) fn watch_cmd(
    args: &WatchArgs,
    workers: usize,
    runtime: &tokio::runtime::Runtime,
    signals: Option<nix::sys::signal::SigSet>,
) -> Verdict {
    let here = args.container.is_none();
    let (mut plan, watch_plan) = match init_cmd::configure_source(&args.init, workers, here)
        .and_then(|plan| configure(args, &plan).map(|w| (plan, w)))
    {
        Ok(both) => both,
        Err(ConfigError(message)) => return config_error(&args.init, &message),
    };
    let WatchPlan {
        place,
        listen,
        on_drift,
        schedule,
    } = watch_plan;
    let model = match place.as_ref() {
        Place::Folder(path) => path.display().to_string(),
        Place::Container { process, path, .. } => format!("{path} in the container of {process}"),
    };
    if let Place::Container { path, .. } = place.as_ref()
        && plan.settings.model_name.is_none()
    {
        // Named as its folder would be here, not as /proc/self/fd/N.
        plan.settings.model_name = Some(crate::model::paths::display_name(Path::new(path)));
    }
    info!(
        step = "config",
        model = %model,
        listen = %listen,
        on_drift = on_drift.as_str(),
        interval_seconds = schedule.interval.as_secs(),
        rehash_interval_seconds = schedule.rehash_interval.as_secs(),
        max_rate = schedule.max_rate,
        measurement = %plan.record.path.display(),
        "configuration accepted"
    );
    if let Some(verdict) = init_cmd::check_gpu(&plan) {
        return verdict;
    }
    let health = Arc::new(Health::new(on_drift));
    let listener = match runtime.block_on(watch::probe::bind(listen)) {
        Ok(listener) => listener,
        Err(message) => return config_error(&args.init, &message),
    };
    runtime.spawn(watch::probe::serve(listener, health.clone()));
    info!(listen = %listen, "probes served: /readyz (503 until verified), /livez");
    let cancel = Cancel::new();
    init_cmd::end_on_deadline_or_signal(&plan, &cancel, signals, stopped_while_watching);
    let here = locate(&place);
    // Before the verification: whatever changes while it runs is found by
    // the first check after it.
    let before = tracker::survey_all(&here.path).unwrap_or_default();
    let mut recorder = plan.record.clone();
    let outcome = runtime.block_on(gate::run(
        &plan.settings,
        Source::InPlaceAs {
            files: here.path.clone(),
            shown: here.shown.clone(),
        },
        &cancel,
        &mut recorder,
    ));
    // From here a deadline does nothing, and SIGTERM ends the watch.
    cancel.finish();
    let Some(proven) = outcome.proven else {
        if outcome.verdict == Verdict::AllowedUnverified {
            error!(
                exit_code = Verdict::Error.exit_code(),
                "the policy rule is in warn mode and the model did not verify: there is no signed state to watch; fix the model or run modelgate init instead"
            );
            return Verdict::Error;
        }
        return outcome.verdict;
    };
    let tracker = tracker::Tracker::new(
        place,
        here,
        plan.settings,
        proven,
        plan.record,
        health,
        before,
    );
    watch::watch(tracker, &schedule)
}

/// Finds the model: at once for a folder; a modelcar's container may
/// start after this sidecar, so it is waited for, until it is there or
/// `MODELGATE_TIMEOUT` ends the sidecar (the wait is logged, with why).
fn locate(place: &Place) -> Located {
    let mut waited: Option<std::time::Instant> = None;
    loop {
        match place.locate() {
            Ok(here) => return here,
            Err(why) => {
                if waited.is_none_or(|since| since.elapsed() >= WAIT_REPORT) {
                    warn!("waiting for the model's container: {why}");
                    waited = Some(std::time::Instant::now());
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// SIGTERM once the model is watched: the pod is ending (the kubelet
/// stops a native sidecar after the server). A clean exit, said so.
fn stopped_while_watching(why: &str) {
    info!(
        exit_code = Verdict::Verified.exit_code(),
        "{why} while watching: the watch ends"
    );
    std::process::exit(Verdict::Verified.exit_code());
}

/// Checks the `MODELGATE_WATCH_*` settings and the source.
fn configure(args: &WatchArgs, plan: &init_cmd::Plan) -> Result<WatchPlan, ConfigError> {
    let Source::InPlace(model) = &plan.source else {
        return Err(ConfigError(
            "watch verifies a folder where the server reads it: MODELGATE_SOURCE must be that folder, and MODELGATE_TARGET is not set (to pull or copy the model first, run modelgate init before, then watch its MODELGATE_TARGET)".into(),
        ));
    };
    let interval = args
        .interval
        .as_deref()
        .map(|v| duration("MODELGATE_WATCH_INTERVAL", v))
        .transpose()?
        .unwrap_or(DEFAULT_INTERVAL);
    let rehash_interval = args
        .rehash_interval
        .as_deref()
        .map(|v| duration("MODELGATE_WATCH_REHASH_INTERVAL", v))
        .transpose()?
        .unwrap_or(DEFAULT_REHASH_INTERVAL);
    let max_rate = args
        .max_rate
        .as_deref()
        .map(|v| byte_rate("MODELGATE_WATCH_MAX_RATE", v))
        .transpose()?
        .unwrap_or(DEFAULT_MAX_RATE);
    let listen_text = args.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        ConfigError(format!(
            "MODELGATE_WATCH_LISTEN={listen_text:?} is not an address; write ADDRESS:PORT, as {DEFAULT_LISTEN}"
        ))
    })?;
    let on_drift = match args.on_drift.as_deref().map(str::trim) {
        None | Some("quarantine") => OnDrift::Quarantine,
        Some("restart") => OnDrift::Restart,
        Some(other) => {
            return Err(ConfigError(format!(
                "MODELGATE_WATCH_ON_DRIFT={other:?}: use quarantine (not ready until the model is restored) or restart (the server is restarted too)"
            )));
        }
    };
    let max_inotify = args
        .max_inotify
        .as_deref()
        .map(|v| {
            v.trim().parse::<usize>().map_err(|_| {
                ConfigError(format!(
                    "MODELGATE_WATCH_MAX_INOTIFY={v:?} is not a number of watches"
                ))
            })
        })
        .transpose()?;
    let place = match &args.container {
        None => Place::Folder(model.clone()),
        Some(process) => Place::Container {
            process: process.trim().to_string(),
            path: model.display().to_string(),
            last: std::sync::Mutex::new(None),
        },
    };
    Ok(WatchPlan {
        place: Arc::new(place),
        listen,
        on_drift,
        schedule: Schedule {
            interval,
            rehash_interval,
            max_rate,
            max_inotify,
        },
    })
}

/// Bytes per second: a number with an optional K, M, G (powers of 1000)
/// or Ki, Mi, Gi (powers of 1024); positive.
fn byte_rate(var: &str, value: &str) -> Result<u64, ConfigError> {
    let bad = || {
        ConfigError(format!(
            "{var}={value:?} is not a rate in bytes per second; write 500K, 64M, 1G, 64Mi or a number of bytes"
        ))
    };
    let text = value.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale: u64 = match unit {
        "" => 1,
        "K" | "k" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err(bad()),
    };
    match n.saturating_mul(scale) {
        0 => Err(ConfigError(format!(
            "{var}={value:?}: the rate must be positive"
        ))),
        rate => Ok(rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_takes_decimal_and_binary_units_and_refuses_zero_and_garbage() {
        for (text, want) in [
            ("1048576", 1 << 20),
            ("500K", 500_000),
            ("64M", 64_000_000),
            ("1G", 1_000_000_000),
            ("64Mi", 64 << 20),
            (" 2Gi ", 2 << 30),
        ] {
            assert_eq!(
                byte_rate("MODELGATE_WATCH_MAX_RATE", text).unwrap(),
                want,
                "{text}"
            );
        }
        let ConfigError(zero) = byte_rate("MODELGATE_WATCH_MAX_RATE", "0M").unwrap_err();
        assert_eq!(
            zero,
            "MODELGATE_WATCH_MAX_RATE=\"0M\": the rate must be positive"
        );
        for bad in ["", "fast", "10T", "-5", "1.5M", "M"] {
            let ConfigError(message) = byte_rate("MODELGATE_WATCH_MAX_RATE", bad).unwrap_err();
            assert!(
                message.contains("is not a rate in bytes per second"),
                "{bad}: {message}"
            );
        }
    }
}
