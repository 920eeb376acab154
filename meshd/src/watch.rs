//! Watches the config directory and applies each change atomically: the whole directory is
//! read, validated and compiled first; anything invalid is logged (file, JSON path, reason),
//! counted in `server.config_reload_failure`, and the running config keeps serving.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::{Daemon, ReloadError};

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

/// Reads, validates, compiles and applies the directory once; logs and counts the outcome.
pub async fn reload(daemon: &Daemon) -> bool {
    // Hand-written files get their metadata first (a no-op when every file has it).
    crate::control::stamp(daemon, false).await;
    let _lock = daemon.config_lock.lock().await;
    match daemon.reload_locked().await {
        Ok(set) => {
            daemon.admin.stats.config_reload_success.inc();
            tracing::info!(resources = set.len(), "config applied");
            true
        }
        Err(ReloadError::Invalid(errors)) => {
            for e in &errors {
                tracing::error!(file = %e.file.display(), path = %e.path, reason = %e.message, "invalid config; keeping the running config: {e}");
            }
            daemon.admin.stats.config_reload_failure.inc();
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot apply config; keeping the running config");
            daemon.admin.stats.config_reload_failure.inc();
            false
        }
    }
}

/// Starts watching `dir`; changes are applied `debounce` after the last event of a burst.
pub fn spawn(daemon: Arc<Daemon>, debounce: Duration) -> notify::Result<Watch> {
    let dir = daemon.config_dir.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let relevant = ev.paths.iter().any(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(mesh_core::model::is_resource_file_name)
            });
            if relevant && !ev.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until the directory has been quiet for `debounce`.
            loop {
                match tokio::time::timeout(debounce, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            reload(&daemon).await;
        }
    });
    Ok(Watch { _watcher: watcher })
}
