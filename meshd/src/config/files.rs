//! Durable file writes for the config directory.
//!
//! * [`write_atomic`] replaces one file: temp file next to it, fsync, rename, fsync of the
//!   directory, so a crash leaves it old or new.
//! * [`write_changes`] writes a whole set of changes: every new content goes to a synced temp
//!   file first, then the renames, then one fsync per directory; if anything fails the files
//!   already replaced are put back. Atomicity *across* files comes from the journal
//!   ([`super::journal`]) around it.
//! * A symlinked file is never replaced by a copy: the write goes to the file the link resolves
//!   to, so the link stays a link and keeps pointing where the user put it.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::store::{FileChange, StoreError};

/// Suffix of the temp files written next to their target (hidden, so never read as config).
const TMP_SUFFIX: &str = ".meshd-tmp";

/// The file a write to `path` replaces: `path` itself, or for a symlink the file it resolves to
/// (relative links resolve against the link's directory; chains are followed).
pub fn write_target(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).unwrap_or_else(|_| {
            // A dangling link: write where it points, so the link comes alive.
            match std::fs::read_link(path) {
                Ok(t) if t.is_absolute() => t,
                Ok(t) => parent_dir(path).join(t),
                Err(_) => path.to_path_buf(),
            }
        }),
        _ => path.to_path_buf(),
    }
}

/// Writes `data` to a new synced temp file next to `target`; returns its path.
fn write_temp(target: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    let dir = parent_dir(target);
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}{TMP_SUFFIX}", std::process::id()));
    let mode = std::fs::metadata(target)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces `path` (or the file a symlink at `path` resolves to) with `data` durably. Keeps the
/// permissions of an existing file (0644 for a new one).
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let target = write_target(path);
    let tmp = write_temp(&target, data)?;
    if let Err(e) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent_dir(&target))
}

/// Removes `path` durably (the link itself for a symlink; what it points to is left alone).
/// A missing file is fine.
pub fn remove_durable(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent_dir(path))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes temp files left by a meshd killed in the middle of a write.
pub fn remove_stale_temp_files(dir: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in read.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
            tracing::info!(file = %entry.path().display(), "removing a temp file left by an interrupted write: {}", entry.path().display());
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes every change: all new contents to synced temp files first, then the renames and
/// removals, then one fsync per directory touched. On failure the files already replaced get
/// their old content back; the error says whether that restore was complete.
pub fn write_changes(changes: &[FileChange]) -> Result<(), WriteError> {
    // 1. Temp files: nothing visible changes yet.
    let mut temps: Vec<Option<(PathBuf, PathBuf)>> = Vec::with_capacity(changes.len());
    for c in changes {
        match &c.new {
            Some(bytes) => {
                let target = write_target(&c.path);
                match write_temp(&target, bytes) {
                    Ok(tmp) => temps.push(Some((tmp, target))),
                    Err(e) => {
                        for (tmp, _) in temps.iter().flatten() {
                            let _ = std::fs::remove_file(tmp);
                        }
                        return Err(WriteError {
                            message: format!("cannot write {} : {e}", c.path.display()),
                            restored: true,
                        });
                    }
                }
            }
            None => temps.push(None),
        }
    }
    // 2. Renames and removals.
    let mut dirs = BTreeSet::new();
    for (i, (c, temp)) in changes.iter().zip(&temps).enumerate() {
        let result = match temp {
            Some((tmp, target)) => {
                dirs.insert(parent_dir(target).to_path_buf());
                std::fs::rename(tmp, target)
            }
            None => {
                dirs.insert(parent_dir(&c.path).to_path_buf());
                match std::fs::remove_file(&c.path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            }
        };
        if let Err(e) = result {
            for (tmp, _) in temps[i..].iter().flatten() {
                let _ = std::fs::remove_file(tmp);
            }
            let restored = rollback(&changes[..i]);
            return Err(WriteError {
                message: format!("cannot write {} : {e}", c.path.display()),
                restored,
            });
        }
    }
    // 3. Make the renames durable.
    for dir in dirs {
        if let Err(e) = sync_dir(&dir) {
            return Err(WriteError {
                message: format!("cannot sync {} : {e}", dir.display()),
                // Every file holds its new content; only durability is in doubt.
                restored: false,
            });
        }
    }
    Ok(())
}

/// Why [`write_changes`] failed, and whether the files hold their old content again.
#[derive(Debug)]
pub struct WriteError {
    /// What failed.
    pub message: String,
    /// `true` when every file holds its old content again.
    pub restored: bool,
}

impl From<WriteError> for StoreError {
    fn from(e: WriteError) -> Self {
        StoreError::Io(e.message)
    }
}

/// Puts back the old content of every changed file (best effort, logged). Returns whether
/// every file was restored.
pub fn rollback(changes: &[FileChange]) -> bool {
    let mut all = true;
    for c in changes.iter().rev() {
        let result = match &c.old {
            Some(bytes) => write_atomic(&c.path, bytes),
            None => remove_durable(&c.path),
        };
        if let Err(e) = result {
            all = false;
            tracing::error!(file = %c.path.display(), error = %e, "cannot restore {} after a failed change : {e}", c.path.display());
        }
    }
    all
}
