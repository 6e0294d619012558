//! modelgate: refuse to start an AI model that is not exactly the one that
//! was signed.
//!
//! The library holds all the logic; `src/main.rs` only parses arguments and
//! exits with the code of the [`verify::Verdict`] a front end returns, so
//! tests and benchmarks run the same code as the binary. Every front end
//! turns its input into [`gate::Settings`] and a [`gate::Source`] and calls
//! one [`gate::run`]. The modules are layers, and each depends only on its
//! own layer or the layers below it, never in a circle (between folders or
//! between the files of one folder). This table is the one list of them;
//! `tests/it/layout.rs` reads it and checks the source tree against it
//! (docs/architecture.md explains each layer):
//!
//! | layer | modules |
//! |---|---|
//! | front ends | [`cli`], [`admission`] |
//! | one verification run, and keeping it | [`gate`], [`watch`] |
//! | verification, registries, records | [`verify`], [`oci`], [`measure`], [`keyless`] |
//! | the format, trust, policy | [`oms`], [`trust`], [`policy`] |
//! | the model on disk, the node | [`model`], [`node`] |
//! | support | [`io`], [`logging`], [`serve`] |
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod cli;
pub mod gate;
pub mod io;
pub mod keyless;
pub mod logging;
pub mod measure;
pub mod model;
pub mod node;
pub mod oci;
pub mod oms;
pub mod policy;
pub mod serve;
pub mod trust;
pub mod verify;
pub mod watch;

pub use io::{MAX_KEY_BYTES, MAX_SIGNATURE_BYTES, read_bounded, write_atomic};
