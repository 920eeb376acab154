//! The config path: everything that changes what meshd serves goes through one [`Applier`], one
//! change at a time, and hands the server a compiled config; nothing on the request path waits
//! for it (reading, parsing, validating and compiling run on blocking threads).
//!
//! * **Start** ([`Applier::start`]): an apply interrupted by a crash is finished from its
//!   journal ([`journal`]); then the directory is read. If it is invalid, missing or empty and
//!   meshd has a last-good snapshot ([`snapshot`]), the snapshot is served and the log says so
//!   (`--strict-config` exits 2 instead).
//! * **Reload** ([`Applier::reload`], on a change in the directory ([`watch`]) or SIGHUP): a
//!   valid directory is put in force; an invalid one is logged and counted and the running config
//!   keeps serving; a missing or empty directory while a config is in force is a fault, logged
//!   once per episode and counted, and the running config keeps serving until the directory
//!   comes back.
//! * **Change** ([`Applier::change`], `meshctl apply` and `delete`): planned against the
//!   directory ([`store`]), validated and compiled, put in force, then written to every file at
//!   once under the journal; if the files cannot be written the previous config is put back.

pub mod files;
pub mod journal;
pub mod load;
pub mod metadata;
pub mod nodes;
pub mod offline;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod watch;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use mesh_core::model::{ConfigError, MeshSet, NotInForce, Skipped, SourceFile};
use mesh_core::runtime::{Overrides, RuntimeConfig};

use crate::admin::Admin;
use crate::server::{ApplyError, Server};
use load::{Compiled, DirState, Loaded};
use nodes::Selection;
use state::StateDir;
use store::{FileChange, StoreError};

/// The config in force and where it came from.
pub struct InForce {
    /// Its resources, with their files.
    pub set: MeshSet,
    /// The files (as read, or as last written by an apply).
    pub files: Vec<SourceFile>,
    /// [`load::fingerprint`] of the files.
    pub fingerprint: u64,
    /// When served from the last-good snapshot: when that was written.
    pub from_snapshot: Option<String>,
    /// The nodes this meshd serves, and why.
    pub selection: Selection,
}

impl InForce {
    /// Nothing in force (before the first config).
    pub fn empty() -> InForce {
        InForce {
            set: MeshSet::default(),
            files: Vec::new(),
            fingerprint: load::fingerprint(&[]),
            from_snapshot: None,
            selection: Selection::default(),
        }
    }
}

/// Why the directory does not give the config in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Missing,
    Empty,
    Invalid,
}

#[derive(Default)]
struct Status {
    fault: Option<Fault>,
    skipped: BTreeSet<PathBuf>,
    /// Per resource (file, label): the settings not in force last warned about.
    not_in_force: BTreeMap<(PathBuf, String), Vec<String>>,
    /// The node selection last logged.
    selection: Option<Selection>,
}

/// How meshd reads its config.
pub struct Settings {
    /// The config directory (made absolute).
    pub dir: PathBuf,
    /// meshd's state directory for that config directory.
    pub state: StateDir,
    /// The per-process flags.
    pub overrides: Overrides,
    /// Exit at start on an invalid directory instead of serving the last-good snapshot.
    pub strict: bool,
}

/// Why meshd cannot start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The directory is invalid and there is no snapshot to serve (or `--strict-config`).
    #[error("invalid config")]
    Invalid(Vec<ConfigError>),
    /// `--node` / `MESHD_NODE` names nodes the config does not have.
    #[error("--node {}: no such virtual node or gateway in {dir}; the nodes there: {known}", missing.join(", "))]
    UnknownNodes {
        /// The names not found.
        missing: Vec<String>,
        /// The config directory.
        dir: String,
        /// The nodes and gateways it has.
        known: String,
    },
    /// The config cannot be put in force (e.g. a port in use).
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The directory or the state directory cannot be used.
    #[error("{0}")]
    Io(String),
}

/// Why a change through the control API was refused or failed; nothing changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The plan was refused (invalid, not found, in use, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The directory has errors of its own.
    #[error("the config directory has errors")]
    DirInvalid(Vec<ConfigError>),
    /// The new config cannot be put in force.
    #[error("cannot put the change in force: {0}")]
    Apply(ApplyError),
    /// The files cannot be written (the previous config was put back in force).
    #[error("{0}")]
    Write(StoreError),
}

