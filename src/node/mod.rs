//! The node under the model: facts about the trusted computing base the
//! model runs on, read below a root folder (`/` in a pod, the host's root
//! with `--host-root`, a fake root in tests) without leaving it.
//!
//! This module observes and records; it decides nothing. What a policy
//! requires of these facts is `crate::policy`'s business.

mod error;
pub mod gpu;
mod root;

pub use gpu::{Device, DriverVersion, Gpu, GpuFacts, Library, gpu_facts};
pub use root::open_folder_in;
