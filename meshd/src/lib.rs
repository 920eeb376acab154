//! meshd: the mesh proxy daemon.
//!
//! The request path: [`server`] (listeners, clusters, applying a compiled config), [`proxy`]
//! (where every request is admitted or refused, and why), [`body`], [`upstream`].
//! The config path: [`config`] (read, watch, apply, journal, snapshot) hands the server a
//! compiled config; [`control`] is the control API on the Unix socket (meshctl) on top of it.
//! The views: [`admin`] and [`render`].

pub mod accept;
pub mod admin;
pub mod body;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod downstream;
pub mod health;
pub mod notify;
pub mod proxy;
pub mod render;
pub mod resilience;
pub mod server;
pub mod upstream;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use mesh_core::accesslog::Format;
use mesh_core::runtime::{AccessLog, Overrides};

use crate::admin::Admin;
use crate::cli::Args;
use crate::config::state::StateDir;
use crate::config::{Applier, Settings, StartError};
use crate::render::ServerStats;
use crate::server::Server;

/// The log filter: `flag` (--log-level or MESHD_LOG), else RUST_LOG, else `info`. A bare word
/// must be a level: `--log-level verbose` is an error, not a filter for a target "verbose".
fn log_filter(flag: Option<&str>) -> Result<tracing_subscriber::EnvFilter, String> {
    use tracing_subscriber::EnvFilter;
    let Some(f) = flag else {
        return Ok(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
    };
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    if !f.contains(['=', ',', ':', '[']) && !LEVELS.contains(&f.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "--log-level {f:?} : expected one of {} or a filter such as info,meshd=debug",
            LEVELS.join(", ")
        ));
    }
    EnvFilter::try_new(f).map_err(|e| format!("--log-level {f:?} : {e}"))
}

fn init_tracing(filter: tracing_subscriber::EnvFilter) {
    use tracing_subscriber::prelude::*;
    // Under systemd: the journal, with every field as its own journal field, named as in the
    // code but upper-cased and without tracing-journald's default `F_` prefix, so that
    // `journalctl -u meshd NODE=green` filters (no field of meshd's is named like a journal
    // field: MESSAGE, PRIORITY, CODE_*, SYSLOG_*, TARGET; leading `_` is stripped).
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|j| {
            j.with_field_prefix(None)
                .with_syslog_identifier("meshd".into())
        });
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

/// The per-process choices of the flags.
pub fn overrides(args: &Args) -> Overrides {
    Overrides {
        nodes: Some(
            args.nodes
                .iter()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect::<std::collections::BTreeSet<String>>(),
        )
        .filter(|n| !n.is_empty()),
        bind_ip: Default::default(),
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
        istio_access_log: args.access_log.as_ref().map(|path| AccessLog {
            path: path.clone(),
            format: if args.access_log_encoding.eq_ignore_ascii_case("json") {
                Format::istio_json()
            } else {
                Format::Default
            },
        }),
    }
}