/// The one place the config in force changes. See the module docs.
pub struct Applier {
    settings: Settings,
    server: Arc<Server>,
    admin: Arc<Admin>,
    status: tokio::sync::Mutex<Status>,
    /// Shared with the admin endpoint (`/config_dump`).
    in_force: Arc<ArcSwap<InForce>>,
}

/// Runs blocking work (file I/O, parsing, compiling) off the proxy's worker threads, on the
/// low-priority config thread ([`worker`]).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    worker::run(f).await
}

/// Puts `config` in force on the config thread: building the listeners' tables and freeing the
/// previous config of a large mesh takes milliseconds that no request should wait for. Returns
/// the config that was in force before.
async fn put_in_force(
    server: &Arc<Server>,
    config: RuntimeConfig,
) -> Result<RuntimeConfig, ApplyError> {
    let server = server.clone();
    let handle = tokio::runtime::Handle::current();
    blocking(move || {
        let previous = server.view.load().config.clone();
        handle.block_on(server.apply(config)).map(|()| previous)
    })
    .await
}

fn log_errors(errors: &[ConfigError], what: &str) {
    for e in errors {
        tracing::error!(file = %e.file.display(), path = %e.path, reason = %e.message, "{what}: {e}");
    }
}

impl Applier {
    /// Finishes an interrupted apply, reads the directory (or the last-good snapshot, see the
    /// module docs) and puts it in force. Returns the applier and a line saying what is served.
    pub async fn start(
        settings: Settings,
        server: Arc<Server>,
        admin: Arc<Admin>,
    ) -> Result<Arc<Applier>, StartError> {
        let dir = settings.dir.clone();
        let state = settings.state.clone();
        let recovered = blocking(move || journal::recover(&state, &dir)).await;
        match recovered {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                files = n,
                "finished an apply that a crash interrupted ({n} file(s))"
            ),
            Err(e) => {
                return Err(StartError::Io(format!(
                    "cannot finish the interrupted apply in {} : {e}",
                    settings.state.journal().display()
                )))
            }
        }
        files::remove_stale_temp_files(&settings.dir);
        files::remove_stale_temp_files(settings.state.root());

