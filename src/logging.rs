//! Logs on stderr: human text on a terminal, JSON lines otherwise (kubelet
//! collects an init container's stderr line by line).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. The level comes from `MODELGATE_LOG`
/// (`info` by default; `warn` with `--quiet`). `to_stdout` (for `init`)
/// writes the lines to stdout instead of stderr.
pub fn init(format: LogFormat, quiet: bool, to_stdout: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter =
        EnvFilter::try_from_env("MODELGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let terminal = if to_stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    let writer =
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
            if to_stdout {
                Box::new(std::io::stdout())
            } else {
                Box::new(std::io::stderr())
            }
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // A second init (tests calling run() twice) keeps the first subscriber.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder
            .without_time()
            .with_target(false)
            .with_ansi(terminal)
            .try_init()
    };
}
