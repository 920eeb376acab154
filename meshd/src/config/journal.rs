//! Applies that are atomic across files.
//!
//! An apply may change many files. [`commit`] first writes the whole list of new contents to a
//! journal in meshd's state directory (temp file, fsync, rename: the rename is the commit
//! point), then writes the files ([`super::files::write_changes`]), then removes the journal.
//! [`recover`] runs before meshd reads the directory at start: a journal left by a crash is
//! written out again (every file gets its new content; writing is idempotent) and removed. So
//! after a crash at any instant the directory holds the whole old set (no journal yet) or,
//! after recovery, the whole new set.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{remove_durable, write_atomic, write_changes};
use super::state::StateDir;
use super::store::{FileChange, StoreError};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Journal {
    /// The config directory the files belong to.
    config_dir: PathBuf,
    /// Every file's new content (`null` removes it).
    changes: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    file: PathBuf,
    content: Option<String>,
}

/// Writes `changes` atomically across files (see the module docs). On an error before the
/// commit point nothing changed; after it, the files are restored and the journal removed when
/// possible, else the journal stays and the next start finishes the apply.
pub fn commit(
    state: &StateDir,
    config_dir: &Path,
    changes: &[FileChange],
) -> Result<(), StoreError> {
    let mut entries = Vec::with_capacity(changes.len());
    for c in changes {
        let content = match &c.new {
            Some(bytes) => Some(String::from_utf8(bytes.clone()).map_err(|_| {
                StoreError::Io(format!("{}: new content is not UTF-8", c.path.display()))
            })?),
            None => None,
        };
        entries.push(Entry {
            file: c.path.clone(),
            content,
        });
    }
    let journal = Journal {
        config_dir: config_dir.to_path_buf(),
        changes: entries,
    };
    let bytes = serde_json::to_vec(&journal)
        .map_err(|e| StoreError::Io(format!("cannot encode the apply journal: {e}")))?;
    let path = state.journal();
    write_atomic(&path, &bytes).map_err(|e| {
        StoreError::Io(format!(
            "cannot write the apply journal {} : {e}",
            path.display()
        ))
    })?;
    match write_changes(changes) {
        Ok(()) => {
            if let Err(e) = remove_durable(&path) {
                // The files are complete; a leftover journal only rewrites the same contents.
                tracing::warn!(journal = %path.display(), error = %e, "cannot remove the apply journal");
            }
            Ok(())
        }
        Err(e) => {
            if e.restored {
                let _ = remove_durable(&path);
            } else {
                tracing::error!(journal = %path.display(), "an apply was written in part; the next start completes it from the journal");
            }
            Err(e.into())
        }
    }
}

/// Finishes an apply interrupted by a crash: writes every file of a journal left in `state` and
/// removes it. Returns how many files were written (0 without a journal). A journal for another
/// config directory, or one that cannot be read, is moved aside with an error logged.
pub fn recover(state: &StateDir, config_dir: &Path) -> std::io::Result<usize> {
    let path = state.journal();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let journal: Journal = match serde_json::from_slice(&bytes) {
        Ok(j) => j,
        Err(e) => {
            let aside = path.with_extension("json.unreadable");
            tracing::error!(journal = %path.display(), moved_to = %aside.display(), error = %e, "cannot read the apply journal; moving it aside");
            std::fs::rename(&path, &aside)?;
            return Ok(0);
        }
    };
    if journal.config_dir != config_dir {
        let aside = path.with_extension("json.other-dir");
        tracing::error!(journal = %path.display(), journal_dir = %journal.config_dir.display(), config_dir = %config_dir.display(), "the apply journal belongs to another config directory; moving it aside");
        std::fs::rename(&path, &aside)?;
        return Ok(0);
    }
    std::fs::create_dir_all(config_dir)?;
    for e in &journal.changes {
        match &e.content {
            Some(text) => write_atomic(&e.file, text.as_bytes())?,
            None => remove_durable(&e.file)?,
        }
        tracing::info!(file = %e.file.display(), removed = e.content.is_none(), "completing an apply interrupted by a crash");
    }
    remove_durable(&path)?;
    Ok(journal.changes.len())
}
