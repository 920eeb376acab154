//! Orchestration of a run: resolve the target, warm up, start one task per connection, show
//! progress, stop on Ctrl-C, merge per-connection statistics, write the outputs.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::client::{Target, Template};
use crate::config::{Config, LogLevel, OutputFormat};
use crate::error::Error;
use crate::lanes::{Lanes, Warm};
use crate::latency::Latency;
use crate::plan::Plan;
use crate::progress;
use crate::stats::Counter;
use crate::worker::{code_is_ok, ConnStats, Shared, Slot};
use crate::{json, plot, report, summary};

/// Everything a finished run measured, merged over connections.
pub struct RunResult {
    /// Configuration.
    pub cfg: Arc<Config>,
    /// Work split.
    pub plan: Plan,
    /// Processors used (fortio's GOMAXPROCS).
    pub procs: usize,
    /// Resolved target address (or Unix socket).
    pub addr: Target,
    /// Wall-clock time when the measured run started (after warm-up).
    pub start_time: SystemTime,
    /// Measured run time.
    pub elapsed: Duration,
    /// Merged statistics.
    pub stats: ConnStats,
    /// HDR percentiles, corrected and raw (merged from the lanes).
    pub latency: Latency,
    /// Per connection: sockets opened and connect times.
    pub per_conn: Vec<(u64, Counter)>,
    /// Ended by Ctrl-C.
    pub interrupted: bool,
    /// Ended by `-abort-on`.
    pub aborted: bool,
}

impl RunResult {
    /// Calls made.
    pub fn count(&self) -> u64 {
        self.stats.durations.counter.count
    }

    /// Achieved calls per second.
    pub fn actual_qps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.count() as f64 / s
        } else {
            0.0
        }
    }

    /// Whether latency is measured from the schedule (`-qps` > 0).
    pub fn paced(&self) -> bool {
        self.plan.per_thread_qps.is_some()
    }
}

/// Prints a log line on stderr (fortio's logger lines are not part of the result format).
pub fn log(cfg: &Config, level: LogLevel, msg: &str) {
    if cfg.loglevel <= level {
        let tag = match level {
            LogLevel::Debug | LogLevel::Verbose => "DBG",
            LogLevel::Info => "INF",
            LogLevel::Warning => "WRN",
            _ => "ERR",
        };
        eprintln!("[{tag}] {msg}");
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the load test described by `cfg` and writes every requested output.
pub fn run(cfg: Config) -> Result<(), Error> {
    let cores = cores();
    let procs = if cfg.gomaxprocs > 0 {
        cfg.gomaxprocs
    } else {
        cores
    };
    // The connections run on per-core lanes; this runtime only coordinates (signals, progress).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime("tokio runtime", e))?;
    let result = rt.block_on(execute(Arc::new(cfg), cores, procs))?;
    // Connections still closing must not delay the report.
    rt.shutdown_background();
    output(&result)
}

async fn resolve(cfg: &Config) -> Result<Target, Error> {
    if let Some(path) = &cfg.unix_socket {
        return Ok(Target::Unix(path.clone()));
    }
    if let Some(ip) = cfg.resolve {
        return Ok(Target::Tcp(SocketAddr::new(ip, cfg.port)));
    }
    let what = format!("lookup {}", cfg.host);
    let lookup = tokio::net::lookup_host((cfg.host.as_str(), cfg.port));
    let mut addrs = tokio::time::timeout(cfg.timeout, lookup)
        .await
        .map_err(|_| Error::runtime(&what, "timed out"))?
        .map_err(|e| Error::runtime(&what, e))?;
    addrs
        .next()
        .map(Target::Tcp)
        .ok_or_else(|| Error::runtime(&what, "no address"))
}

/// Raises the soft open-files limit to what `connections` need (a socket, and in `-qps` mode a
/// timer, per connection, plus some slack), up to the hard limit. Returns a warning when even the
/// hard limit is too low: the connections beyond it then fail as socket errors.
fn raise_nofile(connections: usize) -> Option<String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let needed = 2 * connections as u64 + 64;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= needed {
        return None;
    }
    let _ = setrlimit(Resource::RLIMIT_NOFILE, needed.min(hard), hard);
    (hard < needed).then(|| {
        format!(
            "{connections} connections need about {needed} open files but the limit is {hard} (ulimit -Hn); connections beyond it will fail"
        )
    })
}

async fn execute(cfg: Arc<Config>, cores: usize, procs: usize) -> Result<RunResult, Error> {
    for w in &cfg.warnings {
        log(&cfg, LogLevel::Warning, w);
    }
    if let Some(w) = raise_nofile(cfg.connections) {
        log(&cfg, LogLevel::Warning, &w);
    }
    let addr = resolve(&cfg).await?;
    let plan = Plan::new(&cfg, procs);
    let tail = if cfg.exactly > 0 {
        format!(", for {} calls: {}", cfg.exactly, cfg.url)
    } else if let Some(d) = cfg.duration {
        format!(", for {}: {}", crate::gofmt::duration(d), cfg.url)
    } else {
        format!(", until interrupted: {}", cfg.url)
    };
    eprintln!(
        "meshload {} running at {} queries per second, {cores}->{procs} procs{tail}",
        env!("CARGO_PKG_VERSION"),
        crate::gofmt::g(cfg.qps)
    );
    for w in &plan.warnings {
        log(&cfg, LogLevel::Warning, w);
    }
    let (stop_tx, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        template: Template::new(&cfg),
        stop: AtomicBool::new(false),
        stop_tx,
        aborted: AtomicBool::new(false),
        connect_error_logged: AtomicBool::new(false),
        slots: (0..plan.threads).map(|_| Slot::default()).collect(),
        plan: plan.clone(),
    });
    let mut lanes = Lanes::spawn(&shared, addr.clone(), procs, cfg.exactly == 0)?;
    if cfg.exactly == 0 {
        let warm = lanes.warmed().await;
        if let Err(e) = check_warmup(&cfg, &warm) {
            lanes.run(None).await;
            return Err(e);
        }
    }
    if cfg.loglevel <= LogLevel::Warning || plan.starting_always {
        eprintln!("{}", plan.starting);
    }

    let ctrl_c = {
        let shared = shared.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                shared.request_stop();
            }
        })
    };
    let start_time = SystemTime::now();
    let start = Instant::now();
    let show_progress = std::io::stderr().is_terminal();
    let progress = show_progress.then(|| tokio::spawn(progress::show(shared.clone(), start)));
    let (finished, mut latency) = lanes.run(Some(start)).await;
    let elapsed = start.elapsed();
    ctrl_c.abort();
    if let Some(p) = progress {
        p.abort();
        let _ = p.await;
        progress::clear();
    }
    let interrupted =
        shared.stop.load(Ordering::Relaxed) && !shared.aborted.load(Ordering::Relaxed);
    let mut stats = ConnStats::new(&cfg);
    let mut per_conn = Vec::with_capacity(finished.len());
    for w in &finished {
        stats.merge(&w.stats);
        per_conn.push((w.stats.sockets, w.stats.connect.counter));
    }
    if plan.per_thread_qps.is_none() {
        stats.raw = stats.durations.clone();
        latency.raw = latency.corrected.clone();
    }
    Ok(RunResult {
        cfg,
        plan,
        procs,
        addr,
        start_time,
        elapsed,
        stats,
        latency,
        per_conn,
        interrupted,
        aborted: shared.aborted.load(Ordering::Relaxed),
    })
}

