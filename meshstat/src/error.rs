//! The errors of meshstat, each one line `<what> : <why>`, and the exit code it maps to.

use std::path::PathBuf;

/// Everything that can stop a meshstat command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pattern is not a valid regular expression (exit 2).
    #[error("invalid regex {pattern:?} : {why}")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// What the regex parser said (first line).
        why: String,
    },
    /// Any other invalid argument (exit 2).
    #[error("{what} : {why}")]
    Usage {
        /// The argument.
        what: String,
        /// Why it is invalid.
        why: String,
    },
    /// A log file could not be opened or read (exit 2).
    #[error("log file {} : {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A meshd admin endpoint did not answer, or answered something unexpected (exit 1).
    #[error("{addr} : {why}")]
    Admin {
        /// The admin address as given.
        addr: String,
        /// What went wrong.
        why: String,
    },
    /// Writing the output failed (other than a closed pipe, which ends quietly).
    #[error("stdout : {0}")]
    Output(#[source] std::io::Error),
    /// The reader of our output went away (`| head`): not an error, ends with 0.
    #[error("broken pipe")]
    BrokenPipe,
    /// Some of several sources failed; their errors were printed already (exit 1).
    #[error("{0} source(s) failed")]
    Partial(usize),
}

impl Error {
    /// The process exit code: 2 for invalid input, 1 for failures, 0 for a closed pipe.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Regex { .. } | Error::Usage { .. } | Error::File { .. } => 2,
            Error::Admin { .. } | Error::Output(_) | Error::Partial(_) => 1,
            Error::BrokenPipe => 0,
        }
    }

    /// A usage error.
    pub fn usage(what: impl Into<String>, why: impl Into<String>) -> Error {
        Error::Usage {
            what: what.into(),
            why: why.into(),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::BrokenPipe
        } else {
            Error::Output(e)
        }
    }
}

/// meshstat's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Compiles `patterns` as regular expressions (partial match, as `/stats?filter=`).
pub fn compile(patterns: &[String]) -> Result<Vec<regex::Regex>> {
    patterns
        .iter()
        .map(|p| {
            regex::Regex::new(p).map_err(|e| Error::Regex {
                pattern: p.clone(),
                why: e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .trim()
                    .to_owned(),
            })
        })
        .collect()
}