/// Names the runtime's threads: tokio starts its `workers` worker threads first, when the
/// runtime is built, so those are `meshd-worker` (what `--concurrency` sets, visible in
/// /proc/PID/task/*/comm and top -H); threads it starts later run blocking work (file reads,
/// DNS lookups) and are `meshd-blocking`. The current-thread scheduler starts no worker
/// (`workers` 0): its one worker is the `meshd-worker` thread meshd starts itself.
fn thread_name(workers: usize) -> impl Fn() -> String + Send + Sync + 'static {
    let started = std::sync::atomic::AtomicUsize::new(0);
    move || {
        if started.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < workers {
            "meshd-worker".to_owned()
        } else {
            "meshd-blocking".to_owned()
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT. Returns the process exit code.
pub fn run(args: Args) -> ExitCode {
    match log_filter(args.log.as_deref()) {
        Ok(f) => init_tracing(f),
        Err(e) => {
            // Before logging exists: stderr, in meshd's `what : why` shape.
            eprintln!("meshd: {e}");
            return ExitCode::from(2);
        }
    }
    if args.check_config {
        return check::check_config(&args);
    }
    let workers = args.concurrency.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        |n| n as usize,
    );
    // `--concurrency 1` (and the default on one core): tokio's current-thread scheduler on one
    // thread named `meshd-worker`, which serves every connection and meshd's own tasks; blocking
    // work still goes to `meshd-blocking` threads. With one worker, tokio's multi-thread
    // scheduler adds cross-thread wakeups and atomics for nothing: this serves ~5-10 % more
    // requests per CPU second (BENCHMARKS.md).
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let runtime = match builder
        .thread_name_fn(thread_name(if workers == 1 { 0 } else { workers }))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime : {e}");
            return ExitCode::from(1);
        }
    };
    if workers > 1 {
        return runtime.block_on(serve(args));
    }
    let worker = std::thread::Builder::new()
        .name("meshd-worker".to_owned())
        .spawn(move || runtime.block_on(serve(args)));
    match worker.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => {
            tracing::error!("the worker thread panicked");
            ExitCode::from(1)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start the worker thread : {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(args: Args) -> ExitCode {
    let dir = match std::path::absolute(&args.config_dir) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(
                config_dir = %args.config_dir.display(),
                error = %e,
                "config directory {} : {e}",
                args.config_dir.display()
            );
            return ExitCode::from(1);
        }
    };
    let state = match StateDir::open(&args.state_dir, &dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                state_dir = %args.state_dir.display(),
                error = %e,
                "state directory {} : {e} (give a writable --state-dir or MESHD_STATE_DIR)",
                args.state_dir.display()
            );
            return ExitCode::from(1);
        }
    };
    let events = match crate::resilience::EventLog::open(args.outlier_log.clone()) {
        Ok(e) => e,
        Err(e) => {
            let path = args
                .outlier_log
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display();
            tracing::error!(file = %path, error = %e, "outlier event log {path} : {e}");
            return ExitCode::from(1);
        }
    };
    let server = Server::new(args.dns_refresh, args.request_headers_timeout, events);
    let stats = Arc::new(ServerStats::default());
    let admin = Arc::new(Admin {
        server: server.clone(),
        stats: stats.clone(),
        started: Instant::now(),
        in_force: Arc::new(arc_swap::ArcSwap::from_pointee(config::InForce::empty())),
        allow_hosts: args.admin_allow_hosts.clone(),
        stats_addr: Default::default(),
    });
    let settings = Settings {
        dir: dir.clone(),
        state,
        overrides: overrides(&args),
        strict: args.strict_config,
    };
    let applier = match Applier::start(settings, server.clone(), admin.clone()).await {
        Ok(a) => a,
        Err(StartError::Invalid(errors)) => {
            for e in &errors {
                tracing::error!(
                    file = %e.file.display(),
                    path = %e.path,
                    reason = %e.message,
                    "invalid config : {e}"
                );
            }
            return ExitCode::from(2);
        }
        Err(e @ StartError::UnknownNodes { .. }) => {
            tracing::error!(config_dir = %dir.display(), "{e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            tracing::error!(config_dir = %dir.display(), error = %e, "cannot start serving : {e}");
            return ExitCode::from(1);
        }
    };
    let admin_socket = match tokio::net::TcpListener::bind(args.admin).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(admin = %args.admin, error = %e, "cannot listen on admin address {} : {e}", args.admin);
            return ExitCode::from(1);
        }
    };
    let admin_addr = admin_socket.local_addr().unwrap_or(args.admin);
    tokio::spawn(admin.clone().serve(admin_socket));
    if let Some(addr) = args.stats_listen {
        match admin::stats_listener::start(admin.clone(), addr).await {
            Ok(bound) => tracing::info!(stats = %bound, "read-only stats listener ready"),
            Err(e) => {
                tracing::error!(stats = %addr, error = %e, "cannot listen on stats address {addr} : {e}");
                return ExitCode::from(1);
            }
        }
    }
    let in_force = applier.in_force();
    tracing::info!(
        admin = %admin_addr,
        config_dir = %dir.display(),
        resources = in_force.set.len(),
        from_snapshot = in_force.from_snapshot.as_deref().unwrap_or("no"),
        "meshd ready: {} resource(s) from {}{}, admin on {admin_addr}",
        in_force.set.len(),
        dir.display(),
        in_force.from_snapshot.as_deref().map(|s| format!(" (the last good snapshot, saved at {s})")).unwrap_or_default()
    );

    if let Err(e) = control::start(applier.clone(), &args).await {
        tracing::error!(socket = %args.socket.display(), error = %e, "control socket {} : {e}", args.socket.display());
        return ExitCode::from(1);
    }
    let watcher = match config::watch::spawn(applier.clone(), args.debounce) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(config_dir = %dir.display(), error = %e, "cannot watch {} : {e}", dir.display());
            return ExitCode::from(1);
        }
    };

    if let Some(p) = &args.admin_address_path {
        let tmp = p.with_extension("tmp");
        let written =
            std::fs::write(&tmp, format!("{admin_addr}\n")).and_then(|()| std::fs::rename(&tmp, p));
        if let Err(e) = written {
            tracing::error!(file = %p.display(), error = %e, "cannot write {} : {e}", p.display());
            return ExitCode::from(1);
        }
    }
    notify::ready(&notify::status_line(&applier, None));
    notify::spawn_watchdog();

    let Some(mut signals) = Signals::install() else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::from(1);
    };
    signals.stop(Some(&applier)).await;
    notify::stopping();
    tracing::info!("meshd stopping");
    // The directory is no longer applied while draining.
    drop(watcher);
    // A second SIGTERM/SIGINT cuts what still runs at once.
    server.drain(args.drain_timeout, signals.stop(None)).await;
    ExitCode::SUCCESS
}

/// SIGTERM, SIGINT and SIGHUP, installed once for the life of the process.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Option<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Some(Signals {
            term: signal(SignalKind::terminate()).ok()?,
            int: signal(SignalKind::interrupt()).ok()?,
            hup: signal(SignalKind::hangup()).ok()?,
        })
    }

    /// Waits for SIGTERM or SIGINT. Meanwhile SIGHUP re-reads the config directory through
    /// `applier` (without one, while stopping, it is logged and ignored).
    async fn stop(&mut self, applier: Option<&Applier>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => match applier {
                    Some(a) => {
                        tracing::info!(signal = "SIGHUP", "re-reading the config directory");
                        a.reload("SIGHUP").await;
                    }
                    None => tracing::info!(signal = "SIGHUP", "ignored: meshd is stopping"),
                },
            }
        }
    }
}
