//! A cluster of real upstream hosts with what keeps it healthy: the pool (`core::pool`, which
//! picks usable hosts), outlier detection (`core::outlier`), active health checks
//! ([`crate::health`] driving `core::health`), the retry budget and retry stats
//! (`core::retry`). This file is the glue: it feeds each attempt's outcome to the detector,
//! turns ejections and health transitions into the pool's host flags, ticks the detector, and
//! writes the ejection event log. The decisions are all core's.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Instant, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use mesh_core::health::{HealthChecker, HealthUpdate, HostHealth};
use mesh_core::outlier::{OutlierAction, OutlierDetector, OutlierEvent};
use mesh_core::pool::HealthFlag;
use mesh_core::retry::{Outcome, RetryBudget, RetryStats};
use mesh_core::runtime::Cluster;
use tokio::task::JoinHandle;

use crate::health::Checks;
use crate::upstream::{Http1Connector, TcpCluster};

/// Where ejections and unejections are written, one JSON line each (Envoy's
/// `outlier_log_path` shape); shared by every cluster.
#[derive(Clone, Default)]
pub struct EventLog(Option<Arc<Mutex<std::fs::File>>>);

impl EventLog {
    /// Appends to `path` (created if missing); `None` writes no file (events are still logged).
    pub fn open(path: Option<PathBuf>) -> std::io::Result<EventLog> {
        let Some(path) = path else {
            return Ok(EventLog(None));
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(EventLog(Some(Arc::new(Mutex::new(file)))))
    }

    fn write(&self, line: &str) {
        if let Some(f) = &self.0 {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = f
                .write_all(line.as_bytes())
                .and_then(|()| f.write_all(b"\n"))
            {
                tracing::warn!(error = %e, "cannot write the outlier event log : {e}");
            }
        }
    }
}

/// One cluster of real hosts: see the module docs.
pub struct Upstream {
    /// The pool: hosts, breakers, connections, per-host flags.
    pub pool: Arc<TcpCluster>,
    /// Retry counters (`cluster.<c>.upstream_rq_retry*`).
    pub retry_stats: RetryStats,
    budget: ArcSwap<RetryBudget>,
    outlier: ArcSwapOption<OutlierDetector>,
    ticker: Mutex<Option<JoinHandle<()>>>,
    checks: ArcSwapOption<Checks>,
    /// The hosts DNS (or the config) gave last, so a detector or checker added by a reload
    /// starts with them.
    hosts: Mutex<Vec<(SocketAddr, String)>>,
    events: EventLog,
}

impl Upstream {
    /// A cluster with no hosts yet, configured as `c`.
    pub fn new(c: &Cluster, events: EventLog) -> Arc<Upstream> {
        let up = Arc::new(Upstream {
            pool: Arc::new(TcpCluster::new(
                c.name.clone(),
                c.thresholds,
                c.settings,
                Http1Connector,
            )),
            retry_stats: RetryStats::default(),
            budget: ArcSwap::from_pointee(c.retry_budget),
            outlier: ArcSwapOption::empty(),
            ticker: Mutex::new(None),
            checks: ArcSwapOption::empty(),
            hosts: Mutex::new(Vec::new()),
            events,
        });
        tokio::spawn(sweep(Arc::downgrade(&up.pool)));
        up.reconfigure(c);
        up
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.pool.info().name
    }

    /// Applies a reload's settings in place: limits and pool settings, the retry budget, and
    /// outlier detection and health checks (started, reconfigured or stopped; a host's flags
    /// are cleared when the mechanism that set them goes away).
    pub fn reconfigure(self: &Arc<Self>, c: &Cluster) {
        self.pool.reconfigure(c.thresholds, c.settings);
        self.budget.store(Arc::new(c.retry_budget));
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let addrs: Vec<SocketAddr> = hosts.iter().map(|(a, _)| *a).collect();

        match (&c.outlier_detection, self.outlier.load_full()) {
            (Some(config), Some(d)) => d.reconfigure(*config),
            (Some(config), None) => {
                let d = Arc::new(OutlierDetector::new(*config));
                d.set_hosts(&addrs);
                self.outlier.store(Some(d));
                let ticker = tokio::spawn(tick(Arc::downgrade(self)));
                if let Some(old) = self
                    .ticker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .replace(ticker)
                {
                    old.abort();
                }
            }
            (None, Some(_)) => {
                self.outlier.store(None);
                if let Some(t) = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    t.abort();
                }
                for a in &addrs {
                    self.pool
                        .set_health(*a, HealthFlag::FailedOutlierCheck, false);
                }
            }
            (None, None) => {}
        }

        match (&c.health_check, self.checks.load_full()) {
            (Some(config), Some(checks)) => checks.checker().reconfigure(config.clone()),
            (Some(config), None) => {
                let weak = Arc::downgrade(self);
                let on_update: crate::health::OnUpdate =
                    Arc::new(move |host: &HostHealth, update: &HealthUpdate| {
                        if let Some(up) = weak.upgrade() {
                            up.health_update(host, update);
                        }
                    });
                let checks = Checks::new(Arc::new(HealthChecker::new(config.clone())), on_update);
                checks.set_hosts(&hosts);
                self.checks.store(Some(checks));
            }
            (None, Some(_)) => {
                self.checks.store(None);
                for a in &addrs {
                    self.pool.set_health(*a, HealthFlag::FailedActiveHc, false);
                }
            }
            (None, None) => {}
        }
    }

