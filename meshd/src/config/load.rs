//! Turning files into a config: read the directory (or take files from the snapshot or an
//! apply), parse, give hand-written resources their derived metadata, validate, compile. All of
//! it is blocking work: callers run it on a blocking thread, never on the proxy's workers.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::SystemTime;

use mesh_core::model::{
    not_in_force, parse_files, read_config_dir, ConfigError, MeshSet, NotInForce, Skipped,
    SourceFile, MAX_DIR_BYTES, MAX_FILE_BYTES,
};
use mesh_core::runtime::{compile, Overrides, RuntimeConfig};

use super::nodes::{select, Selection};
use super::store::derive_metadata;

/// A config read from files and ready to put in force.
pub struct Loaded {
    /// The files it came from, sorted by path.
    pub files: Vec<SourceFile>,
    /// Their resources.
    pub set: MeshSet,
    /// [`fingerprint`] of the files.
    pub fingerprint: u64,
}

/// A config compiled for the server.
pub struct Compiled {
    /// The files and resources.
    pub loaded: Loaded,
    /// What the server runs.
    pub runtime: RuntimeConfig,
    /// Settings accepted but not in force (see [`mesh_core::model::not_in_force`]).
    pub not_in_force: Vec<NotInForce>,
    /// The nodes this meshd serves, and why ([`super::nodes`]).
    pub selection: Selection,
}

/// What reading the config directory found.
pub enum DirState {
    /// The directory is missing or cannot be read.
    Missing(std::io::Error),
    /// The directory holds no resource files.
    Empty(Vec<Skipped>),
    /// Some file cannot be used, or the resources are invalid.
    Invalid(Vec<ConfigError>, Vec<Skipped>),
    /// A valid config.
    Valid(Box<Compiled>, Vec<Skipped>),
}

/// A hash of the files' names and contents: equal fingerprints mean the same config. (Stable
/// within one process, which is all it is used for.)
pub fn fingerprint(files: &[SourceFile]) -> u64 {
    let mut h = DefaultHasher::new();
    for f in files {
        f.path.hash(&mut h);
        f.text.hash(&mut h);
    }
    h.finish()
}

/// Parses `files` into a set: each resource checked on its own, metadata derived where the file
/// has none; with `validate`, the whole-mesh rules too.
pub fn from_files(files: Vec<SourceFile>, validate: bool) -> Result<Loaded, Vec<ConfigError>> {
    let mut resources = parse_files(&files)?;
    for (_, r) in &mut resources {
        derive_metadata(r);
    }
    let set = MeshSet::from_resources(resources)?;
    if validate {
        let errors = set.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
    }
    Ok(Loaded {
        fingerprint: fingerprint(&files),
        files,
        set,
    })
}

/// Chooses the nodes to serve ([`super::nodes::select`]) and compiles a loaded config for the
/// server.
pub fn compile_loaded(loaded: Loaded, overrides: &Overrides) -> Compiled {
    let (selection, overrides) = select(&loaded.set, overrides);
    let runtime = compile(&loaded.set, &overrides);
    let not_in_force = not_in_force(&loaded.set);
    for w in loaded.set.warnings() {
        tracing::warn!(file = %w.file.display(), resource = w.resource.as_deref().unwrap_or(""), path = %w.path, "{w}");
    }
    Compiled {
        loaded,
        runtime,
        not_in_force,
        selection,
    }
}

/// Reads, validates and compiles the directory.
pub fn read_dir(dir: &Path, overrides: &Overrides) -> DirState {
    let listing = match read_config_dir(dir) {
        Ok(l) => l,
        Err(e) => return DirState::Missing(e),
    };
    if !listing.errors.is_empty() {
        return DirState::Invalid(listing.errors, listing.skipped);
    }
    if listing.files.is_empty() {
        return DirState::Empty(listing.skipped);
    }
    let t = std::time::Instant::now();
    let loaded = match from_files(listing.files, true) {
        Ok(loaded) => loaded,
        Err(errors) => return DirState::Invalid(errors, listing.skipped),
    };
    let parsed = t.elapsed();
    let compiled = compile_loaded(loaded, overrides);
    tracing::debug!(
        parse_validate_ms = parsed.as_millis() as u64,
        compile_ms = (t.elapsed() - parsed).as_millis() as u64,
        "config directory read"
    );
    DirState::Valid(Box::new(compiled), listing.skipped)
}

