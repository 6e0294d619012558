//! The `modelgate` binary: parse, dispatch, exit with a code that means something.
#![deny(unsafe_code)]

use clap::Parser;

fn main() {
    let cli = modelgate::cli::Cli::parse();
    std::process::exit(modelgate::cli::run(cli));
}
