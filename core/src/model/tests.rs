//! Model tests: reference §11 examples, round trips and key order, error paths and messages,
//! whole-mesh validation, directory loading and the walkthrough.

mod errors;
mod examples;
mod not_in_force;
mod reference_docs;
mod resilience;
mod set;

use std::path::{Path, PathBuf};

use super::*;

/// Parses `text` as file `f.json` and expects exactly one resource.
pub(super) fn one(text: &str) -> Resource {
    match parse_document(Path::new("f.json"), text) {
        Ok(mut list) if list.len() == 1 => list.remove(0),
        Ok(list) => panic!("expected one resource, got {}", list.len()),
        Err(errors) => panic!("unexpected errors: {}", lines(&errors)),
    }
}

/// Parses and validates `text`, returning every error (parse or per-resource) as a line.
pub(super) fn errors_of(text: &str) -> Vec<String> {
    let file = Path::new("f.json");
    match parse_document(file, text) {
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
        Ok(list) => list
            .iter()
            .flat_map(|r| validate_resource(file, r))
            .map(|e| e.to_string())
            .collect(),
    }
}

/// Asserts that exactly one error is reported and that it equals `expected`.
#[track_caller]
pub(super) fn assert_one_error(text: &str, expected: &str) {
    let errors = errors_of(text);
    assert_eq!(errors, vec![expected.to_string()], "for document {text}");
}

pub(super) fn lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A directory under the system temp dir, removed on drop (core has no `tempfile` dependency).
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mesh-core-model-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The walkthrough directory shipped in `examples/walkthrough`.
pub(super) fn walkthrough_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/walkthrough")
}
