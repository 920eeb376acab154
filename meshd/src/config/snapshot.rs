//! The last-good snapshot: the files of the last config put in force, kept in meshd's state
//! directory. At start, when the config directory is invalid, missing or empty, meshd serves the
//! snapshot instead of exiting (unless `--strict-config`), and says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mesh_core::model::SourceFile;
use serde::{Deserialize, Serialize};

use super::files::write_atomic;
use super::state::StateDir;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot {
    config_dir: PathBuf,
    written_at: String,
    files: Vec<File>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    path: PathBuf,
    text: String,
    modified_ms: Option<u64>,
}

/// A snapshot as read back.
pub struct Read {
    /// When it was written (RFC 3339).
    pub written_at: String,
    /// Its files, with the paths they had in the config directory.
    pub files: Vec<SourceFile>,
}

/// Saves `files` as the last good config of `config_dir` (atomically).
pub fn write(state: &StateDir, config_dir: &Path, files: &[SourceFile]) -> std::io::Result<()> {
    let snapshot = Snapshot {
        config_dir: config_dir.to_path_buf(),
        written_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        files: files
            .iter()
            .map(|f| File {
                path: f.path.clone(),
                text: f.text.clone(),
                modified_ms: f
                    .modified
                    .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64),
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
    write_atomic(&state.snapshot(), &bytes)
}

/// Reads the snapshot of `config_dir`, if meshd wrote one.
pub fn read(state: &StateDir, config_dir: &Path) -> std::io::Result<Option<Read>> {
    let bytes = match std::fs::read(state.snapshot()) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
    if snapshot.config_dir != config_dir {
        return Ok(None);
    }
    Ok(Some(Read {
        written_at: snapshot.written_at,
        files: snapshot
            .files
            .into_iter()
            .map(|f| SourceFile {
                path: f.path,
                text: f.text,
                modified: f
                    .modified_ms
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                link_target: None,
            })
            .collect(),
    }))
}
