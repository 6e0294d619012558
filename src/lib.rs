//! modelgate: refuse to start an AI model that is not exactly the one that
//! was signed.
//!
//! The library holds all the logic; `src/main.rs` only parses arguments and
//! maps outcomes to exit codes, so tests and benchmarks run the same code as
//! the binary. The modules are layers, and each depends only on the layers
//! below it (the README's "Layout" table lists them):
//!
//! | layer | modules |
//! |---|---|
//! | entry points | [`cli`], [`error`] |
//! | verification, registries, records | [`verify`], [`oci`], [`measure`] |
//! | the format, trust, policy | [`oms`], [`trust`], [`policy`] |
//! | the model on disk | [`model`], [`node`] |
//! | support | [`io`], [`logging`] |
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod error;
pub mod io;
pub mod logging;
pub mod measure;
pub mod model;
pub mod node;
pub mod oci;
pub mod oms;
pub mod policy;
pub mod trust;
pub mod verify;

pub use error::Error;
pub use io::{MAX_KEY_BYTES, MAX_SIGNATURE_BYTES, read_bounded, write_atomic};
