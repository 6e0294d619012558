//! `modelgate watch`: after the model verified, keep it verified where the
//! server reads it, and take the pod out of service the moment it is not.
//!
//! Three ways to notice a change, from the fastest to the most thorough:
//! inotify on every folder ([`notify`]) wakes the loop within milliseconds;
//! a stat sweep every `interval` catches what inotify cannot see (a write
//! through a hard link from outside the model, from another mount
//! namespace, from the node, or while inotify was overflowing); a full
//! re-hash every `rehash_interval`, held to a byte budget ([`budget`]),
//! catches a change behind an unchanged stat (a device written under the
//! filesystem, timestamps set back). Whatever woke it, the loop decides
//! the same way ([`tracker`]): sweep, then hash only what changed.
//!
//! The state is served by [`probe`] as `/readyz` and `/livez`
//! ([`health`]).

pub mod budget;
pub mod health;
pub mod notify;
pub mod place;
pub mod probe;
pub mod tracker;

use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tracing::{info, warn};

use crate::verify::Problem;
use budget::Budget;
use notify::{Coverage, Notify};
use tracker::Tracker;

pub use health::{Health, OnDrift, Status};
pub use place::{Located, Place};

/// After an event, wait this long for the writer to finish before the
/// sweep (a copy writes many times)...
const SETTLE: Duration = Duration::from_millis(50);
/// ...but never longer than this after the first event.
const MAX_SETTLE: Duration = Duration::from_millis(250);

/// How the model is kept under watch.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Between two stat sweeps.
    pub interval: Duration,
    /// Between two full re-hashes.
    pub rehash_interval: Duration,
    /// The full re-hash's budget, bytes per second.
    pub max_rate: u64,
    /// At most this many inotify watches.
    pub max_inotify: Option<usize>,
}

/// A finished full re-hash.
struct Rehashed {
    problems: Vec<Problem>,
    bytes: u64,
    took: Duration,
}

/// Watches the model until the process ends.
pub fn watch(mut tracker: Tracker, schedule: &Schedule) -> ! {
    let (mut notify, made) = Notify::new(schedule.max_inotify);
    if let Err(why) = made {
        warn!(
            "{why}; changes are found by the stat sweep every {}s only",
            schedule.interval.as_secs()
        );
    }
    let mut coverage = Coverage::Full;
    let mut sweep = |tracker: &mut Tracker, notify: &mut Notify| {
        let swept = tracker.sweep().map(|(root, survey)| {
            let now = notify.sync(&root, &survey);
            if now != coverage {
                report(&now, schedule);
                coverage = now;
            }
            survey
        });
        tracker.check(swept);
    };
    sweep(&mut tracker, &mut notify);
    info!(
        model = %tracker.shown.display(),
        interval_seconds = schedule.interval.as_secs(),
        rehash_interval_seconds = schedule.rehash_interval.as_secs(),
        max_rate = schedule.max_rate,
        "watching"
    );
    let start = Instant::now();
    let mut next_sweep = start + schedule.interval;
    let mut next_rehash = start + schedule.rehash_interval;
    let mut rehash: Option<mpsc::Receiver<Rehashed>> = None;
    let mut dirty: Option<(Instant, Instant)> = None;
    loop {
        let now = Instant::now();
        let mut deadline = next_sweep.min(next_rehash);
        if let Some((first, last)) = dirty {
            deadline = deadline.min((last + SETTLE).min(first + MAX_SETTLE));
        }
        if rehash.is_some() {
            deadline = deadline.min(now + Duration::from_secs(1));
        }
        wait(&notify, deadline.saturating_duration_since(now));
        let events = notify.drain();
        let now = Instant::now();
        if events.overflow {
            warn!(
                "the inotify queue overflowed (more changes at once than fs.inotify.max_queued_events): events were lost, sweeping the whole model now"
            );
            dirty = None;
            sweep(&mut tracker, &mut notify);
        } else if events.any {
            dirty = Some((dirty.map_or(now, |d| d.0), now));
        }
        if let Some((first, last)) = dirty
            && (now >= last + SETTLE || now >= first + MAX_SETTLE)
        {
            dirty = None;
            sweep(&mut tracker, &mut notify);
        }
        if now >= next_sweep {
            next_sweep = now + schedule.interval;
            sweep(&mut tracker, &mut notify);
        }
        if let Some(done) = rehash.as_ref().and_then(|r| r.try_recv().ok()) {
            rehash = None;
            rehashed(&mut tracker, &done, schedule);
            sweep(&mut tracker, &mut notify);
        }
        if now >= next_rehash && rehash.is_none() {
            next_rehash = now + schedule.rehash_interval;
            rehash = start_rehash(&tracker, schedule.max_rate);
        }
    }
}

/// Sleeps until an event or `timeout`.
fn wait(notify: &Notify, timeout: Duration) {
    let ms = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
    match notify.fd() {
        Some(fd) => {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
        None => std::thread::sleep(Duration::from_millis(u64::from(ms))),
    }
}

/// Says what inotify covers now.
fn report(coverage: &Coverage, schedule: &Schedule) {
    match coverage {
        Coverage::Full => info!("inotify watches every folder of the model"),
        Coverage::Partial {
            watched,
            folders,
            why,
        } => warn!(
            watched,
            folders,
            "inotify watches {watched} of {folders} folders: {why}; changes in the others are found by the stat sweep every {}s (raise the limit to see them at once); sweeping the whole model now",
            schedule.interval.as_secs()
        ),
    }
}

/// Starts a full re-hash on another thread, one worker, held to `rate`.
fn start_rehash(tracker: &Tracker, rate: u64) -> Option<mpsc::Receiver<Rehashed>> {
    let (settings, model, proven) = match tracker.rehash_inputs() {
        Ok(inputs) => inputs,
        Err(why) => {
            warn!("full re-hash not started: {why}");
            return None;
        }
    };
    let settings = crate::gate::Settings {
        workers: 1,
        ..settings
    };
    let (tx, rx) = mpsc::channel();
    info!(max_rate = rate, "full re-hash started");
    std::thread::spawn(move || {
        let budget = Budget::new(rate);
        let start = Instant::now();
        let problems = crate::gate::recheck(&settings, &model.path, &proven, None, &|n| {
            budget.spend(n);
        });
        let _ = tx.send(Rehashed {
            problems,
            bytes: budget.spent(),
            took: start.elapsed(),
        });
    });
    Some(rx)
}

/// Takes in a full re-hash: a file it found changed is hashed again by the
/// next check, whatever its stamp says.
fn rehashed(tracker: &mut Tracker, done: &Rehashed, schedule: &Schedule) {
    let seconds = done.took.as_secs_f64().max(0.001);
    let rate = (done.bytes as f64 / seconds) as u64;
    if done.problems.is_empty() {
        info!(
            bytes = done.bytes,
            seconds = done.took.as_secs(),
            rate,
            max_rate = schedule.max_rate,
            "full re-hash: every file matches its signed digest"
        );
    } else {
        warn!(
            bytes = done.bytes,
            problems = done.problems.len(),
            "full re-hash: {} problem(s); checking those files again now",
            done.problems.len()
        );
        tracker.distrust(&done.problems);
    }
}