/// fortio's warm-up rule: a failed warm-up call aborts the run unless `-allow-initial-errors`.
fn check_warmup(cfg: &Config, warm: &[Warm]) -> Result<(), Error> {
    let Some((code, size)) = warm.iter().find(|(c, _)| !code_is_ok(*c)) else {
        return Ok(());
    };
    let msg = format!(
        "Aborting because of error {code} for {} ({size} bytes)",
        cfg.url
    );
    if !cfg.allow_initial_errors {
        return Err(Error::runtime(
            "warm-up",
            format!("{msg}; use -allow-initial-errors to run anyway"),
        ));
    }
    log(cfg, LogLevel::Warning, &msg);
    Ok(())
}

fn write_file(path: &str, data: &[u8], what: &str) -> Result<(), Error> {
    std::fs::write(path, data).map_err(|e| Error::runtime(format!("{what} {path}"), e))
}

/// Writes the text report (stderr), the JSON result, the plot and the stdout summary.
fn output(r: &RunResult) -> Result<(), Error> {
    let text = report::text(r);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
    drop(err);
    let auto = r.cfg.auto_save.as_ref().map(|dir| {
        let id = json::run_id(r.start_time, r.cfg.runid, &r.cfg.labels);
        dir.join(format!("{id}.json")).display().to_string()
    });
    if let Some(path) = r.cfg.json.as_ref().or(auto.as_ref()) {
        let doc = json::fortio_result(r);
        if path == "-" {
            let mut out = std::io::stdout().lock();
            out.write_all(doc.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| Error::runtime("stdout", e))?;
            eprintln!(
                "Successfully wrote {} bytes of Json data to stdout",
                doc.len()
            );
        } else {
            write_file(path, doc.as_bytes(), "-json")?;
            eprintln!(
                "Successfully wrote {} bytes of Json data to {path}",
                doc.len()
            );
        }
    }
    if let Some(path) = &r.cfg.plot {
        write_file(path, plot::svg(r).as_bytes(), "-plot")?;
        eprintln!("Wrote latency plot to {path}");
    }
    if r.cfg.output == OutputFormat::Json {
        let doc = summary::json(r);
        let mut out = std::io::stdout().lock();
        out.write_all(doc.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| Error::runtime("stdout", e))?;
    }
    Ok(())
}
