//! Measurements: what was verified, who signed it, and the verdict, written
//! where operators and the workload can read them.

mod document;

pub use document::{FoundOut, Measurement, PolicyOut, SCHEMA, SourceOut};
