//! Ending a run from outside its flow (the deadline, SIGTERM) without
//! leaving anything that looks verified: the temporary folders a pull makes
//! are registered here while they exist, and the one step that puts a model
//! in place runs under the same lock as the abort, so exactly one of the two
//! happens: either the model is placed and the run ends as it would, or
//! every temporary folder is removed and nothing is placed.

use std::path::PathBuf;
use std::sync::Mutex;

struct State {
    temporary: Vec<PathBuf>,
    aborted: bool,
    committed: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    temporary: Vec::new(),
    aborted: false,
    committed: false,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary folder, removed by an abort while registered.
pub(super) fn register(path: PathBuf) {
    state().temporary.push(path);
}

/// Runs `place` (the step that puts a verified model in place) unless the
/// run was aborted; no abort can run while it does. Once aborted, the
/// calling thread waits for the abort to end the process (see
/// [`unless_aborted`]).
pub(super) fn commit<T>(place: impl FnOnce() -> T) -> T {
    let out = unless_aborted(place);
    state().committed = true;
    out
}

/// Runs `step` (writing a record of the verdict, placing the model) while
/// no abort can start; an abort already under way owns the rest of the run:
/// this thread then parks until the abort exits the process, so no record
/// of this thread's lands after the abort's own, and no exit code of this
/// thread's races it.
pub(super) fn unless_aborted<T>(step: impl FnOnce() -> T) -> T {
    let s = state();
    if s.aborted {
        drop(s);
        loop {
            std::thread::park();
        }
    }
    let out = step();
    drop(s);
    out
}

/// Aborts the run: removes every registered temporary folder and returns
/// them (the caller removes them once more just before it exits, in case a
/// worker still running re-created one), unless the model was already placed
/// (then `None`: the run is ending as verified, and is left to).
pub(super) fn abort() -> Option<Vec<PathBuf>> {
    let mut s = state();
    if s.committed {
        return None;
    }
    s.aborted = true;
    let removed: Vec<PathBuf> = s.temporary.drain(..).collect();
    for path in &removed {
        let _ = std::fs::remove_dir_all(path);
    }
    Some(removed)
}
