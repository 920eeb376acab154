//! `ConfigError`: one problem in one resource document, with file, resource, JSON path and a
//! message that says what is allowed.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found while reading or validating configuration.
///
/// Displays as one line, `<file>: <resource>: <path>: <message>`; the resource part is left out
/// when the resource could not be identified and the path part when the problem concerns the
/// whole document (for example invalid JSON, whose message carries line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the resource came from (as given to the parser, not canonicalized).
    pub file: PathBuf,
    /// The resource as `<kind>/<name>`, e.g. `virtualnode/green`; routes and gateway routes are
    /// `route/<virtual router>/<name>` and `gatewayroute/<virtual gateway>/<name>`.
    pub resource: Option<String>,
    /// JSON path inside the resource, e.g. `spec.listeners[0].connectionPool.http.maxConnections`;
    /// relative to the resource object (inside a describe wrapper or array element). Empty when
    /// the problem concerns the document as a whole.
    pub path: String,
    /// What is wrong and what is allowed, e.g. `must be between 1 and 65535, got 70000`.
    pub message: String,
}

/// A value that is not one of an enum's accepted strings; the message lists the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

// === impl ConfigError ===

impl ConfigError {
    /// Builds an error; `path` may be empty.
    pub fn new(
        file: &Path,
        resource: Option<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            resource,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(resource) = &self.resource {
            write!(f, ": {resource}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Rewrites serde's messages into ours: no backticks, and always say what is expected.
///
/// `unknown field `x`, expected `a` or `b`` becomes `unknown field "x", expected one of a, b`;
/// `invalid type: string "x", expected i64` becomes `expected an integer, got string "x"`.
pub(crate) fn polish_serde_message(message: &str) -> String {
    let ticked = backticked(message);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = ticked.first().cloned().unwrap_or_default();
        if rest.contains("there are no fields") {
            return format!("unknown field \"{field}\", no fields are allowed here");
        }
        return format!("unknown field \"{field}\", {}", expected_list(&ticked[1..]));
    }
    if message.starts_with("unknown variant `") {
        let value = ticked.first().cloned().unwrap_or_default();
        return format!("unknown value \"{value}\", {}", expected_list(&ticked[1..]));
    }
    if message.starts_with("missing field `") {
        let field = ticked.first().cloned().unwrap_or_default();
        return format!("missing required field \"{field}\"");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((got, expected)) = rest.rsplit_once(", expected ") {
            return format!(
                "expected {}, got {}",
                nice_expected(expected),
                nice_got(got)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some((got, expected)) = rest.rsplit_once(", expected ") {
            return format!(
                "{} is out of range, expected {}",
                nice_got(got),
                nice_expected(expected)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("invalid length ") {
        if rest.contains("expected struct") {
            return "expected an object, got an array".to_string();
        }
    }
    if message.starts_with("data did not match any variant of untagged enum Timestamp") {
        return "expected a timestamp (epoch seconds or an ISO 8601 string)".to_string();
    }
    message.to_string()
}

fn expected_list(names: &[String]) -> String {
    match names {
        [] => "no other value is allowed".to_string(),
        [one] => format!("expected {one}"),
        many => format!("expected one of {}", many.join(", ")),
    }
}

/// Every substring enclosed in backticks, in order.
fn backticked(message: &str) -> Vec<String> {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn nice_expected(expected: &str) -> String {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" => {
            "an integer".to_string()
        }
        "f32" | "f64" => "a number".to_string(),
        "a sequence" => "an array".to_string(),
        "a map" | "map" => "an object".to_string(),
        "string or map" | "variant identifier" => "a string".to_string(),
        other if other.starts_with("struct ") => "an object".to_string(),
        other if other.starts_with("a sequence") => "an array".to_string(),
        other => other.to_string(),
    }
}

fn nice_got(got: &str) -> String {
    match got {
        "map" => "an object".to_string(),
        "sequence" => "an array".to_string(),
        other => other.replace('`', "").replace("floating point", "number"),
    }
}
