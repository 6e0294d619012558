//! The model on disk: walking it through file descriptors without ever
//! leaving it, cutting it into resources (files or shards), and hashing them
//! on all cores. Nothing here knows about signatures or trust.

mod digest;
pub mod dir;
pub mod hashing;
mod mapped;
pub mod paths;
pub mod resources;

pub use digest::Digest;
pub use dir::{Entry, EntryKind, FsError, ModelRoot, Stamp};
pub use hashing::HashAlgorithm;
pub use mapped::start_writeback;
pub use paths::{IgnoreRules, SINGLE_FILE_NAME};
pub use resources::{HashError, HashTask, Method, ResourceKey, Serialization};
