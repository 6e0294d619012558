//! What the probes answer: the model's state as the watch last found it,
//! and, under `restart`, whether the server should be restarted now.
//!
//! Readiness is fail-closed: the pod is ready only while the last check
//! found the signed files, and not while a changed file is being hashed
//! again. Liveness fails only under [`OnDrift::Restart`], for a window long
//! enough for the kubelet to act (a probe every 10 s, three failures), and
//! at most once per backoff period that doubles up to an hour: a volume
//! that flaps cannot cause a restart storm.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to do when the model drifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDrift {
    /// Not ready until the files are the signed ones again, then ready.
    Quarantine,
    /// Not ready, and `/livez` fails so that the kubelet restarts the
    /// server (which may hold drifted bytes in memory); again once the
    /// files are restored. Rate-limited.
    Restart,
}

impl OnDrift {
    /// The setting's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quarantine => "quarantine",
            Self::Restart => "restart",
        }
    }
}

/// How long `/livez` fails for one restart: three failed probes 10 s
/// apart, with room for a late probe. A probe with a longer
/// `periodSeconds × failureThreshold` never sees enough failures.
pub const RESTART_WINDOW: Duration = Duration::from_secs(45);
/// The wait after the first restart before another may be asked for.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// The longest wait between two restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The model's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The first verification runs.
    Verifying,
    /// The last check found exactly the signed files.
    Verified,
    /// Files changed on disk and are being hashed again.
    Checking {
        /// How many.
        files: usize,
    },
    /// The files differ from the signed ones; one line per problem.
    Drifted(Vec<String>),
}

/// The restart requests and their backoff.
#[derive(Debug)]
struct Restarts {
    /// A restart is wanted and waits for its backoff to pass.
    pending: bool,
    /// `/livez` fails until then.
    failing_until: Option<Instant>,
    /// No restart starts before then.
    next_allowed: Option<Instant>,
    /// The wait after the next one.
    backoff: Duration,
}

impl Restarts {
    fn new() -> Self {
        Self {
            pending: false,
            failing_until: None,
            next_allowed: None,
            backoff: FIRST_BACKOFF,
        }
    }