    /// The hosts now (after DNS resolution): the pool, the detector and the checks follow.
    pub fn set_hosts(&self, hosts: &[(SocketAddr, String)]) {
        *self.hosts.lock().unwrap_or_else(|p| p.into_inner()) = hosts.to_vec();
        self.pool.set_hosts(hosts);
        let addrs: Vec<SocketAddr> = hosts.iter().map(|(a, _)| *a).collect();
        if let Some(d) = self.outlier.load_full() {
            d.set_hosts(&addrs);
            // A host that returns keeps nothing of an old ejection in the pool.
            for a in &addrs {
                if let Some(h) = d.host(*a) {
                    self.pool
                        .set_health(*a, HealthFlag::FailedOutlierCheck, h.is_ejected());
                }
            }
        }
        if let Some(c) = self.checks.load_full() {
            c.set_hosts(hosts);
        }
    }

    /// The retry budget now.
    pub fn budget(&self) -> RetryBudget {
        **self.budget.load()
    }

    /// Outlier detection, when the cluster has it.
    pub fn outlier(&self) -> Option<Arc<OutlierDetector>> {
        self.outlier.load_full()
    }

    /// Active health checks, when the cluster has them.
    pub fn health(&self) -> Option<Arc<HealthChecker>> {
        self.checks.load_full().map(|c| c.checker().clone())
    }

    /// Counts one attempt's outcome against `host` (outlier detection; a local overflow never
    /// reached a host and is not counted).
    pub fn record(&self, host: SocketAddr, outcome: &Outcome) {
        if matches!(outcome, Outcome::LocalOverflow | Outcome::GlobalTimeout) {
            return;
        }
        let Some(d) = self.outlier.load_full() else {
            return;
        };
        if let Some(h) = d.host(host) {
            let events = d.record(&h, outcome, Instant::now());
            self.apply(events);
        }
    }

    /// Turns outlier events into the pool's flags, the log and the event log.
    fn apply(&self, events: Vec<OutlierEvent>) {
        for e in events {
            let ejected = match e.action {
                OutlierAction::Eject => e.enforced,
                OutlierAction::Uneject => false,
            };
            if e.action == OutlierAction::Eject && !e.enforced {
                tracing::info!(cluster = %self.name(), host = %e.host, kind = ?e.kind, "cluster {}: host {} is an outlier ({:?}) but not ejected", self.name(), e.host, e.kind);
            } else {
                self.pool
                    .set_health(e.host, HealthFlag::FailedOutlierCheck, ejected);
                if ejected {
                    tracing::warn!(cluster = %self.name(), host = %e.host, kind = ?e.kind, times = e.num_ejections, duration_ms = e.duration.as_millis() as u64, "cluster {}: host {} ejected ({:?}, ejection {}) for {} ms", self.name(), e.host, e.kind, e.num_ejections, e.duration.as_millis());
                } else {
                    tracing::info!(cluster = %self.name(), host = %e.host, cause = ?e.uneject_cause, "cluster {}: host {} back in rotation ({:?})", self.name(), e.host, e.uneject_cause);
                }
            }
            self.events
                .write(&e.to_json(self.name(), SystemTime::now()));
        }
    }

    fn health_update(&self, host: &HostHealth, update: &HealthUpdate) {
        let addr = host.addr();
        self.pool
            .set_health(addr, HealthFlag::FailedActiveHc, host.is_failed());
        if let Some(t) = &update.transition {
            tracing::info!(cluster = %self.name(), host = %addr, from = t.from.as_str(), to = t.to.as_str(), result = ?t.result, "cluster {}: host {addr} health check {} -> {} ({:?})", self.name(), t.from.as_str(), t.to.as_str(), t.result);
        }
        if update.uneject_outlier {
            if let Some(d) = self.outlier.load_full() {
                if let Some(h) = d.host(addr) {
                    if let Some(e) = d.health_check_succeeded(&h, Instant::now()) {
                        self.apply(vec![e]);
                    }
                }
            }
        }
    }

    /// Per-host outlier and health state for `/clusters` and `describe --live`.
    pub fn host_state(&self, addr: SocketAddr) -> HostState {
        let now = Instant::now();
        let outlier = self
            .outlier
            .load_full()
            .and_then(|d| d.host(addr).map(|h| d.view(&h, now)));
        let health = self
            .checks
            .load_full()
            .and_then(|c| c.checker().host(addr).map(|h| h.view()));
        HostState { outlier, health }
    }
}

/// What `/clusters` shows of a host beyond the pool's counts.
pub struct HostState {
    /// Outlier detection's view, when the cluster has it.
    pub outlier: Option<mesh_core::outlier::HostOutlierView>,
    /// The health checker's view, when the cluster has checks.
    pub health: Option<mesh_core::health::HostHealthView>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(t) = self
            .ticker
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

/// Runs the detector's interval: unejections and backoff decay.
async fn tick(up: Weak<Upstream>) {
    loop {
        let interval = match up.upgrade().and_then(|u| u.outlier()) {
            Some(d) => d.config().interval,
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(u) = up.upgrade() else { return };
        let Some(d) = u.outlier() else { return };
        let events = d.tick(Instant::now());
        u.apply(events);
    }
}

/// How often a quiet cluster's idle connections are checked.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes, once a second, the idle connections of a quiet cluster that its upstream closed
/// (or that passed the idle timeout), so that they do not hold slots and sockets until the
/// next request ([`TcpCluster::sweep_idle`]); ends with the cluster.
async fn sweep(pool: Weak<TcpCluster>) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        let Some(pool) = pool.upgrade() else { return };
        let closed = pool.sweep_idle();
        if closed > 0 {
            tracing::debug!(cluster = %pool.info().name, closed, "closed idle connections the upstream had closed or that timed out");
        }
    }
}

/// Clusters by name (the server keeps them across reloads).
pub type Upstreams = HashMap<String, Arc<Upstream>>;
