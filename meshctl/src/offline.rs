//! The commands that change or compare a config directory without a daemon: `apply
//! --config-dir DIR` and `diff`. Both plan exactly as meshd does ([`meshd::config::offline`]).

use std::path::{Path, PathBuf};

use meshd::config::store::{FileChange, Outcome, StoreError};
use serde_json::{json, Value};

use crate::cli::Format;
use crate::{input, print, Error};

fn documents(files: &[PathBuf]) -> Result<Vec<(PathBuf, Value)>, Error> {
    Ok(input::read_inputs(files)?
        .into_iter()
        .map(|d| (d.file, d.value))
        .collect())
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Invalid(errors) => Error::Invalid(errors),
        StoreError::BadRequest(m) => Error::Usage(m),
        StoreError::NotFound(m) | StoreError::InUse(m) | StoreError::Io(m) => Error::Runtime(m),
    }
}

/// `meshctl apply -f … --config-dir DIR`: the same lines (or JSON) as a live apply.
pub fn apply(dir: &Path, files: &[PathBuf], dry_run: bool, output: Format) -> Result<(), Error> {
    let docs = documents(files)?;
    let outcomes = meshd::config::offline::apply(dir, docs, dry_run).map_err(store_error)?;
    for w in outcomes.iter().flat_map(|o| &o.warnings) {
        eprintln!("warning: {w}");
    }
    if output == Format::Json {
        let results: Vec<Value> = outcomes.iter().map(result_json).collect();
        return print(&crate::pretty(
            &json!({"dryRun": dry_run, "results": results}),
        ));
    }
    let suffix = if dry_run { " (dry run)" } else { "" };
    let text: String = outcomes
        .iter()
        .map(|o| format!("{} {}{suffix}\n", o.resource.label(), o.action.as_str()))
        .collect();
    print(&text)
}

fn result_json(o: &Outcome) -> Value {
    json!({"resource": o.resource.label(), "action": o.action.as_str(),
           "file": o.file.display().to_string(),
           "version": o.resource.metadata().and_then(|m| m.version)})
}

/// `meshctl diff -f … --config-dir DIR`: a unified diff of every file the apply would change
/// (`/dev/null` for a file it would create), nothing when it would change none.
pub fn diff(dir: &Path, files: &[PathBuf]) -> Result<(), Error> {
    let docs = documents(files)?;
    let (_, changes) = meshd::config::offline::plan(dir, docs).map_err(store_error)?;
    print(&changes.iter().map(unified).collect::<String>())
}

fn unified(c: &FileChange) -> String {
    let text = |b: &Option<Vec<u8>>| {
        b.as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let (old, new) = (text(&c.old), text(&c.new));
    let path = c.path.display().to_string();
    let from = if c.old.is_some() {
        path.as_str()
    } else {
        "/dev/null"
    };
    let to = if c.new.is_some() {
        path.as_str()
    } else {
        "/dev/null"
    };
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string()
}
