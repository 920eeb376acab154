//! Watches the config directory and hands every change to [`Applier::reload`], debounced.
//!
//! Watched (inotify, through notify):
//! * the directory itself, re-armed whenever it is replaced (removed and created again, renamed
//!   over, or a symlink to it switched: its inode changes);
//! * its parent, for the directory's own name, so a removed directory's return is seen;
//! * the folders of the files that symlinked resource files resolve to, so that editing a link's
//!   target applies like editing the file.
//!
//! While the directory (or its parent) is missing, it is also checked once a second, so a
//! directory recreated with its parent, which no watch can see, is still picked up.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::Applier;

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The paths whose events matter, shared with notify's callback thread.
#[derive(Default)]
struct Interest {
    dir: PathBuf,
    /// Files that symlinked resource files resolve to.
    targets: BTreeSet<PathBuf>,
}

impl Interest {
    fn matters(&self, path: &Path) -> bool {
        if path == self.dir || self.targets.contains(path) {
            return true;
        }
        path.parent() == Some(self.dir.as_path())
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(mesh_core::model::is_resource_file_name)
    }
}

/// What is watched now: path → the (device, inode) it had when the watch was added.
struct Armed {
    watcher: notify::RecommendedWatcher,
    watched: BTreeMap<PathBuf, (u64, u64)>,
}

impl Armed {
    /// Watches `path` unless it is already watched with the same inode; returns whether it is
    /// watched afterwards.
    fn ensure(&mut self, path: &Path) -> bool {
        let Ok(meta) = std::fs::metadata(path) else {
            if self.watched.remove(path).is_some() {
                let _ = self.watcher.unwatch(path);
            }
            return false;
        };
        let id = (meta.dev(), meta.ino());
        if self.watched.get(path) == Some(&id) {
            return true;
        }
        let _ = self.watcher.unwatch(path);
        match self.watcher.watch(path, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(path.to_path_buf(), id);
                true
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot watch");
                self.watched.remove(path);
                false
            }
        }
    }

    /// Stops watching every path not in `keep`.
    fn retain(&mut self, keep: &BTreeSet<PathBuf>) {
        let gone: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|p| !keep.contains(*p))
            .cloned()
            .collect();
        for p in gone {
            let _ = self.watcher.unwatch(&p);
            self.watched.remove(&p);
        }
    }
}

/// Starts watching; changes are applied `debounce` after the last event of a burst.
pub fn spawn(applier: Arc<Applier>, debounce: Duration) -> notify::Result<Watch> {
    let dir = applier.dir().to_path_buf();
    let interest = Arc::new(Mutex::new(Interest {
        dir: dir.clone(),
        targets: BTreeSet::new(),
    }));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = interest.clone();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if ev.kind.is_access() {
            return;
        }
        let interest = seen.lock().unwrap_or_else(|p| p.into_inner());
        if ev.paths.iter().any(|p| interest.matters(p)) {
            let _ = tx.send(());
        }
    })?;
    let mut armed = Armed {
        watcher,
        watched: BTreeMap::new(),
    };
    let mut complete = arm(&mut armed, &applier, &interest);
    let task = tokio::spawn(async move {
        let mut poll = tokio::time::interval(Duration::from_secs(1));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                got = rx.recv() => {
                    if got.is_none() {
                        return;
                    }
                    // Debounce: wait until the directory has been quiet for `debounce`.
                    loop {
                        match tokio::time::timeout(debounce, rx.recv()).await {
                            Ok(Some(())) => continue,
                            Ok(None) => return,
                            Err(_) => break,
                        }
                    }
                }
                _ = poll.tick(), if !complete => {
                    // Only while the directory or its parent is missing: has it come back?
                    if !dir.is_dir() {
                        continue;
                    }
                }
            }
            arm(&mut armed, &applier, &interest);
            applier.reload("config directory changed").await;
            // The reload may have brought new symlink targets to follow.
            complete = arm(&mut armed, &applier, &interest);
        }
    });
    Ok(Watch { task })
}

/// (Re-)arms every watch (see the module docs); returns whether the directory and its parent
/// are both watched.
fn arm(armed: &mut Armed, applier: &Applier, interest: &Mutex<Interest>) -> bool {
    let dir = applier.dir();
    let targets: BTreeSet<PathBuf> = applier
        .in_force()
        .files
        .iter()
        .filter_map(|f| f.link_target.clone())
        .collect();
    let mut keep = BTreeSet::new();
    let mut complete = true;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        complete &= armed.ensure(parent);
        keep.insert(parent.to_path_buf());
    }
    complete &= armed.ensure(dir);
    keep.insert(dir.to_path_buf());
    for folder in targets.iter().filter_map(|t| t.parent()) {
        if folder != dir && armed.ensure(folder) {
            keep.insert(folder.to_path_buf());
        }
    }
    armed.retain(&keep);
    interest.lock().unwrap_or_else(|p| p.into_inner()).targets = targets;
    complete
}