    /// Starts a pending restart whose backoff has passed; whether `/livez`
    /// fails at `now`.
    fn failing(&mut self, now: Instant) -> bool {
        if self.pending && self.next_allowed.is_none_or(|t| now >= t) {
            self.pending = false;
            // A long calm since the last one starts the backoff over.
            if self
                .next_allowed
                .is_some_and(|t| now.duration_since(t) > MAX_BACKOFF)
            {
                self.backoff = FIRST_BACKOFF;
            }
            self.failing_until = Some(now + RESTART_WINDOW);
            self.next_allowed = Some(now + RESTART_WINDOW + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
        self.failing_until.is_some_and(|t| now < t)
    }
}

/// The state both probes read; written by the watch loop.
#[derive(Debug)]
pub struct Health {
    on_drift: OnDrift,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    status: Status,
    /// In a drift: from a [`Status::Drifted`] to the next
    /// [`Status::Verified`], whatever checks come in between.
    drifting: bool,
    restarts: Restarts,
}

/// A probe's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// 200 or 503.
    pub ok: bool,
    /// The body, one line or more, each ending in a newline.
    pub body: String,
}

impl Health {
    /// Not ready: the first verification has not ended.
    pub fn new(on_drift: OnDrift) -> Self {
        Self {
            on_drift,
            state: Mutex::new(State {
                status: Status::Verifying,
                drifting: false,
                restarts: Restarts::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the state; a restart is asked for (under `restart`) when a
    /// drift starts, and again when it ends (the server may have read the
    /// drifted bytes in between).
    pub fn set(&self, status: Status) {
        let mut state = self.lock();
        let change = match status {
            Status::Drifted(_) => !std::mem::replace(&mut state.drifting, true),
            Status::Verified => std::mem::replace(&mut state.drifting, false),
            Status::Verifying | Status::Checking { .. } => false,
        };
        if change && self.on_drift == OnDrift::Restart {
            state.restarts.pending = true;
        }
        state.status = status;
    }

    /// `/readyz`.
    pub fn readiness(&self) -> Answer {
        match &self.lock().status {
            Status::Verifying => Answer {
                ok: false,
                body: "verifying: the model has not been verified yet\n".into(),
            },
            Status::Verified => Answer {
                ok: true,
                body: "verified: the model is the signed one\n".into(),
            },
            Status::Checking { files } => Answer {
                ok: false,
                body: format!(
                    "checking: {files} file(s) changed on disk and are being hashed again\n"
                ),
            },
            Status::Drifted(problems) => Answer {
                ok: false,
                body: drift_body(problems),
            },
        }
    }

    /// `/livez` at `now`.
    pub fn liveness(&self, now: Instant) -> Answer {
        let mut state = self.lock();
        if self.on_drift == OnDrift::Restart && state.restarts.failing(now) {
            let mut body = String::from(
                "restart: the model drifted after the server read it; restart the server\n",
            );
            if let Status::Drifted(problems) = &state.status {
                body.push_str(&drift_body(problems));
            }
            return Answer { ok: false, body };
        }
        Answer {
            ok: true,
            body: "alive\n".into(),
        }
    }
}

fn drift_body(problems: &[String]) -> String {
    let mut body = String::from("drift: the model is not the signed one\n");
    for p in problems {
        body.push_str(p);
        body.push('\n');
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drifted() -> Status {
        Status::Drifted(vec!["w.bin: modified".into()])
    }

    #[test]
    fn quarantine_is_not_ready_while_drifted_or_checking_and_never_fails_liveness() {
        let health = Health::new(OnDrift::Quarantine);
        let now = Instant::now();
        assert_eq!(
            health.readiness(),
            Answer {
                ok: false,
                body: "verifying: the model has not been verified yet\n".into()
            }
        );
        health.set(Status::Verified);
        assert!(health.readiness().ok);
        health.set(Status::Checking { files: 2 });
        assert_eq!(
            health.readiness().body,
            "checking: 2 file(s) changed on disk and are being hashed again\n"
        );
        health.set(drifted());
        let ready = health.readiness();
        assert!(!ready.ok);
        assert_eq!(
            ready.body,
            "drift: the model is not the signed one\nw.bin: modified\n"
        );
        assert!(health.liveness(now).ok);
        health.set(Status::Verified);
        assert!(health.readiness().ok);
        assert!(health.liveness(now).ok);
    }

    #[test]
    fn restart_fails_liveness_for_a_window_then_backs_off_doubling_up_to_an_hour() {
        let health = Health::new(OnDrift::Restart);
        let t0 = Instant::now();
        health.set(Status::Verified);
        assert!(health.liveness(t0).ok);
        health.set(drifted());
        // A check in the drift is no new drift.
        health.set(Status::Checking { files: 1 });
        health.set(drifted());
        assert!(!health.liveness(t0).ok);
        assert!(
            !health
                .liveness(t0 + RESTART_WINDOW - Duration::from_secs(1))
                .ok
        );
        assert!(health.liveness(t0 + RESTART_WINDOW).ok);
        // Restored soon after: a second restart is wanted, but waits for
        // the backoff (5 min after the window).
        health.set(Status::Verified);
        let t1 = t0 + RESTART_WINDOW + Duration::from_secs(10);
        assert!(health.liveness(t1).ok);
        let allowed = t0 + RESTART_WINDOW + FIRST_BACKOFF;
        assert!(health.liveness(allowed - Duration::from_secs(1)).ok);
        assert!(!health.liveness(allowed).ok);
        assert!(health.liveness(allowed + RESTART_WINDOW).ok);
        // The next waits twice as long.
        health.set(drifted());
        let next = allowed + RESTART_WINDOW + FIRST_BACKOFF * 2;
        assert!(health.liveness(next - Duration::from_secs(1)).ok);
        assert!(!health.liveness(next).ok);
        // A drift that goes on asks for nothing more.
        health.set(drifted());
        let later = next + RESTART_WINDOW + MAX_BACKOFF * 2;
        assert!(health.liveness(later).ok);
    }

    #[test]
    fn the_backoff_never_passes_an_hour() {
        let mut restarts = Restarts::new();
        let mut now = Instant::now();
        for _ in 0..20 {
            restarts.pending = true;
            now = restarts.next_allowed.unwrap_or(now);
            assert!(restarts.failing(now));
        }
        assert_eq!(restarts.backoff, MAX_BACKOFF);
    }
}
