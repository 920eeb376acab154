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
                tracing::warn!(journal = %path.display(), error = %e, "cannot remove the apply journal {} : {e}", path.display());
            }
            Ok(())
        }
        Err(e) => {
            if e.restored {
                let _ = remove_durable(&path);
            } else {
                tracing::error!(journal = %path.display(), "an apply was written in part; the next start completes it from the journal {}", path.display());
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
            tracing::error!(journal = %path.display(), moved_to = %aside.display(), error = %e, "cannot read the apply journal {} : {e}; moving it aside to {}", path.display(), aside.display());
            std::fs::rename(&path, &aside)?;
            return Ok(0);
        }
    };
    if journal.config_dir != config_dir {
        let aside = path.with_extension("json.other-dir");
        tracing::error!(journal = %path.display(), journal_dir = %journal.config_dir.display(), config_dir = %config_dir.display(), "the apply journal {} belongs to another config directory ({}, not {}); moving it aside", path.display(), journal.config_dir.display(), config_dir.display());
        std::fs::rename(&path, &aside)?;
        return Ok(0);
    }
    std::fs::create_dir_all(config_dir)?;
    for e in &journal.changes {
        match &e.content {
            Some(text) => write_atomic(&e.file, text.as_bytes())?,
            None => remove_durable(&e.file)?,
        }
        tracing::info!(file = %e.file.display(), removed = e.content.is_none(), "completing an apply interrupted by a crash: {} {}", if e.content.is_none() { "remove" } else { "write" }, e.file.display());
    }
    remove_durable(&path)?;
    Ok(journal.changes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &Path, new: Option<&str>, old: Option<&str>) -> FileChange {
        FileChange {
            path: path.to_path_buf(),
            new: new.map(|s| s.as_bytes().to_vec()),
            old: old.map(|s| s.as_bytes().to_vec()),
        }
    }

    #[test]
    fn commit_writes_every_file_and_leaves_no_journal() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = tmp.path().join("config");
        std::fs::create_dir(&config).expect("mkdir");
        let state = StateDir::open(&tmp.path().join("state"), &config).expect("state");
        std::fs::write(config.join("gone.json"), "old").expect("write");
        let changes = [
            change(&config.join("a.json"), Some("A"), None),
            change(&config.join("b.json"), Some("B"), None),
            change(&config.join("gone.json"), None, Some("old")),
        ];
        commit(&state, &config, &changes).expect("commit");
        assert_eq!(
            std::fs::read_to_string(config.join("a.json")).expect("a"),
            "A"
        );
        assert_eq!(
            std::fs::read_to_string(config.join("b.json")).expect("b"),
            "B"
        );
        assert!(!config.join("gone.json").exists());
        assert!(!state.journal().exists());
        assert_eq!(recover(&state, &config).expect("recover"), 0);
    }

    #[test]
    fn a_journal_left_by_a_crash_is_finished_at_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = tmp.path().join("config");
        std::fs::create_dir(&config).expect("mkdir");
        let state = StateDir::open(&tmp.path().join("state"), &config).expect("state");
        // The crash came after the commit point, with one of three files written.
        std::fs::write(config.join("a.json"), "A").expect("write");
        std::fs::write(config.join("c.json"), "old c").expect("write");
        let journal = Journal {
            config_dir: config.clone(),
            changes: vec![
                Entry {
                    file: config.join("a.json"),
                    content: Some("A".into()),
                },
                Entry {
                    file: config.join("b.json"),
                    content: Some("B".into()),
                },
                Entry {
                    file: config.join("c.json"),
                    content: None,
                },
            ],
        };
        std::fs::write(state.journal(), serde_json::to_vec(&journal).expect("json"))
            .expect("write journal");
        assert_eq!(recover(&state, &config).expect("recover"), 3);
        assert_eq!(
            std::fs::read_to_string(config.join("b.json")).expect("b"),
            "B"
        );
        assert!(!config.join("c.json").exists());
        assert!(!state.journal().exists());
    }

    #[test]
    fn a_journal_of_another_directory_is_moved_aside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = tmp.path().join("config");
        std::fs::create_dir(&config).expect("mkdir");
        let state = StateDir::open(&tmp.path().join("state"), &config).expect("state");
        let journal = Journal {
            config_dir: tmp.path().join("other"),
            changes: vec![Entry {
                file: config.join("x.json"),
                content: Some("X".into()),
            }],
        };
        std::fs::write(state.journal(), serde_json::to_vec(&journal).expect("json"))
            .expect("write journal");
        assert_eq!(recover(&state, &config).expect("recover"), 0);
        assert!(!config.join("x.json").exists());
        assert!(!state.journal().exists());
    }

    #[test]
    fn writes_go_through_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = tmp.path().join("config");
        let store = tmp.path().join("store");
        std::fs::create_dir(&config).expect("mkdir");
        std::fs::create_dir(&store).expect("mkdir");
        std::fs::write(store.join("vn.json"), "v1").expect("write");
        // A relative link, as `ln -s ../store/vn.json` makes.
        std::os::unix::fs::symlink("../store/vn.json", config.join("vn.json")).expect("link");
        let state = StateDir::open(&tmp.path().join("state"), &config).expect("state");
        commit(
            &state,
            &config,
            &[change(&config.join("vn.json"), Some("v2"), Some("v1"))],
        )
        .expect("commit");
        let meta = std::fs::symlink_metadata(config.join("vn.json")).expect("lstat");
        assert!(meta.file_type().is_symlink());
        assert_eq!(
            std::fs::read_to_string(store.join("vn.json")).expect("read"),
            "v2"
        );
    }
}
