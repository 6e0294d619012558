//! The `modelgate` binary: parse, dispatch, exit with a code that means something.
#![deny(unsafe_code)]

use std::ffi::OsString;

use clap::Parser;

/// KServe runs a storage initializer as `<uri> <mountPath>`: that form is
/// `init --source <uri> --target <mountPath>`. Anything else is parsed as
/// usual.
fn arguments() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let [program, uri, mount] = args.as_slice() {
        let first = uri.to_string_lossy();
        let is_command = modelgate::cli::is_subcommand(&first);
        if !is_command && !first.starts_with('-') {
            return vec![
                program.clone(),
                "init".into(),
                "--source".into(),
                uri.clone(),
                "--target".into(),
                mount.clone(),
            ];
        }
    }
    args
}

fn main() {
    let cli = modelgate::cli::Cli::parse_from(arguments());
    // The one place the process exits: the verdict's code (0 verified, 1
    // rejected, 2 could not verify).
    std::process::exit(modelgate::cli::run(cli).exit_code());
}
