//! Ending a run from outside its flow (a deadline, SIGTERM) without leaving
//! anything that looks verified. A [`Cancel`] belongs to one run: the
//! temporary folders it makes are registered with it while they exist, and
//! the one step that puts a model in place runs under the same lock as the
//! cancellation, so exactly one of the two happens: either the model is
//! placed and the run ends as it would, or every temporary folder is
//! removed and nothing is placed. A server runs many runs, each with its
//! own `Cancel`; nothing here is process-wide.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    temporary: Vec<PathBuf>,
    cancelled: bool,
    committed: bool,
}

/// The cancellation handle of one run; clones share it (the run holds one,
/// the deadline and signal watchers another).
#[derive(Clone, Default)]
pub struct Cancel {
    state: Arc<Mutex<State>>,
}

/// What a cancellation found to undo.
#[derive(Debug)]
pub struct Cancelled {
    /// The temporary folders removed (remove them once more before the
    /// process exits: a worker still running may have re-created one).
    pub removed: Vec<PathBuf>,
}

impl Cancel {
    /// A handle for a new run.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A temporary folder, removed by a cancellation while registered.
    pub(super) fn register(&self, path: PathBuf) {
        self.state().temporary.push(path);
    }

    /// Runs `place` (the step that puts a verified model in place) unless
    /// the run was cancelled; no cancellation can run while it does. Once
    /// cancelled, see [`Self::unless_cancelled`].
    pub(super) fn commit<T>(&self, place: impl FnOnce() -> T) -> T {
        let out = self.unless_cancelled(place);
        self.state().committed = true;
        out
    }

    /// Runs `step` (writing a record of the verdict, placing the model)
    /// while no cancellation can start. A cancellation already under way
    /// owns the rest of the run: this thread then parks until the canceller
    /// ends the process (as `init` does), so no record of this run lands
    /// after the canceller's own, and no exit code of this thread races it.
    pub(super) fn unless_cancelled<T>(&self, step: impl FnOnce() -> T) -> T {
        let s = self.state();
        if s.cancelled {
            drop(s);
            loop {
                std::thread::park();
            }
        }
        let out = step();
        drop(s);
        out
    }

    /// Marks the run over, for a front end whose process goes on after it
    /// (`watch`): a cancellation from now on finds nothing to undo
    /// ([`Self::cancel`] is `None`), as after the model was placed. A
    /// cancellation already under way owns the rest of the run (see
    /// [`Self::unless_cancelled`]).
    pub fn finish(&self) {
        self.commit(|| ());
    }

    /// Cancels the run: removes every registered temporary folder, unless
    /// the model was already placed (then `None`: the run is ending as
    /// verified, and is left to). The caller owns the rest of the run.
    pub fn cancel(&self) -> Option<Cancelled> {
        let mut s = self.state();
        if s.committed {
            return None;
        }
        s.cancelled = true;
        let removed: Vec<PathBuf> = s.temporary.drain(..).collect();
        for path in &removed {
            let _ = std::fs::remove_dir_all(path);
        }
        Some(Cancelled { removed })
    }
}
