//! Error types. Every error renders as meshload's one-line `what : why` form; the binary prefixes
//! `meshload: ` and picks the exit code from the variant (2 for usage, 1 for runtime).

use thiserror::Error;

/// Bad input: a flag, a URL, a file named on the command line. Exit code 2.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{what} : {why}")]
pub struct UsageError {
    /// What was wrong (a flag and its value, a URL, a file).
    pub what: String,
    /// Why it is wrong.
    pub why: String,
}

impl UsageError {
    /// Builds a usage error.
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> Self {
        UsageError {
            what: what.into(),
            why: why.into(),
        }
    }
}

/// Any failure of a run.
#[derive(Debug, Error)]
pub enum Error {
    /// Invalid input (exit 2).
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The run itself failed (exit 1): target unresolvable, warm-up aborted, output not writable.
    #[error("{what} : {why}")]
    Runtime {
        /// What failed.
        what: String,
        /// Why.
        why: String,
    },
}

impl Error {
    /// Builds a runtime error.
    pub fn runtime(what: impl Into<String>, why: impl std::fmt::Display) -> Self {
        Error::Runtime {
            what: what.into(),
            why: why.to_string(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Runtime { .. } => 1,
        }
    }
}
