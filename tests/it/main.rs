//! modelgate's integration tests: one test binary, one module per area (as
//! ripgrep's `tests/tests.rs`). One binary links the crate once instead of
//! two dozen times, and its shared helpers (`common`) are checked for use
//! as a whole: a helper no area calls is dead code, and the build says so.
//!
//! Every process a test starts (a registry, a token server, a proxy, a FUSE
//! mount, a modelgate run in the background) is owned by a value that kills
//! and reaps it when dropped, on a panic too (`common::Process`); nothing is
//! kept in a `static`, which is never dropped. scripts/test.sh checks after
//! the run that no process of the suite is left.
//!
//! Run one area with `cargo test --test it attacks::`, one test with its
//! full name, `cargo test --test it tamper::flipped_bit_names_file_and_both_digests`.

mod common;

mod admission_policies;
mod attacks;
mod certificates;
mod cli;
mod deploy;
mod faults;
mod gpu;
mod hostile;
mod image;
mod init;
mod interop;
mod keyless;
mod layout;
mod legacy;
mod manifest_checks;
mod oci;
mod oci_push;
mod oci_sources;
mod oci_tar;
mod oci_token;
mod paths;
mod policy;
mod properties;
mod sigstore;
mod tamper;
mod transparency;
mod watch;
mod webhook;
