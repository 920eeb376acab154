//! Durable file writes for the config directory: each file is replaced atomically (temp file,
//! fsync, rename, fsync of the directory), so a crash at any moment leaves it old or new.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::store::{FileChange, StoreError};

/// Suffix of the temp files written next to their target (hidden, so never read as config).
const TMP_SUFFIX: &str = ".meshd-tmp";

/// Replaces `path` with `data` durably: temp file in the same directory, fsync, rename, fsync of
/// the directory. Keeps the permissions of an existing file (0644 for a new one).
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}{TMP_SUFFIX}", std::process::id()));
    let mode = std::fs::metadata(path)
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
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// Removes `path` durably (fsync of the directory). A missing file is fine.
pub fn remove_durable(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    File::open(parent_dir(path))?.sync_all()
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
            tracing::info!(file = %entry.path().display(), "removing a temp file left by an interrupted write");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes every change; on the first failure, restores the ones already written.
pub fn write_changes(changes: &[FileChange]) -> Result<(), StoreError> {
    for (i, c) in changes.iter().enumerate() {
        let result = match &c.new {
            Some(bytes) => write_atomic(&c.path, bytes),
            None => remove_durable(&c.path),
        };
        if let Err(e) = result {
            rollback(&changes[..i]);
            return Err(StoreError::Io(format!(
                "cannot write {} : {e}",
                c.path.display()
            )));
        }
    }
    Ok(())
}

/// Puts back the old content of every changed file (best effort, logged).
pub fn rollback(changes: &[FileChange]) {
    for c in changes.iter().rev() {
        let result = match &c.old {
            Some(bytes) => write_atomic(&c.path, bytes),
            None => remove_durable(&c.path),
        };
        if let Err(e) = result {
            tracing::error!(file = %c.path.display(), error = %e, "cannot restore file after a failed change");
        }
    }
}

/// Writes the changes of files that still hold exactly what the plan was made from; a file
/// edited in between is skipped (its own change event brings another pass). Returns how many
/// were written.
pub fn write_unless_changed(changes: &[FileChange]) -> Result<usize, StoreError> {
    let current: Vec<FileChange> = changes
        .iter()
        .filter(|c| std::fs::read(&c.path).ok() == c.old)
        .cloned()
        .collect();
    write_changes(&current)?;
    Ok(current.len())
}