        let (dir, overrides) = (settings.dir.clone(), settings.overrides.clone());
        let read = blocking(move || load::read_dir(&dir, &overrides)).await;
        let mut status = Status::default();
        let mut missing = None;
        let (compiled, problem) = match read {
            DirState::Valid(c, skipped) => {
                note_skipped(&mut status, &skipped, &admin);
                (*c, None)
            }
            DirState::Missing(e) => {
                missing = Some(format!(
                    "config directory {} : {e} (and no usable last good config in {})",
                    settings.dir.display(),
                    settings.state.snapshot().display()
                ));
                (
                    empty(&settings.overrides),
                    Some((Fault::Missing, Vec::new())),
                )
            }
            DirState::Empty(skipped) => {
                note_skipped(&mut status, &skipped, &admin);
                (empty(&settings.overrides), Some((Fault::Empty, Vec::new())))
            }
            DirState::Invalid(errors, skipped) => {
                note_skipped(&mut status, &skipped, &admin);
                (empty(&settings.overrides), Some((Fault::Invalid, errors)))
            }
        };
        let mut from_snapshot = None;
        let compiled = match problem {
            None => compiled,
            Some((fault, errors)) => {
                let snap = if settings.strict {
                    None
                } else {
                    let (state, dir) = (settings.state.clone(), settings.dir.clone());
                    blocking(move || snapshot::read(&state, &dir))
                        .await
                        .map_err(|e| {
                            StartError::Io(format!(
                                "cannot read the last-good snapshot {} : {e}",
                                settings.state.snapshot().display()
                            ))
                        })?
                };
                match snap {
                    // An empty snapshot is no better than an empty directory.
                    Some(s) if !s.files.is_empty() => {
                        let overrides = settings.overrides.clone();
                        let files = s.files;
                        let loaded = blocking(move || {
                            load::from_files(files, true)
                                .map(|l| load::compile_loaded(l, &overrides))
                        })
                        .await;
                        match loaded {
                            Ok(c) => {
                                if let Some(why) = &missing {
                                    // Watched from its parent: its return is applied.
                                    std::fs::create_dir_all(&settings.dir)
                                        .map_err(|_| StartError::Io(why.clone()))?;
                                }
                                log_errors(&errors, "invalid config directory at start");
                                tracing::warn!(
                                    config_dir = %settings.dir.display(),
                                    snapshot = %settings.state.snapshot().display(),
                                    written_at = %s.written_at,
                                    resources = c.loaded.set.len(),
                                    problem = fault_words(fault),
                                    "the config directory cannot be served ({}); serving the last good config instead, saved at {}",
                                    fault_words(fault), s.written_at
                                );
                                status.fault = Some(fault);
                                from_snapshot = Some(s.written_at);
                                c
                            }
                            Err(snap_errors) => {
                                log_errors(&snap_errors, "the last-good snapshot is invalid too");
                                if fault == Fault::Invalid {
                                    return Err(StartError::Invalid(errors));
                                }
                                if let Some(why) = missing {
                                    return Err(StartError::Io(why));
                                }
                                compiled
                            }
                        }
                    }
                    _ if fault == Fault::Invalid => return Err(StartError::Invalid(errors)),
                    // Missing or unreadable, and no last good config: nothing to serve.
                    _ if missing.is_some() => {
                        return Err(StartError::Io(missing.unwrap_or_default()))
                    }
                    // A new install: nothing to serve yet.
                    _ => compiled,
                }
            }
        };
        // A config without any node yet (a new VM whose files are still arriving) is not an
        // error: the names are logged and meshd waits for them.
        if !compiled.selection.missing.is_empty() && !compiled.selection.nodes.is_empty() {
            return Err(StartError::UnknownNodes {
                missing: compiled.selection.missing.clone(),
                dir: settings.dir.display().to_string(),
                known: compiled.selection.known(),
            });
        }
        put_in_force(&server, compiled.runtime).await?;
        nodes::log_if_changed(&mut status.selection, &compiled.selection);
        note_not_in_force(&mut status, &compiled.not_in_force, &admin);
        admin
            .stats
            .config_stale
            .set(u64::from(from_snapshot.is_some()));
        let in_force = InForce {
            fingerprint: compiled.loaded.fingerprint,
            files: compiled.loaded.files,
            set: compiled.loaded.set,
            from_snapshot,
            selection: compiled.selection,
        };
        let shared = admin.in_force.clone();
        shared.store(Arc::new(in_force));
        let applier = Arc::new(Applier {
            settings,
            server,
            admin,
            status: tokio::sync::Mutex::new(status),
            in_force: shared,
        });
        if applier.in_force().from_snapshot.is_none() {
            applier.save_snapshot().await;
        }
        Ok(applier)
    }

    /// The config directory.
    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    /// The config in force now.
    pub fn in_force(&self) -> Arc<InForce> {
        self.in_force.load_full()
    }

    /// The server the config goes to.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// The admin endpoint's state (process-wide stats).
    pub fn admin(&self) -> &Arc<Admin> {
        &self.admin
    }

    /// Re-reads the directory and puts it in force if it is valid and differs from what is in
    /// force (see the module docs for faults). Logs and counts the outcome; returns whether the
    /// directory's config is in force afterwards.
    pub async fn reload(&self, trigger: &'static str) -> bool {
        crate::notify::reloading();
        let in_force = self.reload_dir(trigger).await;
        crate::notify::ready(&crate::notify::status_line(self, Some((trigger, in_force))));
        in_force
    }

    async fn reload_dir(&self, trigger: &'static str) -> bool {
        let mut status = self.status.lock().await;
        let (dir, overrides) = (self.settings.dir.clone(), self.settings.overrides.clone());
        let started = std::time::Instant::now();
        let read = blocking(move || load::read_dir(&dir, &overrides)).await;
        let read_ms = started.elapsed().as_millis() as u64;
        let in_force = self.in_force();
        let stats = &self.admin.stats;
        match read {
            DirState::Missing(e) => {
                self.dir_fault(&mut status, Fault::Missing, &e.to_string(), &in_force);
                false
            }
            DirState::Empty(skipped) => {
                note_skipped(&mut status, &skipped, &self.admin);
                self.dir_fault(&mut status, Fault::Empty, "", &in_force);
                false
            }
            DirState::Invalid(errors, skipped) => {
                note_skipped(&mut status, &skipped, &self.admin);
                log_errors(&errors, "invalid config; keeping the running config");
                stats.config_reload_failure.inc();
                stats.config_stale.set(1);
                status.fault = Some(Fault::Invalid);
                false
            }
            DirState::Valid(compiled, skipped) => {
                note_skipped(&mut status, &skipped, &self.admin);
                let compiled = *compiled;
                if compiled.loaded.fingerprint == in_force.fingerprint
                    && compiled.selection == in_force.selection
                    && in_force.from_snapshot.is_none()
                {
                    tracing::debug!(trigger, "config directory unchanged");
                    self.clear_fault(&mut status);
                    return true;
                }
                let resources = compiled.loaded.set.len();
                let applying = std::time::Instant::now();
                match put_in_force(&self.server, compiled.runtime).await {
                    Ok(_previous) => {
                        let apply_ms = applying.elapsed().as_millis() as u64;
                        self.clear_fault(&mut status);
                        nodes::log_if_changed(&mut status.selection, &compiled.selection);
                        note_not_in_force(&mut status, &compiled.not_in_force, &self.admin);
                        self.publish(compiled.loaded, compiled.selection).await;
                        stats.config_reload_success.inc();
                        tracing::info!(resources, trigger, read_ms, apply_ms, "config applied ({trigger}): {resources} resource(s), read in {read_ms} ms, applied in {apply_ms} ms");
                        true
                    }
                    Err(e) => {
                        tracing::error!(error = %e, trigger, "cannot apply config ({trigger}) : {e}; keeping the running config");
                        stats.config_reload_failure.inc();
                        stats.config_stale.set(1);
                        false
                    }
                }
            }
        }
    }

    /// Plans a change with `plan` (given the directory and its current resources), validates
    /// and compiles the result, puts it in force and writes the files under the journal. With
    /// `dry_run`, or when the plan changes no file, only the plan's result is returned.
    pub async fn change<T: Send + 'static>(
        &self,
        dry_run: bool,
        plan: impl FnOnce(&Path, &MeshSet) -> Result<(T, Vec<FileChange>), StoreError> + Send + 'static,
    ) -> Result<T, ChangeError> {
        let mut status = self.status.lock().await;
        let (dir, overrides) = (self.settings.dir.clone(), self.settings.overrides.clone());
        type Prepared<T> = (T, Option<(Vec<FileChange>, Compiled)>);
        let prepared: Result<Prepared<T>, ChangeError> = blocking(move || {
            let current = load::read_unvalidated(&dir).map_err(ChangeError::DirInvalid)?;
            let (out, changes) = plan(&dir, &current.set)?;
            if dry_run || changes.is_empty() {
                return Ok((out, None));
            }
            let files =
                load::apply_changes(current.files, &changes).map_err(StoreError::BadRequest)?;
            let loaded = load::from_files(files, true).map_err(StoreError::Invalid)?;
            Ok((
                out,
                Some((changes, load::compile_loaded(loaded, &overrides))),
            ))
        })
        .await;
        let (out, planned) = prepared?;
        let Some((changes, compiled)) = planned else {
            return Ok(out);
        };
        let previous = put_in_force(&self.server, compiled.runtime)
            .await
            .map_err(ChangeError::Apply)?;
        let (state, dir) = (self.settings.state.clone(), self.settings.dir.clone());
        let written = blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| StoreError::Io(format!("cannot create {} : {e}", dir.display())))?;
            journal::commit(&state, &dir, &changes)
        })
        .await;
        if let Err(e) = written {
            if let Err(again) = put_in_force(&self.server, previous).await {
                tracing::error!(error = %again, "cannot put the previous config back in force : {again}");
            }
            self.admin.stats.config_reload_failure.inc();
            return Err(ChangeError::Write(e));
        }
        nodes::log_if_changed(&mut status.selection, &compiled.selection);
        note_not_in_force(&mut status, &compiled.not_in_force, &self.admin);
        self.publish(compiled.loaded, compiled.selection).await;
        self.admin.stats.config_reload_success.inc();
        self.clear_fault(&mut status);
        Ok(out)
    }

    /// Makes `loaded` the config in force (the server already runs it) and saves the snapshot.
    async fn publish(&self, loaded: Loaded, selection: Selection) {
        let old = self.in_force.swap(Arc::new(InForce {
            fingerprint: loaded.fingerprint,
            files: loaded.files,
            set: loaded.set,
            from_snapshot: None,
            selection,
        }));
        // A large config takes a while to free: not on a proxy worker.
        worker::spawn(move || drop(old));
        self.save_snapshot().await;
    }

    async fn save_snapshot(&self) {
        let in_force = self.in_force();
        let (state, dir) = (self.settings.state.clone(), self.settings.dir.clone());
        let saved = blocking(move || snapshot::write(&state, &dir, &in_force.files)).await;
        if let Err(e) = saved {
            tracing::warn!(snapshot = %self.settings.state.snapshot().display(), error = %e, "cannot save the last-good snapshot {} : {e}", self.settings.state.snapshot().display());
        }
    }

    /// The directory is missing or empty: a fault while a config is in force (the config keeps
    /// serving; logged and counted once per episode). With nothing in force there is nothing to
    /// protect.
    fn dir_fault(&self, status: &mut Status, fault: Fault, why: &str, in_force: &InForce) {
        if in_force.set.is_empty() {
            return;
        }
        self.admin.stats.config_stale.set(1);
        if status.fault == Some(fault) {
            tracing::debug!(
                problem = fault_words(fault),
                "config directory still unusable"
            );
            return;
        }
        // Missing, then recreated empty, then filled: one episode, counted once.
        if !matches!(status.fault, Some(Fault::Missing | Fault::Empty)) {
            self.admin.stats.config_dir_fault.inc();
        }
        status.fault = Some(fault);
        tracing::error!(
            config_dir = %self.settings.dir.display(),
            problem = fault_words(fault),
            error = why,
            resources = in_force.set.len(),
            "the config directory is {}; keeping the running config and watching for the directory to come back (to stop serving on purpose, delete the resources with `meshctl delete` or stop meshd)",
            fault_words(fault)
        );
    }

    fn clear_fault(&self, status: &mut Status) {
        if let Some(f) = status.fault.take() {
            tracing::info!(config_dir = %self.settings.dir.display(), was = fault_words(f), "the config directory is usable again and in force: {} (was {})", self.settings.dir.display(), fault_words(f));
        }
        self.admin.stats.config_stale.set(0);
    }
}

