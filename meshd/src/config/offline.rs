//! Applies without a daemon: `meshctl apply --config-dir DIR` and `meshctl diff`, for a config
//! repository (GitOps) or a directory distributed to every VM by other tools.
//!
//! The plan is the one a live apply makes ([`store::plan_apply`]: the same metadata, the same
//! target files, the same bytes), validated against the whole mesh in the directory exactly as
//! meshd validates it before putting a change in force; the files are written as a live apply
//! writes them ([`files::write_changes`]: synced temp files, renames, a restore on failure).
//! What a daemon adds, nothing here does: no config is put in force, and no journal is kept (the
//! journal protects meshd's own state across a crash; a repository has its version control).
//!
//! An apply stamps new and changed resources with `createdAt`/`lastUpdatedAt` of the moment of
//! the apply; with `SOURCE_DATE_EPOCH` set (seconds since the epoch, the reproducible-builds
//! convention) both meshd and meshctl use that moment instead, so a repository's files come out
//! byte for byte the same wherever and whenever they are generated.

use std::path::{Path, PathBuf};

use super::store::{self, FileChange, Outcome, StoreError};
use super::{files, load};

/// The plan of applying `docs` (each with the file the user gave it in) to the directory `dir`:
/// what happens to each resource and the new content of each file, the whole result validated.
pub fn plan(
    dir: &Path,
    docs: Vec<(PathBuf, serde_json::Value)>,
) -> Result<(Vec<Outcome>, Vec<FileChange>), StoreError> {
    let incoming = store::parse_documents(docs)?;
    let current = load::read_unvalidated(dir).map_err(StoreError::Invalid)?;
    let (outcomes, changes) = store::plan_apply(dir, &current.set, incoming)?;
    if !changes.is_empty() {
        // The whole directory as it will be, read and validated as meshd reads it.
        let after = load::apply_changes(current.files, &changes).map_err(StoreError::BadRequest)?;
        load::from_files(after, true).map_err(StoreError::Invalid)?;
    }
    Ok((outcomes, changes))
}

/// Applies `docs` to `dir` (see [`plan`]) and writes the files, unless `dry_run`.
pub fn apply(
    dir: &Path,
    docs: Vec<(PathBuf, serde_json::Value)>,
    dry_run: bool,
) -> Result<Vec<Outcome>, StoreError> {
    let (outcomes, changes) = plan(dir, docs)?;
    if !dry_run && !changes.is_empty() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("cannot create {} : {e}", dir.display())))?;
        files::write_changes(&changes)?;
    }
    Ok(outcomes)
}
