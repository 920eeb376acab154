//! meshd: the mesh proxy daemon.
//!
//! - [`proxy`]: the request path, where every request is admitted or refused;
//! - [`server`]: listeners, clusters and how a new config is applied;
//! - [`admin`] and [`render`]: the admin endpoint and its formats;
//! - [`watch`]: the config directory watcher;
//! - [`control`]: the control API on the Unix socket (meshctl).

pub mod accept;
pub mod admin;
pub mod body;
pub mod cli;
pub mod control;
pub mod proxy;
pub mod render;
pub mod server;
pub mod upstream;
pub mod watch;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use mesh_core::model::{is_resource_file_name, ConfigError, MeshSet};
use mesh_core::runtime::{compile, Overrides};

use crate::admin::Admin;
use crate::cli::Args;
use crate::render::ServerStats;
use crate::server::Server;

fn init_tracing(filter: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| tracing_journald::layer().ok())
        .flatten();
    match journald {
        Some(j) => tracing_subscriber::registry().with(filter).with(j).init(),
        None => tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

/// Every resource of the directory with its file, each checked on its own but not against the
/// others (so that an apply can repair a broken reference). A directory without resource files
/// is an empty mesh (meshd then serves nothing until resources arrive).
pub fn load_unvalidated(dir: &Path) -> Result<MeshSet, Vec<ConfigError>> {
    let has_files = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_str().is_some_and(is_resource_file_name))
        })
        .unwrap_or(false);
    if has_files {
        MeshSet::load_dir(dir)
    } else {
        MeshSet::from_resources(Vec::new())
    }
}

/// Reads and validates the config directory: [`load_unvalidated`], then whole-mesh validation.
pub fn load(dir: &Path) -> Result<MeshSet, Vec<ConfigError>> {
    let set = load_unvalidated(dir)?;
    let errors = set.validate();
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

/// The per-process choices of the flags.
pub fn overrides(args: &Args) -> Overrides {
    Overrides {
        nodes: args.nodes.clone(),
        listen: args
            .listen
            .iter()
            .map(|n| (n.node.clone(), n.addr))
            .collect(),
        app: args.app.iter().map(|n| (n.node.clone(), n.addr)).collect(),
        egress: args
            .egress
            .iter()
            .map(|n| (n.node.clone(), n.addr))
            .collect(),
    }
}

/// `/config_dump`: the resources in force, in describe form, and where they came from.
pub fn config_dump(set: &MeshSet) -> serde_json::Value {
    let resources: Vec<serde_json::Value> = set
        .entries()
        .map(|(file, r)| serde_json::json!({"file": file.display().to_string(), "resource": r.to_describe_json()}))
        .collect();
    serde_json::json!({ "resources": resources })
}

/// Why the config directory could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Some resource is invalid (each error names file, JSON path and reason).
    #[error("invalid config: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ConfigError>),
    /// The config is valid but could not be put in force (e.g. a port in use).
    #[error(transparent)]
    Apply(#[from] server::ApplyError),
}

/// The running daemon, as the watcher and the control API use it.
pub struct Daemon {
    /// The config directory (the source of truth).
    pub config_dir: std::path::PathBuf,
    /// The per-process flags.
    pub overrides: Overrides,
    /// Listeners and clusters.
    pub server: Arc<Server>,
    /// The admin endpoint's state (stats, config dump).
    pub admin: Arc<Admin>,
    /// Held while the config directory is written or reloaded, so changes apply one at a time.
    pub config_lock: tokio::sync::Mutex<()>,
}

impl Daemon {
    /// Reads, validates, compiles and applies the config directory. On error the running
    /// config is unchanged. Callers that write the directory hold `config_lock` around both.
    pub async fn reload_locked(&self) -> Result<MeshSet, ReloadError> {
        let set = load(&self.config_dir).map_err(ReloadError::Invalid)?;
        self.server.apply(compile(&set, &self.overrides)).await?;
        self.admin.config_dump.store(Arc::new(config_dump(&set)));
        Ok(set)
    }
}

fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let sent = if let Some(abstract_name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Runs the daemon until SIGTERM or SIGINT. Returns the process exit code.
pub fn run(args: Args) -> ExitCode {
    init_tracing(&args.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshd: cannot start the runtime : {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&args.config_dir) {
        eprintln!(
            "meshd: config directory {} : {e}",
            args.config_dir.display()
        );
        return ExitCode::from(1);
    }
    let set = match load(&args.config_dir) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("meshd: invalid config : {e}");
            }
            return ExitCode::from(2);
        }
    };
    let overrides = overrides(&args);
    let server = Server::new(args.dns_refresh);
    if let Err(e) = server.apply(compile(&set, &overrides)).await {
        eprintln!("meshd: {e}");
        return ExitCode::from(1);
    }
    let admin_socket = match tokio::net::TcpListener::bind(args.admin).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("meshd: cannot listen on admin address {} : {e}", args.admin);
            return ExitCode::from(1);
        }
    };
    let admin_addr = admin_socket.local_addr().unwrap_or(args.admin);
    let stats = Arc::new(ServerStats::default());
    let admin = Arc::new(Admin {
        server: server.clone(),
        stats: stats.clone(),
        started: Instant::now(),
        config_dump: arc_swap::ArcSwap::from_pointee(config_dump(&set)),
    });
    tokio::spawn(admin.clone().serve(admin_socket));
    tracing::info!(admin = %admin_addr, config_dir = %args.config_dir.display(), resources = set.len(), "meshd ready");

    let daemon = Arc::new(Daemon {
        config_dir: args.config_dir.clone(),
        overrides,
        server: server.clone(),
        admin: admin.clone(),
        config_lock: tokio::sync::Mutex::new(()),
    });
    if let Err(e) = control::start(daemon.clone(), &args).await {
        eprintln!("meshd: control socket {} : {e}", args.socket.display());
        return ExitCode::from(1);
    }
    let watcher = watch::spawn(daemon.clone(), args.debounce);
    let _watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            eprintln!("meshd: cannot watch {} : {e}", args.config_dir.display());
            return ExitCode::from(1);
        }
    };

    if let Some(p) = &args.admin_address_path {
        let tmp = p.with_extension("tmp");
        let written =
            std::fs::write(&tmp, format!("{admin_addr}\n")).and_then(|()| std::fs::rename(&tmp, p));
        if let Err(e) = written {
            eprintln!("meshd: cannot write {} : {e}", p.display());
            return ExitCode::from(1);
        }
    }
    notify_systemd("READY=1");

    wait_for_signal().await;
    notify_systemd("STOPPING=1");
    tracing::info!("meshd stopping");
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
