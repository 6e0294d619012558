//! Where a run's outcome goes. A [`Recorder`] is told of the run's progress
//! and given its measurement; the CLI shows progress on a terminal and
//! writes a measurement file when asked; `init` also appends to the
//! hash-chained measurement log and writes the termination message kubelet
//! shows. A recorder that cannot record a verdict makes the run an error:
//! a model is never reported verified without its record.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::{error, info, warn};

use crate::measure::{Measurement, RunContext, Summary, log};
use crate::oci::pull::Watch;

/// A measurement that could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The measurement file could not be written.
    #[error("cannot write measurement {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The measurement log could not be appended to.
    #[error(transparent)]
    Log(#[from] log::LogError),
}

/// Receives a run's progress and its measurement.
pub trait Recorder: Sync {
    /// `n` more bytes were hashed.
    fn hashed(&self, _n: u64) {}
    /// Per-blob transfer progress of a pull.
    fn transfers(&self) -> &dyn Watch {
        &Quiet
    }
    /// The hashing or transfer phase ended (clear any progress display).
    fn finished(&self) {}
    /// Records the run's measurement. An error means the verdict must not
    /// be reported as verified.
    fn record(&mut self, doc: Measurement<'_>) -> Result<(), RecordError>;
}

/// A transfer watcher that shows nothing.
pub struct Quiet;

impl Watch for Quiet {
    fn started(&self, _shown: &str, _size: u64) -> usize {
        0
    }
    fn received(&self, _handle: usize, _n: u64) {}
    fn finished(&self, _handle: usize) {}
}

/// A measurement file, and under `init` the pod and node facts added to it,
/// the measurement log and the termination message. Cheap to clone: the
/// deadline and signal watchers of `init` record through a clone.
#[derive(Clone, Debug)]
pub struct MeasurementFile {
    /// Where the document is written (atomically, mode 0644).
    pub path: PathBuf,
    /// What `init` adds and where else it reports.
    pub context: Option<Arc<RunContext>>,
}

impl MeasurementFile {
    /// Writes `doc` with the context's facts, then (with a context) its log
    /// entry and termination message. Any failure to record removes the
    /// document: never an older or unlogged "verified" left behind.
    pub fn write(&self, doc: Measurement<'_>) -> Result<(), RecordError> {
        let context = self.context.as_deref();
        let doc = match context {
            Some(c) => doc.with_context(c.pod.as_ref(), c.gpu.as_ref()),
            None => doc,
        };
        let bytes = doc.to_bytes();
        if let Err(source) = crate::io::write_atomic(&self.path, &bytes, 0o644) {
            let _ = std::fs::remove_file(&self.path);
            let e = RecordError::Write {
                path: self.path.clone(),
                source,
            };
            error!("{e}");
            return Err(e);
        }
        info!(path = %self.path.display(), step = "measurement", "measurement written");
        let Some(context) = context else {
            return Ok(());
        };
        let summary = doc.summary();
        let mut outcome = Ok(());
        if let Some(log_path) = &context.measurement_log {
            match log::append(log_path, &log::entry_for(&summary, &bytes)) {
                Ok(chain) => {
                    info!(log = %log_path.display(), chain = %chain, "measurement log appended");
                }
                Err(e) => {
                    error!("{e}; the run is not reported as verified");
                    let _ = std::fs::remove_file(&self.path);
                    outcome = Err(e.into());
                }
            }
        }
        if let Some(file) = &context.termination_log {
            write_termination(file, &summary, outcome.is_err());
        }
        outcome
    }
}

/// The termination message for `summary`; `unlogged` when the measurement
/// log could not be appended to.
fn write_termination(file: &std::path::Path, summary: &Summary, unlogged: bool) {
    let mut message = log::termination_message(summary);
    if unlogged {
        message = log::cut(
            format!("modelgate: error: the measurement log could not be appended to\n{message}"),
            log::MAX_TERMINATION_BYTES,
        );
    }
    if let Err(e) = std::fs::write(file, message) {
        warn!(path = %file.display(), "cannot write the termination message: {e}");
    }
}

impl Recorder for MeasurementFile {
    fn record(&mut self, doc: Measurement<'_>) -> Result<(), RecordError> {
        self.write(doc)
    }
}

/// A measurement file when one was asked for, else nothing.
impl Recorder for Option<MeasurementFile> {
    fn record(&mut self, doc: Measurement<'_>) -> Result<(), RecordError> {
        match self {
            Some(file) => file.write(doc),
            None => Ok(()),
        }
    }
}

/// A recorder that shows progress through `show` and records through
/// `record`: the CLI's terminal display with its measurement file.
pub struct Both<'a, S, R> {
    /// Shows progress.
    pub show: &'a S,
    /// Records the measurement.
    pub record: R,
}

/// Progress shown to a person (the CLI's terminal bars).
pub trait Display: Watch + Sync {
    /// `n` more bytes hashed.
    fn hashed(&self, n: u64);
    /// Clear the display.
    fn finished(&self);
}

impl<S: Display, R: Recorder> Recorder for Both<'_, S, R> {
    fn hashed(&self, n: u64) {
        self.show.hashed(n);
    }
    fn transfers(&self) -> &dyn Watch {
        self.show
    }
    fn finished(&self) {
        Display::finished(self.show);
    }
    fn record(&mut self, doc: Measurement<'_>) -> Result<(), RecordError> {
        self.record.record(doc)
    }
}