/// Every resource of the directory with its file, each checked on its own but not against the
/// others (so that an apply can repair a broken reference). A missing directory or one without
/// resource files is an empty set.
pub fn read_unvalidated(dir: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let listing = match read_config_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => {
            return Err(vec![ConfigError::new(
                dir,
                None,
                "",
                format!("cannot read config directory: {e}"),
            )])
        }
    };
    if !listing.errors.is_empty() {
        return Err(listing.errors);
    }
    from_files(listing.files, false)
}

/// `/config_dump`: the resources in force, in describe form, and where they came from.
pub fn config_dump(set: &MeshSet) -> serde_json::Value {
    let resources: Vec<serde_json::Value> = set
        .entries()
        .map(|(file, r)| serde_json::json!({"file": file.display().to_string(), "resource": r.to_describe_json()}))
        .collect();
    serde_json::json!({ "resources": resources })
}

/// The files after `changes`: replaced, added (modified now) or removed; sorted by path.
pub fn apply_changes(
    mut files: Vec<SourceFile>,
    changes: &[super::store::FileChange],
) -> Result<Vec<SourceFile>, String> {
    for c in changes {
        let at = files.iter().position(|f| f.path == c.path);
        match &c.new {
            Some(bytes) => {
                let text = String::from_utf8(bytes.clone())
                    .map_err(|_| format!("{}: new content is not UTF-8", c.path.display()))?;
                let file = SourceFile {
                    path: c.path.clone(),
                    text,
                    modified: Some(SystemTime::now()),
                    link_target: at.and_then(|i| files[i].link_target.clone()),
                };
                match at {
                    Some(i) => files[i] = file,
                    None => files.push(file),
                }
            }
            None => {
                if let Some(i) = at {
                    files.remove(i);
                }
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // What an apply writes must load again at the next start: the same limits as reading.
    let mut total = 0u64;
    for f in &files {
        let len = f.text.len() as u64;
        if len > MAX_FILE_BYTES {
            return Err(format!(
                "{} would be {len} bytes; the limit is {} MiB per resource file: apply the \
                 resources in a new file (a smaller array) instead",
                f.path.display(),
                MAX_FILE_BYTES >> 20
            ));
        }
        total += len;
    }
    if total > MAX_DIR_BYTES {
        return Err(format!(
            "the config directory would hold {total} bytes of resources; the limit is {} MiB",
            MAX_DIR_BYTES >> 20
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::store::FileChange;
    use std::path::PathBuf;

    fn file(name: &str, len: usize) -> SourceFile {
        SourceFile {
            path: PathBuf::from(name),
            text: " ".repeat(len),
            modified: None,
            link_target: None,
        }
    }

    #[test]
    fn an_apply_cannot_write_what_the_next_start_would_refuse() {
        let big = FileChange {
            path: PathBuf::from("/c/big.json"),
            new: Some(vec![b' '; MAX_FILE_BYTES as usize + 1]),
            old: None,
        };
        let e = apply_changes(Vec::new(), &[big]).expect_err("too large");
        assert!(e.contains("/c/big.json") && e.contains("8 MiB"), "{e}");

        let half = (MAX_FILE_BYTES / 2) as usize;
        let files: Vec<SourceFile> = (0..3)
            .map(|i| file(&format!("/c/{i}.json"), half * 2 - 1))
            .collect();
        let one_more = FileChange {
            path: PathBuf::from("/c/3.json"),
            new: Some(vec![b' '; half]),
            old: None,
        };
        let e = apply_changes(files, &[one_more]).expect_err("directory too large");
        assert!(e.contains("16 MiB"), "{e}");

        let ok = FileChange {
            path: PathBuf::from("/c/a.json"),
            new: Some(b"{}".to_vec()),
            old: None,
        };
        let files = apply_changes(vec![file("/c/b.json", 3)], &[ok]).expect("fits");
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, PathBuf::from("/c/a.json"));
    }
}
