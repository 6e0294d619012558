//! The verdict of a run, typed: what every front end reports and `main.rs`
//! alone turns into an exit code.

use std::fmt;

/// How a run ended. The measurement's `verdict` field, the log line and
/// the exit code (decided in `main.rs`, nowhere else) all come from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The model is exactly what was signed, by signers the policy trusts
    /// (for a command that signs, digests or checks: it completed).
    Verified,
    /// The model, its signatures or the registry's content were checked and
    /// found wrong.
    Rejected,
    /// Rejected, but the policy rule is in warn mode: the workload may
    /// start, and the measurement says `unverified-allowed`.
    #[serde(rename = "unverified-allowed")]
    AllowedUnverified,
    /// The run could not reach a verdict: a setting, an unreadable input, a
    /// registry that could not be used, a deadline.
    Error,
}

impl Verdict {
    /// The word the measurement and the termination message use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Rejected => "rejected",
            Self::AllowedUnverified => "unverified-allowed",
            Self::Error => "error",
        }
    }

    /// Whether the workload may start.
    pub fn allows_start(self) -> bool {
        matches!(self, Self::Verified | Self::AllowedUnverified)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Verdict {
    /// The process exit code for this verdict: 0 verified (or allowed by
    /// warn mode), 1 rejected, 2 could not verify. This is the one mapping;
    /// `main.rs` exits with it, and a log line names it so that an operator
    /// reading kubelet's logs sees what the container returned.
    pub const fn exit_code(self) -> i32 {
        match self {
            Self::Verified | Self::AllowedUnverified => 0,
            Self::Rejected => 1,
            Self::Error => 2,
        }
    }
}
