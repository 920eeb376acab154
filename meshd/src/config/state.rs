//! meshd's own state directory (`--state-dir`, default `/var/lib/meshd`): the apply journal and
//! the last-good snapshot of each config directory, never inside the config directory itself
//! (which may be shared by several machines).

use std::path::{Path, PathBuf};

/// Where meshd keeps its state for one config directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    key: String,
}

impl StateDir {
    /// Creates (if needed) and checks `root`; `config_dir` (absolute) names the files kept for
    /// it. Fails when the directory cannot be created or written.
    pub fn open(root: &Path, config_dir: &Path) -> std::io::Result<StateDir> {
        std::fs::create_dir_all(root)?;
        // Writable? (A read-only state directory would only show at the first apply.)
        let probe = root.join(format!(".probe.{}", std::process::id()));
        std::fs::write(&probe, b"")?;
        let _ = std::fs::remove_file(&probe);
        Ok(StateDir {
            root: root.to_path_buf(),
            key: escape(config_dir),
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The apply journal: present only while an apply is being written.
    pub fn journal(&self) -> PathBuf {
        self.root.join(format!("{}.journal.json", self.key))
    }

    /// The last config put in force.
    pub fn snapshot(&self) -> PathBuf {
        self.root.join(format!("{}.last-good.json", self.key))
    }
}

/// A file-name-safe key for a directory path: `/etc/meshd` → `etc-meshd` (as systemd-escape
/// does for paths, with `_` for other characters).
pub fn escape(dir: &Path) -> String {
    let text = dir.to_string_lossy();
    let trimmed = text.trim_matches('/');
    if trimmed.is_empty() {
        return "-".to_string();
    }
    trimmed
        .chars()
        .map(|c| match c {
            '/' => '-',
            c if c.is_ascii_alphanumeric() || c == '.' || c == '_' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_names_paths() {
        assert_eq!(escape(Path::new("/etc/meshd")), "etc-meshd");
        assert_eq!(escape(Path::new("/")), "-");
        assert_eq!(escape(Path::new("/srv/my mesh/")), "srv-my_mesh");
    }
}
