//! Measurements: what was verified, who signed it, and the verdict, written
//! where operators and the workload can read them.

mod document;
pub mod log;

pub use document::{
    FoundOut, Measurement, Pod, PolicyOut, SCHEMA, SignerSummary, SourceOut, Summary, WatchEvent,
};

/// What `modelgate init` adds to every measurement it writes: the pod and
/// the node facts, the hash-chained log to append to, and the termination
/// message file kubelet shows.
#[derive(Clone, Debug, Default)]
pub struct RunContext {
    /// The pod, from the downward API.
    pub pod: Option<Pod>,
    /// The node's GPU pathway.
    pub gpu: Option<crate::node::GpuFacts>,
    /// The measurement log to append an entry to.
    pub measurement_log: Option<std::path::PathBuf>,
    /// The termination-message file.
    pub termination_log: Option<std::path::PathBuf>,
}