fn fault_words(f: Fault) -> &'static str {
    match f {
        Fault::Missing => "missing",
        Fault::Empty => "empty (no resource files)",
        Fault::Invalid => "invalid",
    }
}

/// An empty config (nothing to serve).
fn empty(overrides: &Overrides) -> Compiled {
    let loaded = load::from_files(Vec::new(), true).unwrap_or_else(|_| Loaded {
        files: Vec::new(),
        set: MeshSet::default(),
        fingerprint: load::fingerprint(&[]),
    });
    load::compile_loaded(loaded, overrides)
}

/// Logs and counts entries skipped that were not skipped last time.
fn note_skipped(status: &mut Status, skipped: &[Skipped], admin: &Admin) {
    let now: BTreeSet<PathBuf> = skipped.iter().map(|s| s.path.clone()).collect();
    for s in skipped {
        if !status.skipped.contains(&s.path) {
            admin.stats.config_files_skipped.inc();
            tracing::warn!(file = %s.path.display(), reason = %s.reason, "skipping an entry of the config directory: {}", s.reason);
        }
    }
    status.skipped = now;
}

/// Names the settings accepted but not in force: one warning per resource whose list changed
/// since the last config put in force (so a reload of 20 000 unchanged routes says nothing new),
/// and the gauge `server.config_not_in_force` counts them all.
fn note_not_in_force(status: &mut Status, items: &[NotInForce], admin: &Admin) {
    admin.stats.config_not_in_force.set(items.len() as u64);
    let mut now: BTreeMap<(PathBuf, String), Vec<String>> = BTreeMap::new();
    for i in items {
        now.entry((i.file.clone(), i.resource.clone()))
            .or_default()
            .push(format!("{}: {}", i.path, i.reason));
    }
    for ((file, resource), settings) in &now {
        if status.not_in_force.get(&(file.clone(), resource.clone())) != Some(settings) {
            tracing::warn!(
                file = %file.display(),
                resource = %resource,
                settings = settings.len(),
                "accepted but not in force: {}: {resource}: {}",
                file.display(),
                settings.join("; ")
            );
        }
    }
    status.not_in_force = now;
}
